// The machinery under every taiga::net endpoint: one Asio io_context per
// worker (the runtime's poller hook), and the one function that turns an
// Asio asynchronous operation into a parked tasklet (await_op). The design
// and its invariants are in docs/design/net.md; in short:
//
//   E1 An endpoint's socket belongs to one worker's io_context for its
//      life. Its completions run where that context is polled (its worker,
//      a spinner, sysmon) and only record the result and signal a
//      wake_slot: no user code, no switch inside Asio (asio#1366).
//   E2 One operation per direction at a time (a taiga::mutex per
//      direction, Go's fdMutex): a direction's wake_slot, result and
//      cancellation signal are that operation's alone.
//   E3 An operation that finds data (read) or room (write) completes
//      without parking and without a trip through the context; after a
//      short read the next read goes straight to the reactor (Asio's own
//      speculative read is skipped too: golang/go#8891).
//   E4 A kill, throw_into or timeout that ends the wait cancels that one
//      operation (a per-operation cancellation slot, never socket.cancel(),
//      which would cancel the other direction too), then waits for its
//      completion under an interruption mask: the caller's buffer is never
//      written after the call returned. That holds for an interruption that
//      was already pending when the operation started, too (a wake_slot's
//      wait never raises: it returns interrupted at once). An operation
//      that completed anyway returns its result, and the interruption
//      raises at the next park.
//   E5 Every started operation counts in its context's in_flight until its
//      handler ran: the worker polls only while it is not zero, and
//      deadlock detection counts those tasklets as wakeable.
//   E6 A read after a short read (the socket drained) is started only when
//      its worker next polls, after the other ready tasklets ran
//      (await_deferred); a start runs under the poller's defer lock, so an
//      interrupted reader either removes its read before it started or
//      cancels it after.
#pragma once

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime/park.hpp>
#include <taiga/runtime/poller.hpp>
#include <taiga/runtime/runtime.hpp>

namespace taiga::net {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace detail {

struct direction;

/// One worker's io_context, as the runtime's poller (taiga/runtime/poller.hpp).
class io_poller final : public taiga::poller {
 public:
  explicit io_poller(unsigned index);
  ~io_poller() override;
  std::size_t poll() override;
  void wait(std::int64_t deadline_ns) override;
  void interrupt() noexcept override;
  std::size_t in_flight() const noexcept override { return ops_.load(std::memory_order_relaxed); }

  asio::io_context& context() noexcept { return *ctx_; }
  unsigned index() const noexcept { return index_; }
  /// The calling tasklet runs on this poller's worker.
  bool owned_by_caller() const noexcept;
  // E5: around every started operation.
  void op_started() noexcept { ops_.fetch_add(1, std::memory_order_relaxed); }
  void op_finished() noexcept { ops_.fetch_sub(1, std::memory_order_relaxed); }

  // E6: reads deferred until this worker next polls. defer() from the
  // owner's thread only; undefer() from the parked tasklet that was
  // interrupted (true: it was still deferred and is now removed, never
  // started); start_deferred() from whoever polls, before it polls.
  void defer(direction* d) noexcept;
  bool undefer(direction* d) noexcept;
  void start_deferred() noexcept;

