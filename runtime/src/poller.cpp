// poller.cpp: installing the I/O hook (taiga/runtime/poller.hpp).
//
// How workers use a poller (poll when dry, every poll_interval when busy,
// wait in it when idle) is in scheduler.cpp ("Idle workers", I6); here is
// only its life: installed once per runtime, while it runs, and drained and
// destroyed at shutdown, after the last tasklet is gone and the workers
// have stopped, so that no completion can find a dead tasklet or a worker
// that no longer polls.
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/poller.hpp>

#include "scheduler.hpp"

namespace taiga {

void install_pollers(runtime& rt, const std::function<std::unique_ptr<poller>(unsigned)>& make) {
  detail::runtime_impl* r = rt.impl();
  if (r->io_installed.load(std::memory_order_acquire)) return;
  std::lock_guard lk(r->io_mu);
  if (r->io_installed.load(std::memory_order_relaxed)) return;
  if (r->stopping.load(std::memory_order_acquire))
    throw usage_error("taiga: install_pollers on a runtime that is shutting down");
  // All or none: make() may throw (no fds left for an epoll instance).
  std::vector<std::unique_ptr<poller>> made;
  made.reserve(r->nworkers);
  for (unsigned i = 0; i < r->nworkers; ++i) {
    made.push_back(make(i));
    if (!made.back()) throw usage_error("taiga: install_pollers: the factory returned no poller");
  }
  r->pollers = std::move(made);
  for (unsigned i = 0; i < r->nworkers; ++i)
    r->workers[i]->io.store(r->pollers[i].get(), std::memory_order_release);
  r->io_installed.store(true, std::memory_order_release);
  // A worker asleep on its futex moves into its poller at its next sleep:
  // wake each once (I6).
  for (auto& w : r->workers) w->unpark();
}

poller* poller_of(runtime& rt, unsigned index) noexcept {
  detail::runtime_impl* r = rt.impl();
  if (index >= r->nworkers) return nullptr;
  return r->workers[index]->io.load(std::memory_order_acquire);
}

}  // namespace taiga

namespace taiga::detail {

std::size_t runtime_impl::io_in_flight() const noexcept {
  if (!io_installed.load(std::memory_order_acquire)) return 0;
  std::size_t n = 0;
  for (const auto& p : pollers) n += p->in_flight();
  return n;
}

void runtime_impl::drain_pollers() {
  if (!io_installed.load(std::memory_order_acquire)) return;
  // No tasklet is left, so nothing waits for these completions (cancelled
  // reads, a listener's last wait); running them frees what the operations
  // hold. Bounded: a poller whose operations never end (a bug in an I/O
  // module) is left to its destructor.
  for (int round = 0; round < 1000 && io_in_flight() != 0; ++round)
    for (auto& p : pollers) p->poll();
}

}  // namespace taiga::detail
