// park.cpp: the parking API used by every primitive (prepare_wait, wait,
// the wakers' completions, throw_interrupt) and timeout_scope, whose
// deadline every park point honours.
//
// ---------------------------------------------------------------------------
// Parking (wait_word protocol)
//
// A park can end for several reasons that race: the primitive it waits on
// (a channel hands over a value, a joined tasklet ends), its timeout, a kill
// or throw_into, a deadlock report. Exactly one must win, and the winner
// must not make the tasklet runnable before it has switched away. Each
// tasklet has a wait_word:
//
//   ww_idle      not parked: nothing to claim
//   0            armed by prepare_wait (the tasklet may still be running)
//   | claimed    a waker won the right to complete this park (and the reason,
//                in bits 8-15)
//   | released   the winner has written its data (if any)
//   | switched   the tasklet has switched away (set in after_switch)
//
// Steps:
//   P1 the tasklet stores 0 (seq_cst), then loads its kill and throw flags
//      (seq_cst); a killer or thrower sets its flag (seq_cst), then tries
//      to claim. One of them sees the other (Dekker), so a kill is never lost
//      between the check and the park. (Moving this fence onto P4's RMW was
//      tried and is wrong: after that RMW the tasklet may already belong to
//      a waker on another thread, so the flags load could read freed memory.)
//   P2 the tasklet publishes itself to wakers (a wait list under that list's
//      lock, a timer node under the heap's lock) and switches away; the
//      resumed side sets `switched`.
//   P3 a waker claims with a CAS that fails if `claimed` is set, writes its
//      data, then sets `released`. Timers, kills and interrupts claim and
//      release in the same CAS (they carry no data).
//   P4 whoever of (P2's `switched`, P3's `released`) comes second makes the
//      tasklet ready. Exactly one of them sees the other's bit.
//   P5 the resumed tasklet reads the reason, cancels its timer (under the
//      heap's lock: a timer firing concurrently is done with the node once
//      the lock is ours) and, if it did not win by the primitive, removes
//      itself from the wait list under the list's lock. It stores ww_idle.
// A waker only finds the tasklet through a list or heap that the tasklet
// leaves (under the same lock) before it can park again, so a claim can never
// hit a later park. Kills and interrupts are not in any list: they claim
// whatever park is current, which is what they mean.
#include <chrono>
#include <cstdint>
#include <ctime>
#include <exception>
#include <mutex>
#include <taiga/runtime.hpp>
#include <utility>

#include "futex.hpp"
#include "scheduler.hpp"
#include "tasklet_internal.hpp"
#include "trace.hpp"

