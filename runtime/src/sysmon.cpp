// sysmon.cpp: the runtime's background monitor thread (runtime_impl::sysmon_loop)
// and deadlock detection.
//
// ---------------------------------------------------------------------------
// sysmon
//
// One background thread per threaded runtime wakes every 10 ms (100 ms when
// everything is idle) to: report tasklets that ran longer than the watchdog
// threshold without parking (they cannot be preempted); wake an idle worker
// when a busy worker's timers are overdue (idle workers run other workers'
// due timers); and detect deadlock: all workers asleep, no timer, no blocking
// call, no keep-alive guard, nothing queued, some tasklet alive, and nothing
// changed since the previous check.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "blocking_pool.hpp"
#include "scheduler.hpp"
#include "stack_pool.hpp"

namespace taiga::detail {

using internal::worker;

// ---- sysmon ------------------------------------------------------------

void runtime_impl::sysmon_loop() {
  internal::trace::set_thread_kind(trace_format::thread_kind::sysmon);
  std::vector<std::uint64_t> last_switches(nworkers, 0);
  std::vector<std::int64_t> stuck_ns(nworkers, 0);
  std::vector<bool> reported(nworkers, false);
  std::uint64_t last_signature = 0;
  int quiet_checks = 0;
  std::int64_t period_ns = 10'000'000;
  std::int64_t last_trim_ns = internal::now_ns();
  for (;;) {
    {
      std::unique_lock lk(sysmon_mu);
      bool all_idle = npidle.load() == static_cast<int>(nworkers);
      auto wait = std::chrono::nanoseconds(all_idle ? 10 * period_ns : period_ns);
      sysmon_cv.wait_for(lk, wait, [this] { return sysmon_stop; });
      if (sysmon_stop) return;
    }
    std::int64_t now = internal::now_ns();
    if (now - last_trim_ns >= 1'000'000'000) {
      last_trim_ns = now;
      internal::stack_pool::instance().trim_idle();
    }
    // Every period while a trace records: live tasklets, queue lengths and
    // each worker's OS run delay, which tells a host that deschedules the
    // workers from latency the runtime adds.
    if (detail::trace_on()) [[unlikely]]
      internal::trace::sample(this);
    std::uint64_t signature = inject_count.load();
    bool overdue_busy = false;
    for (unsigned i = 0; i < nworkers; ++i) {
      worker* w = workers[i].get();
      std::uint64_t s = w->switches.load(std::memory_order_relaxed);
      signature += s;
      tasklet_core* t = w->running.load(std::memory_order_relaxed);
      if (s != last_switches[i] || t == nullptr) {
        last_switches[i] = s;
        stuck_ns[i] = 0;
        reported[i] = false;
        continue;
      }
      stuck_ns[i] += period_ns;
      if (w->timers.next_deadline() < now) overdue_busy = true;
      // N4: a next slot behind a long tasklet, which N3 woke no one for.
      if (w->next_slot.load(std::memory_order_relaxed) != nullptr || !w->rq.empty())
        overdue_busy = true;
      auto threshold = std::chrono::nanoseconds(cfg.watchdog_threshold).count();
      if (threshold > 0 && stuck_ns[i] >= threshold && !reported[i]) {
        // Only trust `t` while the registry says it is alive (it cannot be
        // freed while we hold its shard's lock) and the worker has not moved.
        bool found = false;
        tasklet_info info;
        for (unsigned k = 0; k < nshards && !found; ++k) {
          std::lock_guard lk(shards[k].lock);
          for (tasklet_core* c = shards[k].head; c; c = c->reg_next) {
            if (c == t) {
              info = info_of(c, true);
              found = true;
              break;
            }
          }
        }
        if (found && w->switches.load(std::memory_order_relaxed) == s) {
          reported[i] = true;
          auto ran = std::chrono::milliseconds(stuck_ns[i] / 1'000'000);
          info.worker = static_cast<int>(i);
          if (detail::trace_on()) [[unlikely]] {
            internal::trace::watchdog(this, info.id, stuck_ns[i]);
            internal::trace::flight_trigger(this, "watchdog");
          }
          if (cfg.watchdog_handler) {
            cfg.watchdog_handler(info, ran);
          } else {
            std::fprintf(stderr,
                         "taiga: watchdog: tasklet %s has run for %lld ms on worker %u without "
                         "parking; it cannot be preempted (call this_tasklet::yield() in long "
                         "loops, or taiga::blocking() for blocking calls)\n",
                         info.describe().c_str(), static_cast<long long>(ran.count()), i);
          }
        }
      }
    }
    if (overdue_busy && npidle.load() > 0) wake_one();
    // A poller left unpolled for a period while its worker is stuck in one
    // tasklet (no switch since the last check; no spinner about) is polled
    // here: its connections must not stall behind one tasklet
    // (tokio#4730). Not a worker that is switching: it polls when it is
    // ready to (pick_heavy defers polls while the inject queue drains, and
    // polling for it here only refilled that queue from this thread:
    // tcp_echo at 10,000 connections, half the rate). The CAS claims it
    // against a spinner.
    for (unsigned i = 0; i < nworkers; ++i) {
      worker* w = workers[i].get();
      if (stuck_ns[i] == 0) continue;  // idle (its loop polls) or switching
      taiga::poller* p = w->io.load(std::memory_order_acquire);
      if (p == nullptr || p->in_flight() == 0) continue;
      std::int64_t last = w->polled_ns.load(std::memory_order_relaxed);
      if (now - last < period_ns) continue;
      if (w->polled_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) p->poll();
    }

    if (cfg.detect_deadlock && deadlocked_now()) {
      if (signature == last_signature) {
        if (++quiet_checks >= 2) {
          quiet_checks = 0;
          handle_deadlock();
        }
      } else {
        quiet_checks = 1;
      }
    } else {
      quiet_checks = 0;
    }
    last_signature = signature;
  }
}

bool runtime_impl::deadlocked_now() {
  if (stopping.load()) return false;
  if (live_count() == 0) return false;
  // Tasklets parked on I/O are wakeable (a peer may write): the pollers'
  // own counts, summed here only, not a runtime-wide counter per operation.
  if (keepalive.load() > 0 || blocking->in_flight() > 0 || io_in_flight() > 0) return false;
  if (!embedded) {
    if (npidle.load() != static_cast<int>(nworkers) || nspinning.load() != 0) return false;
  }
  if (inject.size_approx() > 0) return false;
  for (auto& w : workers) {
    if (!w->rq.empty() || w->next_slot.load() != nullptr || w->remote.size_approx() > 0)
      return false;
    if (w->timers.next_deadline() != std::numeric_limits<std::int64_t>::max()) return false;
  }
  return true;
}

void runtime_impl::handle_deadlock() {
  std::vector<tasklet_core*> all = snapshot_live();
  deadlock_report rep;
  std::vector<tasklet_core*> parked;
  for (tasklet_core* t : all) {
    if (t->state.load(std::memory_order_acquire) == tasklet_state::parked) {
      rep.parked.push_back(info_of(t));
      parked.push_back(t);
    }
  }
  if (!parked.empty()) {
    deadlock_reports.fetch_add(1, std::memory_order_acq_rel);  // before the throws (drop_handle)
    if (detail::trace_on()) [[unlikely]] {
      internal::trace::deadlock(this, parked.size());
      internal::trace::flight_trigger(this, "deadlock");
    }
    if (cfg.deadlock_handler) {
      cfg.deadlock_handler(rep);
    } else {
      std::cerr << rep.text() << std::flush;
    }
    std::string msg = "taiga: deadlock: every tasklet is parked and nothing can wake them (" +
                      std::to_string(parked.size()) + " parked)";
    for (tasklet_core* t : parked)
      detail::throw_into(t, std::make_exception_ptr(deadlock_error(msg)));
  }
  for (tasklet_core* t : all) release(t);
}

}  // namespace taiga::detail
