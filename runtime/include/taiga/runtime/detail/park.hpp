// The parking API: the one way a taiga primitive (join, sleep, channels,
// locks, I/O completions) makes a tasklet or a plain thread wait and wakes
// it. Installed because channel templates use it; users must not name
// anything in taiga::detail. The protocol is described in
// runtime/src/park.cpp ("Parking").
//
// Waiter side:
//     wait_point w;
//     prepare_wait(w, park_reason::channel_receive, this, site);  // may throw (kill pending)
//     { lock list; publish &w; unlock; }
//     wake_status s = wait(w, deadline);           // parks; the lock is NOT held
//     if (s != wake_status::signaled) { lock list; remove &w if still there; unlock; }
//     if (s == wake_status::interrupted) throw_interrupt();   // tasklet_exit etc.
//
// Waker side (holding the lock of the list where it found w):
//     if (claim(w)) { write the value into the waiter's slot; complete(w); }
//     else          { skip w: it already woke for another reason (timeout, kill) }
// or, one locked instruction cheaper, when the write can be undone:
//     write the value; if (hand_off(w, ticket)) { unlock; finish_hand_off(ticket); }
//     else { take the value back; skip w }
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <taiga/runtime/detail/tasklet_core.hpp>
#include <taiga/runtime/trace_format.hpp>

// TAIGA_TRACE_POINTS (CMake option, default ON) compiles the trace emission
// points in; the runtime target defines it for everything that links it, so
// the inline wakers below agree with the library.
#ifndef TAIGA_TRACE_POINTS
#define TAIGA_TRACE_POINTS 1
#endif

namespace taiga {
/// Why a tasklet parks (trace events, dumps): see trace_format.hpp.
using park_reason = trace_format::park_reason;
}  // namespace taiga