namespace taiga::detail {

using internal::futex;
using internal::this_worker;
using internal::worker;

namespace {

thread_local std::int64_t tls_scope_deadline = INT64_MAX;  // timeout_scope on a plain thread
thread_local bool tls_scope_expired = false;

bool& scope_expired_ref() noexcept {
  tasklet_core* t = current_tasklet();
  return t ? t->frame.load(std::memory_order_relaxed)->scope_expired : tls_scope_expired;
}

// The running tasklet's (or plain thread's) timeout_scope deadline.
std::int64_t scope_deadline_of(const tasklet_core* t) noexcept {
  if (t == nullptr) return tls_scope_deadline;
  tasklet_extra* e = extra_if_any(t);
  return e ? e->scope_deadline : INT64_MAX;
}

// Allocates only to set a finite deadline; restoring "no scope", or any
// value read back from an existing record, never does (so the noexcept
// restore paths cannot throw).
void set_scope_deadline(tasklet_core* t, std::int64_t v) {
  if (t == nullptr) {
    tls_scope_deadline = v;
    return;
  }
  tasklet_extra* e = extra_if_any(t);
  if (e == nullptr) {
    if (v == INT64_MAX) return;
    e = &extra_of(t);
  }
  e->scope_deadline = v;
}

}  // namespace

// ---- parking API ---------------------------------------------------------

// Both prepare_waits' body, inline in each: prepare_wait (every channel and
// sync park) then makes no second call.
[[gnu::always_inline]] static inline bool arm_wait(wait_point& w, park_cause what,
                                                   const void* object, call_site site) noexcept {
  tasklet_core* t = current_tasklet();
  const bool masked = t && (t->flags.load(std::memory_order_relaxed) & tasklet_core::flag_masked);
  std::int64_t scope = scope_deadline_of(t);
  if (!masked && scope != INT64_MAX && scope <= internal::now_ns()) [[unlikely]] {
    scope_expired_ref() = true;  // throw_interrupt raises timeout_error
    return false;
  }
  w.tasklet = t;
  if (t == nullptr) {
    w.word.store(0, std::memory_order_relaxed);
    return true;
  }
  tasklet_frame* frame = t->frame.load(std::memory_order_relaxed);
  // The label only (null: the reason's own name): readers build the text
  // (info_of), so a park pays no table lookup for it.
  frame->park_what.store(what.label, std::memory_order_relaxed);
  frame->park_reason.store(static_cast<std::uint8_t>(what.reason), std::memory_order_relaxed);
  frame->park_object.store(object, std::memory_order_relaxed);
  frame->park_site.store(site.record(), std::memory_order_relaxed);
  // P1: arm, then look for a kill. While a trace records, the armed word
  // carries the park's sequence number to whoever wins the claim (T1 in
  // trace.cpp); 0 otherwise, as before.
  std::uint32_t armed = 0;
  if (trace_on()) [[unlikely]]
    armed = ((frame->trace_seq + 1u) & internal::ww_seq_mask) << internal::ww_seq_shift;
  t->wait_word.store(armed, std::memory_order_seq_cst);
  std::uint8_t f = t->flags.load(std::memory_order_seq_cst);
  if ((f & (tasklet_core::flag_kill | tasklet_core::flag_throw)) &&
      !(f & tasklet_core::flag_masked)) [[unlikely]] {
    t->wait_word.store(internal::ww_idle, std::memory_order_relaxed);
    return false;
  }
  return true;
}

bool prepare_wait_nothrow(wait_point& w, park_cause what, const void* object,
                          call_site site) noexcept {
  return arm_wait(w, what, object, site);
}

void prepare_wait(wait_point& w, park_cause what, const void* object, call_site site) {
  if (!arm_wait(w, what, object, site)) [[unlikely]]
    throw_interrupt();
}

void cancel_wait(wait_point& w) noexcept {
  if (w.tasklet) w.tasklet->wait_word.store(internal::ww_idle, std::memory_order_relaxed);
}

// The earlier of the call's own deadline and the enclosing timeout_scope's.
// When the scope's comes first and passes, the wait ends as "interrupted"
// and throw_interrupt() raises timeout_error.
[[gnu::always_inline]] inline wake_status wait_raw(
    wait_point& w, const std::chrono::steady_clock::time_point* deadline);

wake_status wait(wait_point& w, const std::chrono::steady_clock::time_point* deadline) {
  std::int64_t scope = scope_deadline_of(w.tasklet);
  if (scope == INT64_MAX) return wait_raw(w, deadline);
  std::chrono::steady_clock::time_point scope_tp{std::chrono::nanoseconds(scope)};
  bool scope_first = deadline == nullptr || scope_tp < *deadline;
  wake_status s = wait_raw(w, scope_first ? &scope_tp : deadline);
  if (s == wake_status::timeout && scope_first) {
    (w.tasklet ? w.tasklet->frame.load(std::memory_order_relaxed)->scope_expired
               : tls_scope_expired) = true;
    return wake_status::interrupted;
  }
  return s;
}

// A plain thread: block on the futex word until a waker releases it.
[[gnu::noinline]] static wake_status wait_thread(
    wait_point& w, const std::chrono::steady_clock::time_point* deadline) {
  using internal::ww_claimed;
  using internal::ww_released;
  // A plain thread: block on the futex word until a waker releases it.
  for (;;) {
    std::uint32_t v = w.word.load(std::memory_order_acquire);
    if (v & ww_released) return static_cast<wake_status>(v >> internal::ww_reason_shift);
    if (deadline != nullptr && (v & ww_claimed) == 0) {
      auto left = *deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        std::uint32_t expect = 0;
        std::uint32_t timed =
            ww_claimed | ww_released |
            (static_cast<std::uint32_t>(wake_status::timeout) << internal::ww_reason_shift);
        if (w.word.compare_exchange_strong(expect, timed)) return wake_status::timeout;
        continue;
      }
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      struct timespec ts {
        static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)
      };
      futex(&w.word, FUTEX_WAIT, v, &ts);
    } else {
      futex(&w.word, FUTEX_WAIT, v);
    }
  }
}

