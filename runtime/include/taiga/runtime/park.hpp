// The public parking API: how code outside the runtime (taiga::net, a
// library's own completion callbacks) makes a tasklet wait for an event
// that another thread signals, without touching taiga::detail.
//
//     taiga::wake_slot done;                       // lives in an object that
//                                                  // outlives every wait and signal
//     done.reset();
//     start_operation([&] { done.signal(); });     // any thread, any time
//     switch (done.wait("my op", this)) {
//       case taiga::wake_status::signaled: ...     // the operation completed
//       case taiga::wake_status::timeout: ...      // wait_until's deadline passed
//       case taiga::wake_status::interrupted: ...  // kill, throw_into or a
//                                                  // timeout_scope: cancel the
//                                                  // operation, then raise_interruption()
//     }
//
// An operation that must not be abandoned while it still writes into the
// caller's memory (a read into a buffer on the stack) cancels it and waits
// for its completion under an interruption_mask, then raises:
//
//     if (s == taiga::wake_status::interrupted) {
//       cancel_operation();
//       { taiga::interruption_mask m; done.wait_masked("my op", this); }
//       taiga::raise_interruption();
//     }
//
// The protocol underneath is in runtime/src/park.cpp ("Parking"); this
// header only composes it: wake_slot is the wait list of one waiter that
// every primitive in taiga::channels builds by hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <taiga/runtime/detail/park.hpp>
#include <utility>

namespace taiga {

/// Why a wait ended.
using wake_status = detail::wake_status;
/// What a wait is for: a park_reason (`taiga::park_reason::io_read`), a
/// reason with the text dumps print (`{park_reason::io_read, "net read"}`),
/// or a string literal alone, the user's own reason (park_reason::user).
using park_cause = detail::park_cause;

/// A one-waiter, one-signal meeting point between a tasklet (or a plain
/// thread) that waits and any thread that signals: an Asio completion
/// handler, a thread pool job, a timer. Not a channel: it carries no value
/// (write the result where the waiter will read it, then signal) and it
/// counts no more than one signal (a second one before reset() is lost, as
/// it should be for a one-shot operation).
///
/// W1 At most one waiter at a time (the caller's own operations serialize:
///    one slot per direction of a socket, as Go's fdMutex).
/// W2 signal() may come before, during or after wait(): before, the wait
///    returns at once; after the waiter left (it timed out or was killed),
///    it only marks the slot, and the next wait() after reset() ignores it.
/// W3 signal()'s last touch of the slot is the unlock of its spinlock; the
///    woken tasklet is made ready after that, so the slot's owner may be
///    destroyed as soon as its wait returned signaled. A slot whose waiter
///    left early (timeout, interrupt) must outlive any signal still coming:
///    the destructor waits for a signal() in progress, not for one that has
///    not begun.
class wake_slot {
 public:
  wake_slot() = default;
  ~wake_slot() { std::lock_guard lk(lock_); }
  wake_slot(const wake_slot&) = delete;
  wake_slot& operator=(const wake_slot&) = delete;

  /// Forgets a signal: call before starting the operation that signals.
  void reset() noexcept {
    std::lock_guard lk(lock_);
    signaled_ = false;
  }
  /// True once signal() ran since the last reset().
  bool signaled() const noexcept {
    std::lock_guard lk(lock_);
    return signaled_;
  }

  /// Any thread, at most once per reset(): wakes the waiter if one waits
  /// (true), else leaves the slot signaled for the next wait (false).
  /// Never blocks beyond a short spinlock; never switches; noexcept.
  bool signal() noexcept {
    detail::hand_off_ticket ticket;
    bool woke = false;
    {
      std::lock_guard lk(lock_);
      signaled_ = true;
      // hand_off: claim and release in one CAS (nothing is written between
      // them: the operation wrote its result before calling signal()).
      if (detail::wait_point* w = std::exchange(waiter_, nullptr))
        woke = detail::hand_off(*w, ticket);
    }
    if (woke) detail::finish_hand_off(ticket);  // W3: after the unlock
    return woke;
  }