 private:
  void post_wakeup() noexcept;
  taiga::detail::spinlock defer_lock_;
  direction* deferred_ = nullptr;  // a doubly linked list through direction::dnext/dprev
  std::atomic<bool> any_deferred_{false};
  std::unique_ptr<asio::io_context> ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::steady_timer deadline_;  // the owner's wait deadline (ns precise: timerfd)
  std::int64_t armed_ = INT64_MAX;
  // The owner is inside run_one (wait). Another thread's poll() (a
  // spinner's, sysmon's) may run the no-op an interrupt() posted for it,
  // and Asio would then let the owner sleep on: such a poll() posts
  // another one (interrupt's "never lost", taiga/runtime/poller.hpp).
  std::atomic<bool> reactor_waiting_{false};
  std::atomic<std::size_t> ops_{0};
  unsigned index_;
};

/// The poller of the calling tasklet's worker (installing the pollers of
/// its runtime on first use). Throws usage_error outside a runtime.
io_poller& current_poller();
/// Worker `i`'s poller of the calling tasklet's runtime (round-robin
/// placement of accepted sockets), and the runtime's worker count.
io_poller& poller_at(unsigned i);
unsigned poller_count();

/// One direction (read or write) of an endpoint: E2's lock and the state of
/// its one operation in flight.
struct direction {
  taiga::mutex gate;  // E2
  taiga::wake_slot done;
  asio::cancellation_signal cancel;
  error_code ec;
  std::size_t n = 0;
  bool speculate = true;  // E3: try the syscall before the reactor
  // E6: a deferred start (io_poller's list, under its defer_lock_).
  direction* dnext = nullptr;
  direction* dprev = nullptr;
  bool deferred = false;
  void (*start_fn)(direction*, void*) = nullptr;  // starts the operation with its handler
  void* start_arg = nullptr;
  io_poller* start_poller = nullptr;
};

/// The handler every operation gets: records, counts, signals (E1, E5).
struct completion {
  direction* d;
  io_poller* p;
  void operator()(const error_code& ec, std::size_t n = 0) const noexcept {
    d->ec = ec;
    d->n = n;
    p->op_finished();
    d->done.signal();
  }
};

/// Throws std::system_error for `ec`, naming the operation and endpoint.
[[noreturn]] void throw_error(const error_code& ec, const char* op, const std::string& where);

/// Parks the calling tasklet on operation `start(handler)` (E1-E5): starts
/// it with a handler bound to d's cancellation slot, waits (until
/// `deadline` if given), and on a kill or timeout cancels it and waits for
/// its completion. Returns the bytes transferred; sets `ec` (timed_out
/// when `deadline` passed first). Raises a kill, throw_into or
/// timeout_scope expiry unless the operation completed anyway.
template <class Start>
std::size_t await_op(direction& d, io_poller& p, park_cause what, const void* object,
                     const std::chrono::steady_clock::time_point* deadline, error_code& ec,
                     Start&& start, taiga::detail::call_site site) {
  d.done.reset();
  d.ec = {};
  d.n = 0;
  p.op_started();
  try {
    start(asio::bind_cancellation_slot(d.cancel.slot(), completion{&d, &p}));
  } catch (...) {
    p.op_finished();
    throw;
  }
  // wake_slot's waits never raise (an interruption already pending ends
  // them at once), so the operation started above is always cancelled and
  // waited for before anything is raised (E4).
  wake_status s =
      deadline ? d.done.wait_until(*deadline, what, object, site) : d.done.wait(what, object, site);
  if (s != wake_status::signaled) {
    // E4: this operation only, then its completion, whatever else happens.
    d.cancel.emit(asio::cancellation_type::terminal);
    {
      taiga::interruption_mask m;
      d.done.wait_masked(what, object, site);
    }
    bool completed = !(d.ec == asio::error::operation_aborted);
    if (!completed) {
      if (s == wake_status::interrupted) taiga::raise_interruption();
      ec = asio::error::timed_out;
      return 0;
    }
  }
  ec = d.ec;
  return d.n;
}

/// await_op, except that the operation starts when the socket's worker
/// next polls (E6), not now: a read issued right after a reply was written
/// finds the peer's answer there once the worker's other ready tasklets
/// have run, instead of failing its speculative recv (Asio 1.81 tries one
/// at every start) and waiting for the reactor to read it: one recv per
/// message instead of two, as an Asio callback server gets by running its
/// completions in batches. Only from a tasklet on `p`'s own worker (the
/// worker will poll before it sleeps); callers elsewhere use await_op.
template <class Start>
std::size_t await_deferred(direction& d, io_poller& p, park_cause what, const void* object,
                           error_code& ec, Start& start, taiga::detail::call_site site) {
  d.done.reset();
  d.ec = {};
  d.n = 0;
  d.start_fn = [](direction* dd, void* arg) {
    (*static_cast<Start*>(arg))(
        asio::bind_cancellation_slot(dd->cancel.slot(), completion{dd, dd->start_poller}));
  };
  d.start_arg = &start;
  d.start_poller = &p;
  p.op_started();
  p.defer(&d);
  wake_status s = d.done.wait(what, object, site);
  if (s != wake_status::signaled) {
    if (p.undefer(&d)) {  // never started: nothing to cancel
      p.op_finished();
      taiga::raise_interruption();
    }
    d.cancel.emit(asio::cancellation_type::terminal);
    {
      taiga::interruption_mask m;
      d.done.wait_masked(what, object, site);
    }
    if (d.ec == asio::error::operation_aborted) taiga::raise_interruption();
  }
  ec = d.ec;
  return d.n;
}

}  // namespace detail
}  // namespace taiga::net
