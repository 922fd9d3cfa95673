// io.cpp: the per-worker io_context behind taiga::net (net/include/taiga/net/detail/io.hpp).
//
// A worker's poller is its io_context. poll() runs what is ready (Asio runs
// its reactor with a zero timeout when it reaches it); wait() blocks in the
// reactor (epoll_wait) until one handler ran: an I/O completion, the
// deadline timer, or interrupt()'s posted no-op. Asio's scheduler keeps a
// posted handler until a thread runs it, so an interrupt that comes before
// the wait is not lost (the poller contract, taiga/runtime/poller.hpp).
//
// The deadline: epoll_wait's own timeout has millisecond granularity (Asio
// rounds up), which would make every timer of a worker idle in its poller
// up to 1 ms late. A steady_timer (a timerfd in Asio's reactor, nanosecond
// precise) is armed instead, and re-armed only when the worker's next
// deadline changes: one timerfd_settime per new deadline.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdlib>
#include <string>
#include <string_view>
#include <taiga/net/detail/io.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/this_tasklet.hpp>

namespace taiga::net::detail {

io_poller::io_poller(unsigned index)
    : ctx_(std::make_unique<asio::io_context>()),
      work_(asio::make_work_guard(*ctx_)),
      deadline_(*ctx_),
      index_(index) {}

io_poller::~io_poller() {
  work_.reset();
  deadline_.cancel();
  // What is left (the deadline timer's handler) runs here, on the thread
  // destroying the runtime; socket operations are all over by now (the
  // runtime drained its pollers after its last tasklet ended).
  ctx_->poll();
}

std::size_t io_poller::poll() {
  start_deferred();
  std::size_t n = ctx_->poll();
  // The owner waits in run_one and we are another thread (a spinner,
  // sysmon): we may have run the no-op an interrupt() posted for it. Post
  // another; at worst it wakes once for nothing.
  if (reactor_waiting_.load(std::memory_order_seq_cst)) post_wakeup();
  return n;
}

void io_poller::post_wakeup() noexcept {
  try {
    asio::post(*ctx_, [] {});
  } catch (...) {
    // Out of memory for a handler: the wait ends at its deadline or the
    // next completion, as a sleeping worker's would at its next timer.
  }
}

bool io_poller::owned_by_caller() const noexcept {
  return this_tasklet::worker() == static_cast<int>(index_);
}

void io_poller::defer(direction* d) noexcept {
  std::lock_guard lk(defer_lock_);
  d->deferred = true;
  d->dprev = nullptr;
  d->dnext = deferred_;
  if (deferred_) deferred_->dprev = d;
  deferred_ = d;
  any_deferred_.store(true, std::memory_order_relaxed);
}

bool io_poller::undefer(direction* d) noexcept {
  std::lock_guard lk(defer_lock_);
  if (!d->deferred) return false;  // started already
  d->deferred = false;
  if (d->dprev) {
    d->dprev->dnext = d->dnext;
  } else {
    deferred_ = d->dnext;
  }
  if (d->dnext) d->dnext->dprev = d->dprev;
  if (deferred_ == nullptr) any_deferred_.store(false, std::memory_order_relaxed);
  return true;
}

void io_poller::start_deferred() noexcept {
  if (!any_deferred_.load(std::memory_order_relaxed)) return;
  // Under the lock (E6): an interrupted reader's undefer then either finds
  // its read not started, or started with its cancellation slot bound.
  std::lock_guard lk(defer_lock_);
  // The list is LIFO: start the oldest first (its peer had the most time).
  direction* last = deferred_;
  while (last && last->dnext) last = last->dnext;
  for (direction* d = last; d != nullptr;) {
    direction* prev = d->dprev;
    d->deferred = false;
    d->dnext = d->dprev = nullptr;
    try {
      d->start_fn(d, d->start_arg);
    } catch (...) {  // out of memory for Asio's operation
      completion{d, this}(asio::error::no_memory, 0);
    }
    d = prev;
  }
  deferred_ = nullptr;
  any_deferred_.store(false, std::memory_order_relaxed);
}

void io_poller::wait(std::int64_t deadline_ns) {
  start_deferred();
  if (deadline_ns != INT64_MAX && deadline_ns != armed_) {
    armed_ = deadline_ns;
    deadline_.expires_at(asio::steady_timer::time_point(std::chrono::nanoseconds(deadline_ns)));
    deadline_.async_wait([](const error_code&) {});  // its run ends the wait
  }
  reactor_waiting_.store(true, std::memory_order_seq_cst);
  ctx_->run_one();
  reactor_waiting_.store(false, std::memory_order_relaxed);
}

void io_poller::interrupt() noexcept {
  post_wakeup();
}

namespace {
runtime& require_runtime() {
  runtime* rt = runtime::current();
  if (rt == nullptr) throw usage_error("taiga::net: I/O outside a taiga runtime");
  install_pollers(*rt, [](unsigned i) { return std::make_unique<io_poller>(i); });
  return *rt;
}
}  // namespace

io_poller& current_poller() {
  runtime& rt = require_runtime();
  int w = this_tasklet::worker();
  return *static_cast<io_poller*>(poller_of(rt, w < 0 ? 0u : static_cast<unsigned>(w)));
}

io_poller& poller_at(unsigned i) {
  runtime& rt = require_runtime();
  unsigned n = rt.worker_count() == 0 ? 1 : rt.worker_count();
  return *static_cast<io_poller*>(poller_of(rt, i % n));
}

unsigned poller_count() {
  runtime& rt = require_runtime();
  return rt.worker_count() == 0 ? 1 : rt.worker_count();
}

void throw_error(const error_code& ec, const char* op, const std::string& where) {
  std::string what = std::string("taiga::net: ") + op;
  if (!where.empty()) what += " " + where;
  throw std::system_error(std::error_code(ec), what);
}

}  // namespace taiga::net::detail