  /// Parks until signal(), or until interrupted (kill, throw_into, the
  /// enclosing timeout_scope: wake_status::interrupted, the interruption
  /// still pending for raise_interruption()). Never throws: an
  /// interruption already pending when it is called returns interrupted
  /// at once. `what` (a park_reason, or a string literal: a user's reason)
  /// and `object` name the wait in dumps, deadlock reports and traces;
  /// `site` is the user's call.
  wake_status wait(park_cause what, const void* object = nullptr,
                   detail::call_site site = detail::call_site::current()) {
    return wait_impl(nullptr, what, object, site);
  }
  /// As wait(), also ending with wake_status::timeout at `deadline`.
  wake_status wait_until(std::chrono::steady_clock::time_point deadline, park_cause what,
                         const void* object = nullptr,
                         detail::call_site site = detail::call_site::current()) {
    return wait_impl(&deadline, what, object, site);
  }
  /// Waits until signal(), whatever else happens: for the completion of an
  /// operation that was asked to cancel and may still write into the
  /// caller's memory. Call it under an interruption_mask; a kill arriving
  /// meanwhile stays pending. The timeout_scope is suspended.
  void wait_masked(park_cause what, const void* object = nullptr,
                   detail::call_site site = detail::call_site::current()) {
    std::int64_t saved = detail::suspend_timeout_scope();
    while (wait_impl(nullptr, what, object, site) != wake_status::signaled) {
    }
    detail::restore_timeout_scope(saved);
  }

 private:
  wake_status wait_impl(const std::chrono::steady_clock::time_point* deadline, park_cause what,
                        const void* object, detail::call_site site) {
    detail::wait_point w;
    // Never raises: an interruption already pending (or an expired scope)
    // ends the wait at once, as one arriving during it would, so a caller
    // that started an operation first can still cancel it (net's E4).
    if (!detail::prepare_wait_nothrow(w, what, object, site)) return wake_status::interrupted;
    {
      std::lock_guard lk(lock_);
      if (signaled_) {
        // No signal() can claim w: it was never published. (A kill may;
        // cancel_wait tolerates that, and the kill stays pending.)
        detail::cancel_wait(w);
        return wake_status::signaled;
      }
      waiter_ = &w;
    }
    wake_status s = detail::wait(w, deadline);
    if (s != wake_status::signaled) {
      std::lock_guard lk(lock_);
      if (waiter_ == &w) waiter_ = nullptr;
    }
    return s;
  }

  mutable detail::spinlock lock_;
  detail::wait_point* waiter_ = nullptr;
  bool signaled_ = false;
};

/// While one lives on the calling tasklet, kill(), throw_into() and an
/// expiring timeout_scope still end a wait early (wake_status::interrupted)
/// but are not raised at park points: they stay pending until the last mask
/// is gone, and the next park point (or raise_interruption()) raises them.
/// For a tasklet that must wait for an operation to finish before it may
/// unwind (its buffers are in use). Nests. No-op on a plain thread.
class interruption_mask {
 public:
  interruption_mask() noexcept : was_(detail::set_interruption_mask(true)) {}
  ~interruption_mask() { detail::set_interruption_mask(was_); }
  interruption_mask(const interruption_mask&) = delete;
  interruption_mask& operator=(const interruption_mask&) = delete;

 private:
  bool was_;
};

/// Raises the calling tasklet's pending interruption: tasklet_exit for a
/// kill, the exception of a throw_into, timeout_error for an expired
/// timeout_scope. Call it after a wait returned wake_status::interrupted
/// and the operation has been cancelled; outside an interruption_mask.
[[noreturn]] inline void raise_interruption() {
  detail::throw_interrupt();
}

/// The `object` of a wait on file descriptor `fd`: runtime::dump and the
/// deadlock report print "(fd N)" for it instead of an address.
inline const void* fd_object(int fd) noexcept {
  return detail::fd_object(fd);
}

/// An interruption point: raises a pending kill, throw_into or expired
/// timeout_scope now (not while masked). For operations that can complete
/// without parking, so that a loop of them still sees its kill.
inline void interruption_point() {
  detail::interruption_point();
}

}  // namespace taiga