[[gnu::always_inline]] inline wake_status wait_raw(
    wait_point& w, const std::chrono::steady_clock::time_point* deadline) {
  if (w.tasklet == nullptr) return wait_thread(w, deadline);
  tasklet_core* t = w.tasklet;
  worker* me = this_worker();
  internal::timer_node tn;
  if (deadline != nullptr) {
    tn.deadline =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    tn.fire = [](internal::timer_node* n) {
      auto* tt = static_cast<tasklet_core*>(n->arg);
      if (trace_on()) [[unlikely]]
        internal::trace::timer_fire(tt->rt, tt->id);
      internal::interrupt_park(tt, wake_status::timeout);
    };
    tn.arg = t;
    me->timers.add(&tn);
  }
  internal::transition_to_parked(t);
  internal::bump(me->stats.parks);
  if (trace_on()) [[unlikely]]
    internal::trace::park(me, t);
  me->switch_out(t, internal::after::park);
  // Resumed (P5), perhaps on another worker.
  if (deadline != nullptr) internal::timer_heap::cancel(&tn);
  std::uint32_t v = t->wait_word.load(std::memory_order_acquire);
  t->wait_word.store(internal::ww_idle, std::memory_order_relaxed);
  tasklet_frame* f = t->frame.load(std::memory_order_relaxed);
  f->park_what.store(nullptr, std::memory_order_relaxed);
  f->park_object.store(nullptr, std::memory_order_relaxed);
  return static_cast<wake_status>((v >> internal::ww_reason_shift) & 0xff);
}

void complete_thread(wait_point& w) noexcept {
  w.word.fetch_or(internal::ww_released, std::memory_order_release);
  futex(&w.word, FUTEX_WAKE, 1);
}

void make_ready_released(tasklet_core* t, bool next) noexcept {
  internal::make_ready(t, next);
}

void finish_hand_off(const hand_off_ticket& ticket, bool next) noexcept {
  if (ticket.ready) internal::make_ready(ticket.ready, next);
  // The address may belong to a frame that already returned: a stray
  // FUTEX_WAKE on it is harmless (waiters recheck their word).
  if (ticket.futex_word) futex(ticket.futex_word, FUTEX_WAKE, 1);
}

void throw_interrupt() {
  tasklet_core* t = current_tasklet();
  if (t == nullptr) {
    if (std::exchange(tls_scope_expired, false)) throw timeout_error();
    throw usage_error("taiga: throw_interrupt outside a tasklet");
  }
  std::uint8_t f = t->flags.load(std::memory_order_acquire);
  if (f & tasklet_core::flag_kill) {
    t->flags.fetch_and(static_cast<std::uint8_t>(~tasklet_core::flag_kill),
                       std::memory_order_acq_rel);
    throw tasklet_exit{};
  }
  if (std::exchange(t->frame.load(std::memory_order_relaxed)->scope_expired, false))
    throw timeout_error();
  std::exception_ptr e;
  {
    std::lock_guard lk(t->lock);
    if (tasklet_extra* x = extra_if_any(t)) e = std::exchange(x->pending, nullptr);
    t->flags.fetch_and(static_cast<std::uint8_t>(~tasklet_core::flag_throw),
                       std::memory_order_acq_rel);
  }
  if (e) std::rethrow_exception(e);
  // An interrupt whose cause another park point already consumed.
  throw tasklet_exit{};
}

std::int64_t suspend_timeout_scope() noexcept {
  tasklet_core* t = current_tasklet();
  std::int64_t saved = scope_deadline_of(t);
  set_scope_deadline(t, INT64_MAX);  // never allocates
  return saved;
}
void restore_timeout_scope(std::int64_t saved) noexcept {
  set_scope_deadline(current_tasklet(), saved);  // read back from the record: never allocates
}

void yield_keeping_interrupts() {
  internal::worker* w = this_worker();
  tasklet_core* t = w ? w->current : nullptr;
  if (t == nullptr) return;
  if (trace_on()) [[unlikely]]
    internal::trace::yield(w, t);
  w->switch_out(t, internal::after::requeue);
}

// The public parking API's interruption_mask (taiga/runtime/park.hpp); also
// what a handle destructor's masked join uses (tasklet.cpp, wait_done_masked).
bool set_interruption_mask(bool on) noexcept {
  tasklet_core* t = current_tasklet();
  if (t == nullptr) return false;
  std::uint8_t old;
  if (on) {
    old = t->flags.fetch_or(tasklet_core::flag_masked, std::memory_order_seq_cst);
  } else {
    old = t->flags.fetch_and(static_cast<std::uint8_t>(~tasklet_core::flag_masked),
                             std::memory_order_seq_cst);
  }
  return (old & tasklet_core::flag_masked) != 0;
}

}  // namespace taiga::detail

namespace taiga {

timeout_scope::timeout_scope(std::chrono::steady_clock::time_point deadline)
    : deadline_(std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch())
                    .count()) {
  detail::tasklet_core* t = detail::current_tasklet();
  saved_ = detail::scope_deadline_of(t);
  if (deadline_ < saved_) detail::set_scope_deadline(t, deadline_);
}

timeout_scope::~timeout_scope() {
  detail::set_scope_deadline(detail::current_tasklet(), saved_);  // never allocates
  detail::scope_expired_ref() = false;
}

bool timeout_scope::expired() const noexcept {
  return internal::now_ns() >= deadline_;
}

}  // namespace taiga
