// scheduler.cpp: per-core fiber loops, work stealing, parking and waking.
//
// ---------------------------------------------------------------------------
// What
//
// A runtime owns N workers (one OS thread each; zero threads in embedded
// mode, where the host thread drives worker 0). Each worker runs tasklets
// from, in order of preference:
//   1. its "next" slot: the tasklet it just spawned or handed a value to
//      (LIFO, so spawn trees grow depth first and a channel hand-off runs
//      the receiver while the data is hot in cache);
//   2. its local ready queue (run_queue.hpp, FIFO, 256 slots, stealable);
//   3. its private queue (pinned tasklets, never stolen);
//   4. its remote queue (tasklets other threads put on this worker: spawn_on,
//      pinned tasklets woken elsewhere);
//   5. the runtime's inject queue (tasklets spawned or woken from threads
//      that are not workers, and the overflow of full local queues);
//   6. due timers;
//   7. other workers' queues (steal half of a random victim's queue).
// Every 61st pick starts at (4)-(6) so a flood of local work cannot starve
// outside work or timers (Go's schedtick % 61). The next slot may serve at
// most 16 picks in a row, so two tasklets handing a value back and forth
// cannot starve the rest of the queue (tokio's LIFO-slot limit).
//
// Switching. A tasklet that parks, yields or ends switches *directly* to the
// next tasklet when one is at hand (pick_fast: slots 1-3 only, so the
// parking tasklet's stack stays shallow: a parked tasklet must fit in the
// one page it touches). Otherwise it switches to the worker's main context,
// which runs the heavy part of the loop (find_work). What happens to the
// previous tasklet (requeue it, mark it parked, free its stack) is done by
// the *resumed* side in after_switch(): until the switch has completed, the
// previous tasklet's registers are not saved and no other thread may resume
// it (context.cpp, X2).
//
// ---------------------------------------------------------------------------
// Parking (wait_word protocol): see the top of park.cpp.
//
// ---------------------------------------------------------------------------
// Idle workers (the lost wake-up problem)
//
// Goal: no worker burns CPU while there is nothing to do, and no runnable
// tasklet waits while a worker sleeps. The protocol is Go's "spinning M":
//   I1 nspinning counts workers looking for work without sleeping; npidle
//      counts workers asleep (in rt->idle).
//   I2 whoever publishes work (a push to any queue) then, after a seq_cst
//      fence, checks: if npidle > 0 and nspinning == 0, wake one sleeper
//      (wake_one), which becomes a spinner. wake_one's CAS of nspinning 0->1
//      keeps it to one at a time: a spinner is enough, it will find the work.
//   I3 a spinner that finds work stops spinning; if it was the last spinner
//      it wakes another (there may be more work than one worker can take).
//   I4 a worker going to sleep first puts itself in rt->idle (npidle + 1),
//      then stops spinning (nspinning - 1), then issues a seq_cst fence and
//      checks every queue once more. If work is visible it leaves the idle
//      list and goes back to work.
//   I5 whoever wake_one picks from the idle list counts as a spinner from
//      that moment (nspinning + 1, its wake_spinning flag set) and must
//      consume the flag wherever it leaves idleness: after its sleep, and
//      also when I4's final check sends it back to work without sleeping
//      (wake_one can pick it in between). wake_one sets the flag under
//      idle_mu while it takes the worker out of the list, and the worker
//      reads it only after its own idle_leave has taken idle_mu, so it
//      cannot read it before it is set. A worker that missed the flag in
//      that second case once left nspinning at 1 with no spinner: every
//      later wake_one failed its 0->1 CAS, publishers saw "a spinner exists",
//      and a runtime with one busy worker and the rest asleep hung with an
//      overdue timer that sysmon's nudge could no longer hand to anyone
//      (found by the ASan suite: tasklets.kill_running_tasklet_...).
//   I6 once the runtime has pollers (taiga/runtime/poller.hpp), a worker
//      sleeps in its poller's wait() instead of the futex, with park_word
//      set to park_polling (a fourth state, tokio's PARKED_DRIVER), and
//      unpark interrupts the poller instead of waking the futex. The
//      exchange on park_word decides as for the futex: an unpark before the
//      worker's CAS to park_polling makes it skip the wait; one after it
//      interrupts, and the poller keeps an interrupt that comes before its
//      wait (its contract), so the wait returns at once. I/O completions
//      need no publisher: the poller's wait returns when one ran, and what
//      it made ready is in this worker's queues. Completions for a busy
//      worker's poller are found by its own polls (queues dry, and every
//      poll_interval from pick_heavy), by spinners (busy workers' pollers)
//      and by sysmon (a poller left unpolled for a period).
// Why no wake-up is lost: take a publisher P and a worker W going to sleep.
// With the fences, either W's final check follows P's push (W sees the work)
// or P's check of the counters follows W's npidle/nspinning update (P sees a
// sleeper and no spinner, and wakes someone, who can steal the work). The
// "last spinner wakes another" rule covers work published while a spinner
// existed (P did not wake anyone) that the spinner does not take itself.
// Work for one particular worker (remote queue) wakes that worker directly.
// A sleeping worker also wakes at its earliest timer.
//
// ---------------------------------------------------------------------------
// Stealing
//
// A spinning worker (I1) with nothing of its own takes about half of a random
// victim's ring in one CAS (run_queue.hpp, Q3), and runs the first of them.
// A victim's next slot is different: it holds what the victim's owner is
// about to run, usually at its very next switch (a spawn's child, a hand-off
// to a receiver with preference -1, which the sender follows with a yield).
// Taking it then moves the tasklet to another core for nothing: the victim
// finds its slot empty, the stolen tasklet runs with cold caches, and its
// partner, left on the victim, is woken across cores at the next exchange
// (a futex wake, ~20 us here: machine.md). Go's runqgrab therefore sleeps
// 3 us before it takes runnext from a running P. We take no sleep (a syscall)
// and add nothing to the owner's path; the thief keeps a note per victim:
//   N1 a thief takes a victim's ring before its next slot, and the next slot
//      only when the ring is empty.
//   N2 it takes the next slot only once it has seen the same tasklet there,
//      with the victim's switch count (worker::switches, bumped by prepare()
//      on every switch into a tasklet) unchanged, for next_steal_after_ns
//      (20 us) or more: the victim has been running one tasklet all that
//      time and is not about to switch to the slot's. A switch, or another
//      tasklet in the slot, restarts the wait. The note is the thief's own
//      (worker::seen): the owner writes nothing more than before.
//   N3 a hand-off into the next slot (make_ready with next: channels with
//      preference -1, whose sender yields next) wakes no idle worker unless
//      it pushed an older tasklet out of the slot into the ring: the owner
//      is awake and runs the slot's tasklet at its next switch, so a wake
//      would only bring a thief that N2 turns away (the pipeline benchmark's
//      cross-core ping-pong, issue 18 D). Spawns still notify (tasklet.cpp):
//      a spawner runs on.
//   N4 no starvation: a tasklet left in the next slot (or, N5, the ring of
//      one) of a worker stuck in a long tasklet is taken by a spinner once
//      N2's wait is over. sysmon wakes one (as for overdue timers) when a
//      worker that has not switched for a whole period (10 ms) has a filled
//      next slot or a non-empty ring and some worker sleeps: N3 and N6 woke
//      nobody, and N6 lets idle workers sleep meanwhile.
//   N5 a small ring (1..small_ring = 16 tasklets) behind a running tasklet
//      is what the victim works through in its next few switches: a sender
//      that yielded to its receiver and will park again at once, a consumer
//      it just woke. A thief takes it only once it has seen the ring's head
//      (run_queue::head: pops and steals) stay put for next_steal_after_ns;
//      a bigger ring (a spawn storm) is stolen at once, as before. Stealing
//      such rings moved tasklets to the thief's core only to park there
//      (ring benchmark), and two workers that both stayed awake stole them
//      from each other, 2 M times in 3 M pipeline lines, 5x slower than one.
//   N6 idle workers leave alone what N2 and N5 protect. work_visible (I4's
//      last check) does not count another worker's next slot, nor its small
//      ring while it runs a tasklet: counted, they kept idle workers from
//      sleeping for as long as hand-offs went on elsewhere, polling the busy
//      worker's queues (their cache lines) in a loop, which made that
//      worker's every ring and slot operation a cache miss (the ring
//      benchmark's 2-worker hop several times its 1-worker one). And a
//      yield's requeue that leaves the local ring at one tasklet wakes no
//      one: a wake costs the waker a futex syscall, tens of us on these
//      guests, for a thief that N5 turns away. make_ready, too, wakes an
//      idle worker only once the local ring holds more than small_ring
//      tasklets: a smaller one is what N5 keeps thieves from anyway, so
//      each such wake was a futex syscall for a thief that spun, found
//      nothing it may take and slept again (the pipeline benchmark: ~10,000
//      sleep/wake rounds per million lines, 2 workers twice as slow as one;
//      with the rule 1.0x, and select's, ring's and fan_in's 2-worker
//      figures no worse). The cost: a tasklet woken into a small ring
//      behind a waker that then computes for long waits for N4 (sysmon,
//      10 ms), as one left in the next slot always did (N3).
//   Lost wake-ups (I2, I4): what N3 and N6 leave unannounced sits with a
//   worker that is awake and runs it at its next switch; only parallelism
//   waits, for that switch or for sysmon (N4).
// Fairness is per turn, not per unit of time: the next slot serves at most 16
// picks in a row, whatever they cost, then its tasklet goes to the back of
// the ring; every 61st pick looks outside first. A tasklet that runs long
// between switches delays everyone on its worker; only N4 and stealing from
// the ring move work away from it.
//
// ---------------------------------------------------------------------------
// sysmon: see the top of sysmon.cpp.
#include "scheduler.hpp"