namespace taiga::detail {

/// What a park waits for: a typed reason, and the text dumps and deadlock
/// reports print for it (by default the reason's name; a primitive may be
/// more precise, "shared_mutex (shared)"). A bare string is a user's own
/// reason (park_reason::user), as wake_slot's string form passes.
struct park_cause {
  park_reason reason = park_reason::other;
  const char* label = nullptr;  // a string literal, or null: the reason's name
  constexpr park_cause(park_reason r) noexcept : reason(r) {}  // NOLINT: implicit
  constexpr park_cause(park_reason r, const char* l) noexcept : reason(r), label(l) {}
  constexpr park_cause(const char* user) noexcept  // NOLINT: implicit
      : reason(park_reason::user), label(user) {}
  const char* text() const noexcept {
    return label ? label : trace_format::park_reason_name(static_cast<std::uint8_t>(reason));
  }
};

/// Non-zero while some runtime of the process records a trace
/// (runtime/src/trace.cpp): the one load and test an emission point costs
/// when nothing records. Written by trace start and stop only.
extern std::atomic<std::uint32_t> trace_armed;
inline bool trace_on() noexcept {
#if TAIGA_TRACE_POINTS
  return trace_armed.load(std::memory_order_relaxed) != 0;
#else
  return false;
#endif
}
/// The unblock event of `t`'s current park, which the caller has just won
/// (`word`: the wait word as the winning claim saw it, carrying the park's
/// sequence number). Out of line: only called when trace_on().
void trace_unblock(std::uint64_t tid, const runtime_impl* rt, std::uint32_t word,
                   std::uint8_t how) noexcept;

enum class wake_status : std::uint8_t {
  signaled,     // a waker claimed and completed this wait
  timeout,      // the deadline passed first
  interrupted,  // kill(), throw_into() or deadlock: call throw_interrupt()
};

/// A waiting party, on the waiter's stack. A tasklet parks; a plain thread
/// blocks on a futex.
struct wait_point {
  tasklet_core* tasklet = nullptr;     // set by prepare_wait; null for threads
  std::atomic<std::uint32_t> word{0};  // threads only: the claim word
  wait_point* next = nullptr;          // free for the wait list's use
  wait_point* prev = nullptr;
  void* slot = nullptr;   // free for the primitive's use (value hand-off)
  std::uint32_t tag = 0;  // free for the primitive's use
};

/// A wait's `object` that names a file descriptor rather than an object in
/// memory: pointers to objects are even, so an odd value carries the fd
/// (dumps and deadlock reports print "fd N"). Public form:
/// taiga::fd_object (taiga/runtime/park.hpp).
inline const void* fd_object(int fd) noexcept {
  return reinterpret_cast<const void*>((static_cast<std::uintptr_t>(fd) << 1) | 1u);
}
inline std::optional<int> fd_of_object(const void* object) noexcept {
  auto v = reinterpret_cast<std::uintptr_t>(object);
  if ((v & 1u) == 0) return std::nullopt;
  return static_cast<int>(v >> 1);
}

/// Arms the caller's wait. Throws (tasklet_exit, or the pending exception) if
/// a kill or throw_into is already pending for the calling tasklet.
/// `what` (a park_reason, or a string literal: park_reason::user) and
/// `object` say what it waits on, `site` where
/// the user's blocking call is (a primitive's own `call_site` parameter,
/// defaulted to call_site::current() in its public signature): reports and
/// dumps print them ("parked on join (0x...), parked at f.cpp:12 in g").
/// One pointer, stored as is: no cost beyond the store.
void prepare_wait(wait_point& w, park_cause what, const void* object, call_site site = call_site());
/// prepare_wait that reports instead of raising: false when a kill or
/// throw_into is pending (not masked) or the timeout_scope has passed (not
/// masked; throw_interrupt then raises timeout_error); the wait is not
/// armed then. For waits whose caller must clean up first (an I/O
/// operation already started: taiga::wake_slot).
bool prepare_wait_nothrow(wait_point& w, park_cause what, const void* object,
                          call_site site = call_site()) noexcept;
/// Disarms a prepared wait that will not be waited on (the condition
/// turned out to hold already).
void cancel_wait(wait_point& w) noexcept;
/// Parks/blocks until completed, the deadline passes, or interrupted.
wake_status wait(wait_point& w, const std::chrono::steady_clock::time_point* deadline = nullptr);
// wait_word bits the inline waker functions use (the protocol:
// runtime/src/park.cpp, "Parking").
inline constexpr std::uint32_t ww_claimed = 1;
inline constexpr std::uint32_t ww_released = 2;
inline constexpr std::uint32_t ww_switched = 4;
inline constexpr std::uint32_t ww_idle = 0x80000000u;  // not parked: nothing to claim
// Bits 16-30 of an armed word: the park's trace sequence number (15 bits,
// wrapping), so that whoever wins the claim reads it in the same atomic step
// (park.cpp, "Parking"; docs/design/trace-format.md, "Ordering").
inline constexpr std::uint32_t ww_seq_shift = 16;
inline constexpr std::uint32_t ww_seq_mask = 0x7fff;

/// complete()'s out-of-line parts.
void complete_thread(wait_point& w) noexcept;                   // release + futex wake
void make_ready_released(tasklet_core* t, bool next) noexcept;  // P4: queue it

/// Waker: wins the right to complete `w` (false: someone else did). Inline:
/// every channel hand-off runs it under the channel's lock.
inline bool claim(wait_point& w) noexcept {
  std::atomic<std::uint32_t>& word = w.tasklet ? w.tasklet->wait_word : w.word;
  std::uint32_t v = word.load(std::memory_order_acquire);
  for (;;) {
    if (v == ww_idle || (v & ww_claimed)) return false;
    if (word.compare_exchange_weak(v, v | ww_claimed, std::memory_order_acq_rel)) return true;
  }
}
/// Waker: after a successful claim and after writing any data: makes the
/// waiter runnable. `next` asks to run it next on this worker (hand-off).
/// Inline: a rendezvous runs it once per message; only the rare parts (a
/// plain thread's futex, queueing the tasklet) are calls.
inline void complete(wait_point& w, bool next = false) noexcept;
/// claim + complete.
inline bool wake(wait_point& w, bool next = false) noexcept {
  if (!claim(w)) return false;
  complete(w, next);
  return true;
}
/// What a hand_off leaves to do once the waker has dropped its locks.
struct hand_off_ticket {
  tasklet_core* ready = nullptr;                     // a parked tasklet to queue
  std::atomic<std::uint32_t>* futex_word = nullptr;  // a plain thread to wake
};
/// Waker: claim and complete in one atomic step, for a waker that has
/// already written its data into the waiter's slot and can take it back
/// (false: the waiter woke for another reason first; undo the write). One
/// locked instruction per hand-over instead of claim's and complete's two:
/// those drain the store buffer, and a rendezvous pays them on every
/// message. Not for a wait point that needs data written between the claim
/// and the release (a select's, which carries the winning case: claim it).
/// On true, call finish_hand_off(ticket, next) after unlocking.
inline bool hand_off(wait_point& w, hand_off_ticket& ticket) noexcept {
  tasklet_core* t = w.tasklet;  // read first: a released thread's frame may die at once
  // The unblock event's fields, read before the claim: the caller holds
  // the lock of the list `w` is in, which the waiter leaves only under that
  // lock, so `t` is alive now; once released it may run and end at once.
  const bool traced = t != nullptr && trace_on();
  std::uint64_t tid = 0;
  const runtime_impl* trt = nullptr;
  if (traced) [[unlikely]] {
    tid = t->id;
    trt = t->rt;
  }
  std::atomic<std::uint32_t>& word = t ? t->wait_word : w.word;
  std::uint32_t v = word.load(std::memory_order_acquire);
  for (;;) {
    if (v == ww_idle || (v & ww_claimed)) return false;
    // The reason bits stay 0: signaled.
    if (word.compare_exchange_weak(v, v | ww_claimed | ww_released, std::memory_order_acq_rel))
      break;
  }
  if (traced) [[unlikely]]
    trace_unblock(tid, trt, v, 0);
  if (t == nullptr) {
    ticket.futex_word = &word;
  } else if (v & ww_switched) {
    ticket.ready = t;  // else its own switch-out sees ww_released and queues it (P4)
  }
  return true;
}
void finish_hand_off(const hand_off_ticket& ticket, bool next = false) noexcept;

/// Raises the pending interruption of the calling tasklet.
[[noreturn]] void throw_interrupt();
/// True when the calling tasklet has a kill or throw_into pending that may
/// be delivered now (not masked). False outside tasklets. One opaque call
/// and one relaxed load: a park point checks the same flag again (P1), so a
/// kill that lands just after this check is delivered there.
bool interrupt_pending() noexcept;
/// An interruption point for operations that complete without parking (a
/// receive from a closed channel, a send into free buffer space, a lock
/// taken uncontended): a tasklet that loops on such an operation would
/// otherwise never see its kill (design/channels.md, "Interruption
/// points"). Every channel, select and sync operation calls it first,
/// before it changes any state, so a kill delivered here consumes nothing.
inline void interruption_point() {
  if (interrupt_pending()) [[unlikely]]
    throw_interrupt();
}
/// Lets the tasklet a hand-off just woke run first (channel preference):
/// yields without delivering a pending kill or throw_into, which stays
/// pending for the next park point, because the hand-off already happened
/// and must be reported as done. No-op outside tasklets.
void yield_keeping_interrupts();
/// Sets or clears the calling tasklet's interruption mask (flag_masked:
/// prepare_wait then raises nothing; a kill still ends the wait). Returns
/// whether it was set. No-op (false) on a plain thread. Public form:
/// taiga::interruption_mask (taiga/runtime/park.hpp).
bool set_interruption_mask(bool on) noexcept;
/// Turns the caller's timeout_scope off (for waits that must not time out,
/// such as a condition variable retaking its mutex); returns what to restore.
std::int64_t suspend_timeout_scope() noexcept;
void restore_timeout_scope(std::int64_t saved) noexcept;

inline void complete(wait_point& w, bool next) noexcept {
  tasklet_core* t = w.tasklet;
  if (t == nullptr) {
    complete_thread(w);
    return;
  }
  // Claimed, not yet released: the tasklet cannot resume before the
  // fetch_or below, so the unblock event may read it.
  if (trace_on()) [[unlikely]]
    trace_unblock(t->id, t->rt, t->wait_word.load(std::memory_order_relaxed), 0);
  std::uint32_t old = t->wait_word.fetch_or(ww_released, std::memory_order_acq_rel);
  if (old & ww_switched) make_ready_released(t, next);
}

}  // namespace taiga::detail