#include "slab.hpp"

// GCC 12 reports a false -Wstringop-overflow inside moodycamel's
// enqueue_bulk once it is inlined here (GCC bug 106199 family).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif

#include <linux/futex.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "blocking_pool.hpp"
#include "futex.hpp"
#include "stack_pool.hpp"

namespace taiga::detail {
void spinlock::lock_slow() noexcept {
  for (unsigned spins = 0;; ++spins) {
    while (flag_.load(std::memory_order_relaxed)) {
      if (spins++ > 64) {
        std::this_thread::yield();
      } else {
        __builtin_ia32_pause();
      }
    }
    if (!flag_.exchange(true, std::memory_order_acquire)) return;
  }
}
}  // namespace taiga::detail

namespace taiga::internal {

using detail::wake_status;

namespace {

thread_local worker* tls_worker = nullptr;

std::uint64_t xorshift(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// park_polling: asleep in the worker's poller (I6), which unpark
// interrupts instead of the futex (tokio's PARKED_DRIVER).
constexpr std::uint32_t park_empty = 0, park_notified = 1, park_sleeping = 2, park_polling = 3;
constexpr std::int64_t poll_interval_ns =
    std::chrono::duration_cast<std::chrono::nanoseconds>(poll_interval).count();

}  // namespace

// Not inlined and opaque to the optimizer: a tasklet can resume on another
// thread after any switch, and a cached thread_local address would then be
// the old worker's (docs/hacking.md, "thread_local and migration").
[[gnu::noinline]] worker* this_worker() noexcept {
  asm volatile("" ::: "memory");
  return tls_worker;
}

void set_this_worker(worker* w) noexcept {
  tls_worker = w;
}

worker::worker(runtime_impl* r, unsigned i)
    : rt(r), index(i), solo(r->nworkers == 1), rq(solo), remote(64) {
  rng = 0x9E3779B97F4A7C15ULL * (i + 1);
  seen.resize(r->nworkers);
  ring_seen.resize(r->nworkers);
  inject_ptok = std::make_unique<moodycamel::ProducerToken>(rt->inject);
  if (!inject_ptok->valid()) throw std::bad_alloc();  // its producer could not be allocated
  inject_ctok = std::make_unique<moodycamel::ConsumerToken>(rt->inject);
}

worker::~worker() {
  release_spare();
}

void worker::release_spare() noexcept {
  if (spare) stack_pool::instance().release(std::exchange(spare, stack{}));
}

// ---- queues -------------------------------------------------------------

// Only the Blocks (32 queued pointers each, 328 bytes with this moodycamel)
// go to the slab: they are what a long queue allocates, again and again. The
// rest (producers, block indexes, initial pools) are one-offs per thread or
// queue, in sizes no tasklet block uses; from the slab each would claim a
// 64 KiB span per thread, so they stay with malloc. A 16-byte header records
// which (and the size, as moodycamel's free() passes none) and keeps malloc's
// alignment for what follows.
namespace {
constexpr std::size_t queue_header = 16;
constexpr bool queue_block_size(std::size_t size) {
  return size > 256 && size + queue_header <= 512;
}
}  // namespace

void* queue_traits::malloc(std::size_t size) noexcept {
  try {
    char* p = nullptr;
    std::size_t tag = 0;  // 0: malloc
    if (queue_block_size(size)) {
      tag = size + queue_header;
      p = static_cast<char*>(slab_allocate(tag));
    } else {
      p = static_cast<char*>(std::malloc(size + queue_header));
      if (p == nullptr) return nullptr;
    }
    *reinterpret_cast<std::size_t*>(p) = tag;
    return p + queue_header;
  } catch (...) {
    return nullptr;  // moodycamel's contract: the enqueue fails (then queued())
  }
}

void queue_traits::free(void* p) noexcept {
  if (p == nullptr) return;
  char* base = static_cast<char*>(p) - queue_header;
  std::size_t tag = *reinterpret_cast<std::size_t*>(base);
  if (tag == 0) {
    std::free(base);
  } else {
    slab_free(base, tag);
  }
}

void queued(bool ok) noexcept {
  if (ok) [[likely]]
    return;
  // A ready tasklet that cannot be queued would be lost: a silent hang.
  std::fputs("taiga: fatal: out of memory queueing a ready tasklet\n", stderr);
  std::abort();
}

void worker::push_local_slow(tasklet_core* t) {
  while (!rq.push(t)) {
    // Full: move half of the queue to the inject queue in one batch.
    tasklet_core* batch[run_queue::capacity / 2];
    std::uint32_t n = rq.grab_half_for_overflow(batch);
    if (n > 0) queued(rt->inject.enqueue_bulk(*inject_ptok, batch, n));
  }
}

void worker::push_private(tasklet_core* t) {
  try {
    priv.push_back(t);
  } catch (const std::bad_alloc&) {
    queued(false);
  }
}

tasklet_core* worker::pop_private() {
  if (priv.empty()) return nullptr;
  tasklet_core* t = priv.front();
  priv.pop_front();
  return t;
}

bool worker::run_timers() {
  std::int64_t now = now_ns();
  bool fired = timers.run_expired(now) > 0;
  return fired;
}

bool worker::poll_io(worker* owner, std::int64_t now, bool due) {
  poller* p = owner->io.load(std::memory_order_acquire);
  if (p == nullptr || p->in_flight() == 0) return false;
  std::int64_t last = owner->polled_ns.load(std::memory_order_relaxed);
  if (!due && now - last < poll_interval_ns) return false;
  // One poller of a busy worker is polled by one thief at a time; the
  // owner's own polls just record the time.
  if (owner != this_worker()) {
    if (!owner->polled_ns.compare_exchange_strong(last, now, std::memory_order_relaxed))
      return false;
  } else {
    owner->polled_ns.store(now, std::memory_order_relaxed);
  }
  in_io_completions = true;
  std::size_t ran = p->poll();
  in_io_completions = false;
  after_io_completions();
  return ran > 0;
}

// I6: completions make tasklets ready on the polling worker, which runs
// them next; a wake-up for each (make_ready's notify) would bring a thief
// that N5 turns away from a ring of at most small_ring, and costs the
// poller a futex or eventfd syscall per completion. One wake-up for the
// batch, and only when it is worth sharing.
void worker::after_io_completions() {
  if (!solo && rq.size() > small_ring) rt->notify_work();
}

tasklet_core* worker::pick_heavy() {
  // Outside work first every time we get here through the fairness tick.
  std::int64_t now = now_ns();
  timers.run_expired(now);
  // I/O at most every poll_interval while a stream of local work keeps the
  // queues from running dry (find_work polls when they do); not while the
  // inject queue holds work: a poll that readies more than the ring holds
  // overflows into it, and polling again before it is drained would keep
  // serving the newest completions while those wait (tcp_echo with 10,000
  // connections: a p99 of a second). sysmon polls a poller left alone for
  // a period, so I/O still cannot starve.
  // (The poller first: a runtime without one pays no inject-queue walk.)
  if (io.load(std::memory_order_relaxed) != nullptr && rt->inject.size_approx() == 0)
    poll_io(this, now, false);
  tasklet_core* t = nullptr;
  if (remote.try_dequeue(t)) return t;  // placed here: runs here
  if (fair_due) {
    fair_due = false;
    if (rt->inject.try_dequeue(*inject_ctok, t)) return t;
  }
  if ((t = pick_fast())) return t;
  if ((t = pick_fast())) return t;  // pick_fast declines every 61st tick
  // Take a batch from the inject queue: one to run, the rest queued here.
  tasklet_core* batch[32];
  std::size_t n = rt->inject.try_dequeue_bulk(*inject_ctok, batch, 32);
  if (n > 0) {
    for (std::size_t i = 1; i < n; ++i) push_local(batch[i], false);
    if (n > 1) rt->notify_work();
    return batch[0];
  }
  return nullptr;
}

tasklet_core* worker::steal_from_others() {
  unsigned n = rt->nworkers;
  if (n <= 1) return nullptr;
  tasklet_core* batch[run_queue::capacity / 2];
  unsigned start = static_cast<unsigned>(xorshift(rng) % n);
  for (unsigned k = 0; k < n; ++k) {
    worker* v = rt->workers[(start + k) % n].get();
    if (v == this) continue;
    // N5: a small ring behind a running tasklet is what the victim works
    // through in its next few switches (typically a sender that yielded to
    // its receiver, a consumer it just woke): taken only once the victim
    // has not popped from it for next_steal_after_ns.
    if (!small_ring_overdue(v)) continue;
    std::uint32_t got = v->rq.steal_half(batch);
    if (got == 0) {
      // N1, N2: the next slot only when its owner is not about to run it.
      // The count first, then the slot (pairs with prepare's release): the
      // slot read is then of that count's run or a later one, never an
      // older one, so a note cannot pair a tasklet seen in the slot in an
      // earlier run (at its spawn, say) with the count of the run that
      // hands off to it.
      std::uint64_t count = v->switches.load(std::memory_order_acquire);
      tasklet_core* seen_t = v->next_slot.load(std::memory_order_relaxed);
      if (seen_t == nullptr || !next_slot_overdue(v, seen_t, count)) continue;
      if (tasklet_core* t = v->next_slot.exchange(nullptr, std::memory_order_acq_rel)) {
        bump(stats.steals);
        v->stats.stolen.fetch_add(1, std::memory_order_relaxed);
        if (detail::trace_on()) [[unlikely]]
          trace::steal(this, v->index, 1);
        return t;
      }
      continue;
    }
    for (std::uint32_t i = 1; i < got; ++i) push_local(batch[i], false);
    bump(stats.steals, got);
    v->stats.stolen.fetch_add(got, std::memory_order_relaxed);
    if (detail::trace_on()) [[unlikely]]
      trace::steal(this, v->index, got);
    return batch[0];
  }
  return nullptr;
}

// N2: true once this thief has seen `t` in v's next slot, with v's switch
// count `s` unchanged (read before the slot), for next_steal_after_ns. Thief
// only; the exchange in steal_from_others decides who gets the tasklet.
bool worker::next_slot_overdue(worker* v, tasklet_core* t, std::uint64_t s) {
  next_seen& m = seen[v->index];
  // A victim in its loop (no tasklet running) picks its next slot before it
  // can sleep (pick_heavy): it is about to run it. Its count does not move
  // while it is there; without this check thieves took a hand-off's
  // receiver from victims in their loop 1-5 us after the hand-off (about 1
  // in 3,000 in the A2 test, the victim's `running` null every time).
  if (v->running.load(std::memory_order_relaxed) == nullptr) {
    m = next_seen{};
    return false;
  }
  std::int64_t now = now_ns();
  if (m.t != t || m.switches != s) {
    m = next_seen{t, s, now};
    return false;
  }
  return now - m.since_ns >= next_steal_after_ns;
}

// N5: false while v's ring holds 1..small_ring tasklets behind a running
// tasklet and this thief has not yet seen its head stay put (no pop, no
// steal) for next_steal_after_ns. Thief only.
bool worker::small_ring_overdue(worker* v) {
  ring_note& m = ring_seen[v->index];
  std::uint32_t h = v->rq.head();
  std::uint32_t n = v->rq.size();
  if (n == 0 || n > small_ring || v->running.load(std::memory_order_relaxed) == nullptr) {
    m.valid = false;
    return true;  // nothing, a big ring, or an owner in its loop: steal_half decides
  }
  std::int64_t now = now_ns();
  if (!m.valid || m.head != h) {
    m = ring_note{h, true, now};
    return false;
  }
  return now - m.since_ns >= next_steal_after_ns;
}

// ---- the loop ------------------------------------------------------------

tasklet_core* worker::find_work() {
  for (;;) {
    if (rt->stopping.load(std::memory_order_acquire)) return nullptr;
    if (tasklet_core* t = pick_heavy()) {
      if (spinning) {
        spinning = false;
        if (rt->nspinning.fetch_sub(1, std::memory_order_seq_cst) == 1) rt->wake_one();
      }
      return t;
    }
    // The queues ran dry: completions first, before stealing (Go's
    // findRunnable polls the network before it steals). A solo worker has
    // no one to steal from and nothing to spin for: it goes straight to
    // its poller's wait below, which runs what is ready without a second
    // epoll_wait (tcp_echo: one epoll_wait per batch, as Asio's run()).
    const bool solo_io = solo && io.load(std::memory_order_relaxed) != nullptr;
    if (!solo_io && poll_io(this, now_ns(), true)) continue;
    // Steal phase, as a spinner (at most half of the busy workers spin).
    if (!spinning && !solo_io) {
      int busy = static_cast<int>(rt->nworkers) - rt->npidle.load(std::memory_order_relaxed);
      if (2 * rt->nspinning.load(std::memory_order_relaxed) < busy) {
        spinning = true;
        rt->nspinning.fetch_add(1, std::memory_order_seq_cst);
        if (detail::trace_on()) [[unlikely]]
          trace::worker_spin(this);
      }
    }
    if (spinning) {
      tasklet_core* t = nullptr;
      for (unsigned round = 0; round < rt->cfg.spin_rounds && !t; ++round) {
        t = steal_from_others();
        if (!t) {
          // Run other workers' overdue timers (their owner may be busy),
          // and poll the pollers of busy ones not polled for poll_interval.
          std::int64_t now = now_ns();
          for (auto& w : rt->workers) {
            if (w.get() == this) continue;
            if (w->timers.next_deadline() <= now) w->timers.run_expired(now);
            if (w->running.load(std::memory_order_relaxed) != nullptr) poll_io(w.get(), now, false);
          }
          t = pick_heavy();
        }
        if (!t) __builtin_ia32_pause();
      }
      if (t) {
        spinning = false;
        if (rt->nspinning.fetch_sub(1, std::memory_order_seq_cst) == 1) rt->wake_one();
        return t;
      }
    }
    // Go to sleep (I4).
    {
      std::lock_guard lk(rt->idle_mu);
      rt->idle.push_back(this);
      in_idle.store(true, std::memory_order_relaxed);
      rt->npidle.fetch_add(1, std::memory_order_seq_cst);
    }
    if (spinning) {
      spinning = false;
      rt->nspinning.fetch_sub(1, std::memory_order_seq_cst);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (rt->work_visible(this) || rt->stopping.load(std::memory_order_acquire)) {
      rt->idle_leave(this);
      // I5: a wake_one may have picked us from the idle list in the window
      // above and counted us in nspinning; take that role now, or the count
      // leaks and blocks every later wake_one.
      if (wake_spinning.exchange(false, std::memory_order_acq_rel)) spinning = true;
      continue;
    }
    if (detail::trace_on()) [[unlikely]]
      trace::worker_sleep(this, timers.next_deadline());
    sleep(timers.next_deadline());
    rt->idle_leave(this);
    if (wake_spinning.exchange(false, std::memory_order_acq_rel)) {
      spinning = true;  // wake_one counted us in nspinning
    }
  }
}

void worker::sleep(std::int64_t deadline_ns) {
  bump(stats.sleeps);
  std::int64_t t0 = now_ns();
  if (park_word.exchange(park_empty, std::memory_order_acquire) == park_notified) return;
  std::uint32_t expect = park_empty;
  if (poller* p = io.load(std::memory_order_acquire)) {
    // I6: the poller instead of the futex. unpark sees park_polling and
    // interrupts the poller; an interrupt that lands before p->wait is
    // kept by the poller (poller.hpp), so the wait returns at once.
    if (park_word.compare_exchange_strong(expect, park_polling, std::memory_order_acq_rel)) {
      in_io_completions = true;
      p->wait(deadline_ns);
      in_io_completions = false;
      after_io_completions();
      polled_ns.store(now_ns(), std::memory_order_relaxed);
    }
    park_word.exchange(park_empty, std::memory_order_acquire);
    bump(stats.idle_ns, static_cast<std::uint64_t>(now_ns() - t0));
    return;
  }
  if (park_word.compare_exchange_strong(expect, park_sleeping, std::memory_order_acq_rel)) {
    if (deadline_ns == std::numeric_limits<std::int64_t>::max()) {
      futex(&park_word, FUTEX_WAIT, park_sleeping);
    } else {
      std::int64_t d = deadline_ns - t0;
      if (d > 0) {
        struct timespec ts {
          static_cast<time_t>(d / 1000000000), static_cast<long>(d % 1000000000)
        };
        futex(&park_word, FUTEX_WAIT, park_sleeping, &ts);
      }
    }
  }
  park_word.exchange(park_empty, std::memory_order_acquire);
  bump(stats.idle_ns, static_cast<std::uint64_t>(now_ns() - t0));
}

void worker::unpark() noexcept {
  std::uint32_t old = park_word.exchange(park_notified, std::memory_order_acq_rel);
  if ((old == park_sleeping || old == park_polling) && detail::trace_on()) [[unlikely]]
    trace::worker_wake(this);
  if (old == park_sleeping) {
    futex(&park_word, FUTEX_WAKE, 1);
  } else if (old == park_polling) {
    io.load(std::memory_order_acquire)->interrupt();
  }
}

tasklet_frame* worker::start_fresh(tasklet_core* t) {
  stack s;
  // A stack size of its own is in the side record: a tasklet without one
  // (the rule) asks for the default.
  std::size_t request =
      t->extra.load(std::memory_order_relaxed) == nullptr ? 0 : detail::requested_stack(t);
  if (request == 0 && spare) {
    s = stack_pool::reissue(std::exchange(spare, stack{}));
  } else {
    s = stack_pool::instance().allocate(request ? request : rt->cfg.stack_size);
    if (request == 0) default_total = s.total;
  }
  bump(stats.stacks);
  // The frame takes the top of the usable range (in the page make_context
  // touches anyway); the root context's stack is what lies below it.
  std::size_t below = s.usable() - sizeof(tasklet_frame);
  auto* f = ::new (static_cast<void*>(s.lo() + below)) tasklet_frame;
  f->stack_total = static_cast<std::uint32_t>(s.total);
  f->stack_guard = static_cast<std::uint8_t>(s.guard);
  f->ctx.kind = 1;
  f->ctx.canary = s.guard == stack_guard_mode::canary;
  make_context(f->ctx, s.lo(), below, &detail_tasklet_entry);
  t->frame.store(f, std::memory_order_release);
  return f;
}

void worker::run_in_main(tasklet_core* t) {
  exec_context* to = prepare(t);
  switch_payload p{after::none, nullptr, this};
  auto* back = static_cast<switch_payload*>(switch_context(main_ctx, *to, &p));
  after_switch(back);
}

tasklet_core* worker::exit_current(tasklet_core* cur) {
  // The last switch off this stack is checked like every other (switch_out):
  // the stack goes back to the pool next, and its next owner would be
  // blamed for an overflow that did not park again.
  tasklet_frame* f = cur->frame.load(std::memory_order_relaxed);
  check_canary(cur, f);
  tasklet_core* nxt = pick_fast();
  // A fresh tasklet that wants a default stack, after one that had one (a
  // spawn-and-exit stream: most exits): it adopts the stack, the frame and
  // the root context as they are, and runs on the spot, one loop turn in
  // detail_tasklet_entry. That skips a stack release and reissue, a
  // make_context and a context switch (about a fifth of spawn_join's
  // instructions per tasklet). The context is at its bottom frame: no fiber
  // is active on it, no exception is being handled, nothing above the
  // entry function's frame is live. `cur` left the registry in finish(), so
  // no other thread reads the frame through it (tasklet_frame).
  if (nxt != nullptr && nxt->frame.load(std::memory_order_relaxed) == nullptr &&
      f->stack_total == default_total && f->active == &f->ctx &&
      (nxt->extra.load(std::memory_order_relaxed) == nullptr || detail::requested_stack(nxt) == 0))
      [[likely]] {
    cur->frame.store(nullptr, std::memory_order_relaxed);
    f->park_what.store(nullptr, std::memory_order_relaxed);
    f->park_object.store(nullptr, std::memory_order_relaxed);
    f->scope_expired = false;
    reuse_below(f->ctx, __builtin_frame_address(0));
    nxt->frame.store(f, std::memory_order_release);  // info_of reads it (tasklet_core::frame)
    prepare(nxt);
    // The runtime's reference. Its release runs none of the user's code, here
    // or in after_switch_slow (tasklet_vtable::destroy, drop_user_state in
    // tasklet.cpp); it goes after prepare all the same, so that were that
    // ever broken, such code would find a current tasklet with a frame.
    detail::release(cur);
    return nxt;
  }
  exec_context* to;
  if (nxt != nullptr) {
    to = prepare(nxt);
  } else {
    current = nullptr;
    running.store(nullptr, std::memory_order_relaxed);
    to = &main_ctx;
  }
  // The payload must outlive the switch; it is this thread's, and the
  // resumed side (on this same thread) consumes it at once.
  static thread_local switch_payload p;
  p = switch_payload{after::exit, cur, this};
  exit_context(*f->active, *to, &p);
}

void worker::after_switch_slow(switch_payload* p) {
  tasklet_core* prev = p->prev;
  switch (p->what) {
    case after::none:
      break;
    case after::requeue:  // pinned (the common case is inline, in scheduler.hpp)
      make_ready(prev, false);
      break;
    case after::park:  // inline, in scheduler.hpp
      break;
    case after::exit: {
      // Nobody else reads the frame now: the tasklet left the registry in
      // finish() (tasklet_frame).
      tasklet_frame* f = prev->frame.load(std::memory_order_relaxed);
      destroy_context(f->ctx);
      // The slot starts one (guard) page below the usable range (stack::lo).
      stack s{static_cast<char*>(f->ctx.stack_lo) - stack_pool::page_size(), f->stack_total,
              static_cast<stack_guard_mode>(f->stack_guard)};
      f->~tasklet_frame();
      prev->frame.store(nullptr, std::memory_order_relaxed);
      if (!spare && s.total == default_total) {
        spare = s;
      } else {
        stack_pool::instance().release(s);
      }
      bump(stats.stacks, -1);
      detail::release(prev);  // the runtime's reference: no user code (exit_current)
      break;
    }
  }
}

// ---- making tasklets ready ---------------------------------------------

void place_at(tasklet_core* t, unsigned target) noexcept {
  runtime_impl* rt = t->rt;
  worker* w = this_worker();
  if (w != nullptr && w->rt == rt && w->index == target) {
    w->push_private(t);
    return;
  }
  worker* h = rt->workers[target].get();
  queued(h->remote.enqueue(t));
  rt->unpark_worker(h);  // embedded: no idle list, so this is h->unpark()
}

void place_ready(tasklet_core* t, placement how) noexcept {
  runtime_impl* rt = t->rt;
  if ((t->flags.load(std::memory_order_relaxed) & tasklet_core::flag_pinned) && t->home >= 0) {
    place_at(t, static_cast<unsigned>(t->home));
    return;
  }
  worker* w = this_worker();
  if (w != nullptr && w->rt == rt) {
    place_local(w, t, how);
    return;
  }
  queued(rt->inject.enqueue(t));
  rt->inject_count.fetch_add(1, std::memory_order_relaxed);
  if (rt->embedded) {
    rt->workers[0]->unpark();
  } else {
    rt->notify_work_fenced();
  }
}

bool interrupt_park(tasklet_core* t, wake_status reason) noexcept {
  std::uint32_t v = t->wait_word.load(std::memory_order_seq_cst);
  for (;;) {
    if (v == ww_idle || (v & ww_claimed)) return false;
    std::uint32_t nv =
        v | ww_claimed | ww_released | (static_cast<std::uint32_t>(reason) << ww_reason_shift);
    if (t->wait_word.compare_exchange_weak(v, nv, std::memory_order_acq_rel)) {
      // `t` is alive here: every caller holds a reference to it (kill,
      // throw_into, the deadlock handler) or its timer node, which the
      // tasklet cancels under the heap's lock that the firing holds.
      if (detail::trace_on()) [[unlikely]]
        detail::trace_unblock(t->id, t->rt, v, static_cast<std::uint8_t>(reason));
      if (v & ww_switched) make_ready(t, false);
      return true;
    }
  }
}

}  // namespace taiga::internal

// ---- runtime_impl ----------------------------------------------------------

namespace taiga::detail {

using internal::worker;

// Runtimes that exist now. A handle may outlive its runtime (the block is
// the slab's, so join() still works); what then reads the runtime (the error
// report of a dropped or detached handle) asks here first, and holds the
// mutex while it reads, so the runtime cannot go meanwhile. Leaked on
// purpose: handles may die during static destruction.
std::mutex& runtime_impl::live_mutex() noexcept {
  static auto* mu = new std::mutex;
  return *mu;
}
namespace {
std::vector<const runtime_impl*>& live_runtimes() {
  static auto* v = new std::vector<const runtime_impl*>;
  return *v;
}
}  // namespace

bool runtime_impl::exists_locked(const runtime_impl* r) noexcept {
  auto& v = live_runtimes();
  return std::find(v.begin(), v.end(), r) != v.end();
}

namespace {
std::atomic<std::uint64_t> next_runtime_id{1};
}

runtime_impl::runtime_impl(runtime* o, runtime_config c)
    : owner(o),
      cfg(std::move(c)),
      trace_id(next_runtime_id.fetch_add(1, std::memory_order_relaxed)) {
  if (cfg.workers == all_cores) {
    unsigned hc = std::thread::hardware_concurrency();
    cfg.workers = hc == 0 ? 1 : hc;
  }
  if (cfg.workers > 1024) throw usage_error("taiga: at most 1024 workers");
  if (cfg.stack_size < 16 * 1024) cfg.stack_size = 16 * 1024;
  embedded = cfg.workers == 0;
  nworkers = embedded ? 1 : cfg.workers;
  nshards = nworkers + 1;
  shards = std::make_unique<registry_shard[]>(nshards);
  for (unsigned i = 0; i < nworkers; ++i) workers.push_back(std::make_unique<worker>(this, i));
  blocking = std::make_unique<internal::blocking_pool>(this, cfg.blocking_threads);
  std::lock_guard lk(live_mutex());  // last: nothing after this throws
  live_runtimes().push_back(this);
}

runtime_impl::~runtime_impl() {
  std::lock_guard lk(live_mutex());
  auto& v = live_runtimes();
  v.erase(std::remove(v.begin(), v.end(), this), v.end());
}

void runtime_impl::start() {
  internal::stack_pool::prepare_thread();
  internal::trace::on_runtime_start(this);  // TAIGA_TRACE
  if (embedded) return;
  // A runtime with threads of its own: the slab may start its filler thread
  // (slab.cpp, "Populating ahead"). An embedded-only process starts none.
  internal::slab_allow_filler();
  for (unsigned i = 0; i < nworkers; ++i) {
    threads.emplace_back([this, i] {
      worker* w = workers[i].get();
      internal::stack_pool::prepare_thread();
      // The default 50 us timer slack made every timed sleep of an idle
      // worker (its next timer) wake 50-80 us late (bench wake_latency).
      ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
      internal::init_thread_context(w->main_ctx);
      internal::tls_worker = w;
      w->os_tid.store(static_cast<int>(::gettid()), std::memory_order_relaxed);
      while (internal::tasklet_core* t = w->find_work()) w->run_in_main(t);
      internal::tls_worker = nullptr;
    });
  }
  sysmon = std::thread([this] { sysmon_loop(); });
}

void runtime_impl::notify_work() noexcept {
  // I2. A worker pushing to its own queues skips the seq_cst fence of
  // notify_work_fenced(): if the check below misses a worker that is just
  // going to sleep, the pusher is awake and will run the work itself; only
  // parallelism is delayed, until the next notify. Pushes that no running
  // worker owns (inject queue, another worker's queue) use the fenced form,
  // which pairs with the fence of step I4.
  if (npidle.load(std::memory_order_seq_cst) > 0 && nspinning.load(std::memory_order_seq_cst) == 0)
    wake_one();
}

void runtime_impl::notify_work_fenced() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  notify_work();
}

void runtime_impl::wake_one() noexcept {
  if (embedded) return;
  int zero = 0;
  if (!nspinning.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
  worker* w = nullptr;
  {
    std::lock_guard lk(idle_mu);
    if (!idle.empty()) {
      w = idle.back();
      idle.pop_back();
      w->in_idle.store(false, std::memory_order_relaxed);
      // I5: set under idle_mu, in the same step that takes w out of the
      // list. w consumes the flag only after its own idle_leave (which takes
      // idle_mu), so it cannot look before we have set it.
      w->wake_spinning.store(true, std::memory_order_release);
      npidle.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  if (w == nullptr) {
    nspinning.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  w->unpark();
}

void runtime_impl::unpark_worker(worker* w) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  idle_leave(w);
  w->unpark();
}

void runtime_impl::idle_leave(worker* w) noexcept {
  std::lock_guard lk(idle_mu);
  if (!w->in_idle.load(std::memory_order_relaxed)) return;
  auto it = std::find(idle.begin(), idle.end(), w);
  if (it != idle.end()) idle.erase(it);
  w->in_idle.store(false, std::memory_order_relaxed);
  npidle.fetch_sub(1, std::memory_order_seq_cst);
}

bool runtime_impl::work_visible(worker* self) noexcept {
  if (inject.size_approx() > 0) return true;
  if (self->remote.size_approx() > 0 || !self->priv.empty()) return true;
  // N6: another worker's next slot, or its small ring behind a running
  // tasklet, is what that worker runs in its next switches, and N2/N5
  // would not let us take it yet. Counted as work, it kept idle workers from
  // sleeping for as long as hand-offs went on elsewhere, polling the busy
  // worker's queues (their cache lines) in a loop. A stuck owner is
  // sysmon's to notice (N4).
  for (auto& w : workers) {
    std::uint32_t n = w->rq.size();
    if (w.get() == self) {
      if (n != 0 || w->next_slot.load(std::memory_order_relaxed) != nullptr) return true;
    } else if (n > internal::small_ring ||
               (n != 0 && w->running.load(std::memory_order_relaxed) == nullptr)) {
      return true;
    }
  }
  if (self->timers.next_deadline() <= internal::now_ns()) return true;
  return false;
}

// ---- registry ----------------------------------------------------------

std::size_t runtime_impl::live_count() {
  std::size_t n = 0;
  for (unsigned i = 0; i < nshards; ++i) {
    std::lock_guard lk(shards[i].lock);
    n += shards[i].count;
  }
  return n;
}

std::vector<tasklet_core*> runtime_impl::snapshot_live() {
  std::vector<tasklet_core*> out;
  for (unsigned i = 0; i < nshards; ++i) {
    std::lock_guard lk(shards[i].lock);
    for (tasklet_core* t = shards[i].head; t; t = t->reg_next) {
      t->refs.fetch_add(1, std::memory_order_relaxed);
      out.push_back(t);
    }
  }
  return out;
}

tasklet_info runtime_impl::info_of(tasklet_core* t, bool shard_locked) {
  tasklet_info i;
  i.id = t->id;
  i.spawn_site = to_location(t->site);
  i.name = name_of(t);
  tasklet_state s = t->state.load(std::memory_order_acquire);
  i.state = to_string(s);
  // The frame (last worker, what it is parked on) is on the tasklet's
  // stack, which goes back to the pool only after the tasklet has left the
  // registry under its shard's lock: under that lock, registered means the
  // stack is there. (Not "not done": an error handler that parks in
  // finish() overwrites `done`.)
  const char* what = nullptr;
  bool parked = false;
  std::uint8_t reason = 0;
  const void* object = nullptr;
  const site_record* site = nullptr;
  std::uint32_t since = 0;
  auto read = [&] {
    registry_shard& sh = shards[t->registry_shard];
    if (t->reg_prev == nullptr && sh.head != t) return;  // unregistered
    if (tasklet_frame* f = t->frame.load(std::memory_order_acquire)) {
      i.worker = f->last_worker.load(std::memory_order_relaxed);
      if (s == tasklet_state::parked) {
        parked = true;
        what = f->park_what.load(std::memory_order_relaxed);
        reason = f->park_reason.load(std::memory_order_relaxed);
        object = f->park_object.load(std::memory_order_relaxed);
        site = f->park_site.load(std::memory_order_relaxed);
        since = f->park_since_ms.load(std::memory_order_relaxed);
      }
    }
  };
  if (shard_locked) {
    read();
  } else {
    std::lock_guard lk(shards[t->registry_shard].lock);
    read();
  }
  if (parked) {  // the string is built outside the lock
    i.parked_on = park_cause(static_cast<park_reason>(reason), what).text();
    if (auto fd = detail::fd_of_object(object)) {
      i.parked_fd = *fd;
    } else {
      i.parked_object = object;
    }
    i.parked_at = to_location(site);
    // Only a park that began while the running trace records has its
    // time (32-bit milliseconds: differences survive the wrap).
    std::uint32_t now = static_cast<std::uint32_t>(internal::now_ns() / 1'000'000);
    std::uint32_t begun = internal::trace::recording_since_ms(this);
    if (begun != 0 && now - since <= now - begun)
      i.parked_for = std::chrono::milliseconds(now - since);
  }
  return i;
}

std::size_t runtime_impl::timers_pending() {
  std::size_t n = 0;
  for (auto& w : workers) n += w->timers.size();
  return n;
}

// ---- embedded driving and shutdown ---------------------------------------

void runtime_impl::drive(tasklet_core* main) {
  worker* w = workers[0].get();
  internal::worker* prev = internal::tls_worker;
  internal::init_thread_context(w->main_ctx);
  internal::tls_worker = w;
  struct restore {
    internal::worker* p;
    ~restore() { internal::tls_worker = p; }
  } r{prev};
  for (;;) {
    while (tasklet_core* t = w->pick_heavy()) w->run_in_main(t);
    if (main != nullptr && main->state.load(std::memory_order_acquire) == tasklet_state::done)
      return;
    if (main == nullptr && live_count() == 0) return;
    if (cfg.detect_deadlock && main != nullptr && deadlocked_now()) {
      handle_deadlock();
      continue;
    }
    w->sleep(w->timers.next_deadline());
  }
}

void runtime_impl::shutdown(shutdown_mode mode) {
  if (stopped.load()) return;
  internal::worker* me = internal::this_worker();
  if (me != nullptr && me->rt == this && me->current != nullptr)
    throw usage_error("taiga: runtime::shutdown called from one of its own tasklets");
  if (mode == shutdown_mode::wait) {
    if (embedded) {
      drive(nullptr);
    } else {
      while (live_count() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // Kill whatever is left; a tasklet that swallows tasklet_exit and parks
  // again is killed again until it gives up. A handle destructor's masked
  // join gives up too (drop_handle): it could wait for a tasklet that waits
  // for it.
  killing_all.store(true, std::memory_order_seq_cst);
  while (live_count() != 0) {
    std::vector<tasklet_core*> all = snapshot_live();
    for (tasklet_core* t : all) {
      detail::kill(t);
      release(t);
    }
    // Fire every timer now: sleepers were just interrupted anyway, and a
    // pending call_later's tasklet is only ever scheduled by its timer (it
    // then sees its kill and never runs its body).
    for (auto& w : workers) w->timers.run_expired(std::numeric_limits<std::int64_t>::max());
    if (embedded) {
      worker* w = workers[0].get();
      internal::worker* prev = internal::tls_worker;
      internal::init_thread_context(w->main_ctx);
      internal::tls_worker = w;
      while (tasklet_core* t = w->pick_heavy()) w->run_in_main(t);
      internal::tls_worker = prev;
      if (live_count() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      for (int i = 0; i < 50 && live_count() != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  stopping.store(true, std::memory_order_seq_cst);
  for (auto& w : workers) w->unpark();
  for (auto& th : threads) th.join();
  threads.clear();
  {
    std::lock_guard lk(sysmon_mu);
    sysmon_stop = true;
  }
  sysmon_cv.notify_all();
  if (sysmon.joinable()) sysmon.join();
  blocking->stop();
  drain_pollers();  // no tasklet is left to wait for a completion
  // The workers' spares go back first (no worker runs now), so that a
  // stopped runtime kept alive holds no stacks.
  for (auto& w : workers) w->release_spare();
  internal::stack_pool::instance().trim_idle();  // what this runtime no longer needs
  // Every thread of the runtime is joined: the trace's last generation
  // holds everything they emitted.
  internal::trace::on_runtime_shutdown(this);
  stopped.store(true);
}

}  // namespace taiga::detail

namespace taiga::detail {

// Here, beside tls_worker, so that it reads the thread's worker without the
// opaque call of this_worker(): it parks nowhere, so no switch can come
// between the read and its use (the rule this_worker() exists for). Every
// channel and sync operation calls it once (interruption_point).
bool interrupt_pending() noexcept {
  internal::worker* w = internal::tls_worker;
  tasklet_core* t = w ? w->current : nullptr;
  if (t == nullptr) return false;
  // Relaxed: kill() and throw_into() set the flag with seq_cst; a check
  // that misses a kill set this instant is followed by the next park
  // point's P1 check, or by the next interruption point.
  std::uint8_t f = t->flags.load(std::memory_order_relaxed);
  return (f & (tasklet_core::flag_kill | tasklet_core::flag_throw)) != 0 &&
         (f & tasklet_core::flag_masked) == 0;
}

}  // namespace taiga::detail
