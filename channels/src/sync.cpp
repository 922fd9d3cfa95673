// The synchronization toolkit, on the runtime's parking API only
// (taiga/runtime/detail/park.hpp).
//
// Why not std::mutex and friends: they block the worker thread, so every
// other tasklet on that worker stops too, and a tasklet that holds a
// std::mutex across a park can deadlock its own worker. These primitives
// park the tasklet instead, and block only when called from a plain thread
// (the parking API does that by itself).
//
// Shape shared by every primitive:
//  - A small spinlock guards the state and an intrusive FIFO wait list of
//    wait_points that live on the waiters' stacks (no allocation). The
//    spinlock is never held across a park or across complete(): wakers
//    claim under the lock and complete after releasing it (wake_batch), so
//    the primitive is never touched after a waiter can run (a woken waiter
//    may destroy it at once).
//  - Waiter: prepare_wait (a kill point), publish under the lock, wait;
//    if the wait did not end signaled, remove itself under the lock
//    (if still linked) and repair what its leaving changes, then
//    throw_interrupt() or report the timeout.
//  - Waker: pop the first waiter, claim it; a failed claim means that
//    waiter already woke for another reason (timeout, kill): skip it and try
//    the next one. Only a successful claim transfers anything (a lock, a
//    permit, a phase result), written into the waiter's slot before
//    complete().
//
// Invariants (each holds whenever the primitive's spinlock is free):
//  S1  A wait_point is linked in a wait list iff its waiter is parked (or
//      about to park) there and has not been claimed.
//  S2  mutex / recursive_mutex: waiters exist only while owner_ != 0
//      (unlock hands the lock to the first claimable waiter).
//  S3  shared_mutex: if the list is not empty, its head cannot enter now (a
//      head writer waits for holders to leave, a head reader waits for the
//      writer). grant() restores this after every release and after a
//      waiter leaves early (a departing head writer may unblock readers).
//  S4  semaphore: count_ > 0 implies no waiters (release hands permits to
//      waiters before counting them), so FIFO order needs no extra check.
//  S5  event / latch / wait_group: waiters exist only while the condition
//      they wait for is false.
//  S6  barrier: a waiter's slot records its phase; a phase is complete once
//      phase_ moved past it. A waiter that leaves early from the current
//      phase breaks the barrier (its arrival was counted, and the phase can
//      no longer complete with the parties that planned it).
//  S7  barrier: while completing_ (a completion action runs, outside the
//      lock), nothing is counted: count_ == 0, waiters_ holds only the
//      completing phase's parties, and new arrivals park uncounted in
//      entering_. The action's caller clears completing_ and, in the same
//      critical section, claims the completing phase's parties and every
//      entering_ waiter (which then arrives again, in the next phase). So
//      actions never overlap, and no party of a later phase is counted or
//      released before an earlier phase's action has finished.
//  S8  barrier: while broken_, both wait lists are empty (break_locked claims
//      them, and arrivals throw before they park).
//  S9  Every acquiring or waiting operation (lock, try_lock, the timed
//      forms, wait, acquire, arrive_and_wait) starts with
//      detail::interruption_point(), before it reads or changes any state:
//      a pending kill or throw_into is delivered even when the operation
//      would complete without parking (an uncontended lock, a set event, a
//      free permit), so a tasklet that loops on one stays killable, and the
//      interruption consumes nothing (no lock taken, no permit, no arrival).
//      Releasing operations (unlock, release, notify, set, clear,
//      count_down, add, abort, reset) never call it: they run in
//      destructors and cleanup paths, and must not throw for a kill.
//
// A kill that arrives after a waker claimed the waiter loses the race: the
// wait returns signaled, the waiter owns what was handed to it and returns
// normally; the kill is delivered at its next park point, and RAII (the
// caller's lock guard) releases what it got. So a hand-off is never lost.
//
// condition_variable::wait must hold the mutex again before it returns or
// throws. Taking it is itself a park point, where a pending kill would throw
// before the mutex is held; so the interrupt is consumed first
// (throw_interrupt, caught), the mutex is retaken (retrying if further
// interrupts arrive), and the first exception is rethrown.
#include <exception>
#include <limits>
#include <mutex>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime/detail/tasklet_core.hpp>

namespace taiga {

namespace detail {

std::uint64_t owner_token() noexcept {
  if (tasklet_core* t = current_tasklet()) return t->id;
  static std::atomic<std::uint64_t> next_thread{1};
  thread_local const std::uint64_t token =
      (std::uint64_t{1} << 63) | next_thread.fetch_add(1, std::memory_order_relaxed);
  return token;
}

}  // namespace detail

namespace {

using detail::claim;
using detail::prepare_wait;
using detail::spinlock;
using detail::wait_list;
using detail::wait_point;
using detail::wake_batch;
using detail::wake_status;
using time_point = detail::sync_clock::time_point;
using guard = std::lock_guard<spinlock>;

// nullptr (wait forever) for a deadline of time_point::max().
const time_point* finite(const time_point& t) noexcept {
  return t == time_point::max() ? nullptr : &t;
}

bool expired(const time_point* deadline) noexcept {
  return deadline != nullptr && detail::sync_clock::now() >= *deadline;
}

// Pops waiters until one is claimed; nullptr if none could be.
wait_point* claim_front(wait_list& l) noexcept {
  while (wait_point* w = l.pop_front())
    if (claim(*w)) return w;
  return nullptr;
}

void claim_all(wait_list& l, wake_batch& b) noexcept {
  while (wait_point* w = claim_front(l)) b.add(*w);
}

// Waits on `w`, published in `list` (guarded by `lock`). If the wait ends
// for another reason than a waker's claim, unlinks `w` (if a waker has not
// popped it meanwhile) and calls `on_leave()`, both under the lock.
template <class OnLeave>
wake_status park(wait_point& w, spinlock& lock, wait_list& list, const time_point* deadline,
                 OnLeave&& on_leave) {
  wake_status s = detail::wait(w, deadline);
  if (s != wake_status::signaled) {
    guard g(lock);
    list.remove_if_linked(w);
    on_leave();
  }
  return s;
}

wake_status park(wait_point& w, spinlock& lock, wait_list& list, const time_point* deadline) {
  return park(w, lock, list, deadline, [] {});
}

// After a non-signaled wait: raises the interrupt, or reports the timeout.
bool interrupted_or_false(wake_status s) {
  if (s == wake_status::interrupted) detail::throw_interrupt();
  return false;
}

}  // namespace

// ---- mutex ---------------------------------------------------------------

bool mutex::try_lock() {
  detail::interruption_point();  // S9
  const std::uint64_t me = detail::owner_token();
  guard g(lock_);
  if (owner_ != 0) return false;
  owner_ = me;
  return true;
}

void mutex::lock(detail::op_site at) {
  lock_impl(nullptr, at);
}

bool mutex::lock_until(time_point deadline, detail::op_site at) {
  return lock_impl(finite(deadline), at);
}

bool mutex::lock_impl(const time_point* deadline, detail::op_site at) {
  detail::interruption_point();  // S9
  std::uint64_t me = detail::owner_token();
  wait_point w;
  {
    guard g(lock_);
    if (owner_ == 0) {
      owner_ = me;
      return true;
    }
    if (owner_ == me) throw usage_error("taiga::mutex: locked again by its owner (deadlock)");
    if (expired(deadline)) return false;
    prepare_wait(w, park_reason::mutex, this, detail::call_site(at));
    w.slot = &me;  // the unlocker makes this token the owner
    waiters_.push_back(w);
  }
  wake_status s = park(w, lock_, waiters_, deadline);
  if (s == wake_status::signaled) return true;  // owner_ == me, set by the unlocker
  return interrupted_or_false(s);
}

void mutex::unlock() {
  const std::uint64_t me = detail::owner_token();
  wait_point* next = nullptr;
  {
    guard g(lock_);
    if (owner_ != me)
      throw usage_error(owner_ == 0 ? "taiga::mutex: unlock of an unlocked mutex"
                                    : "taiga::mutex: unlock by a party that does not own it");
    next = claim_front(waiters_);
    owner_ = next != nullptr ? *static_cast<const std::uint64_t*>(next->slot) : 0;
  }
  if (next != nullptr) detail::complete(*next);
}

bool mutex::held_by_caller() const noexcept {
  const std::uint64_t me = detail::owner_token();
  guard g(lock_);
  return owner_ == me;
}

// ---- recursive_mutex -----------------------------------------------------

bool recursive_mutex::try_lock() {
  detail::interruption_point();  // S9
  const std::uint64_t me = detail::owner_token();
  guard g(lock_);
  if (owner_ == me) {
    ++depth_;
    return true;
  }
  if (owner_ != 0) return false;
  owner_ = me;
  depth_ = 1;
  return true;
}

void recursive_mutex::lock(detail::op_site at) {
  lock_impl(nullptr, at);
}

bool recursive_mutex::lock_until(time_point deadline, detail::op_site at) {
  return lock_impl(finite(deadline), at);
}

bool recursive_mutex::lock_impl(const time_point* deadline, detail::op_site at) {
  detail::interruption_point();  // S9
  std::uint64_t me = detail::owner_token();
  wait_point w;
  {
    guard g(lock_);
    if (owner_ == me) {
      ++depth_;
      return true;
    }
    if (owner_ == 0) {
      owner_ = me;
      depth_ = 1;
      return true;
    }
    if (expired(deadline)) return false;
    prepare_wait(w, park_reason::recursive_mutex, this, detail::call_site(at));
    w.slot = &me;
    waiters_.push_back(w);
  }
  wake_status s = park(w, lock_, waiters_, deadline);
  if (s == wake_status::signaled) return true;  // owner_ == me, depth_ == 1
  return interrupted_or_false(s);
}

void recursive_mutex::unlock() {
  const std::uint64_t me = detail::owner_token();
  wait_point* next = nullptr;
  {
    guard g(lock_);
    if (owner_ != me)
      throw usage_error(owner_ == 0
                            ? "taiga::recursive_mutex: unlock of an unlocked mutex"
                            : "taiga::recursive_mutex: unlock by a party that does not own it");
    if (--depth_ > 0) return;
    next = claim_front(waiters_);
    owner_ = next != nullptr ? *static_cast<const std::uint64_t*>(next->slot) : 0;
    depth_ = next != nullptr ? 1 : 0;
  }
  if (next != nullptr) detail::complete(*next);
}

// ---- shared_mutex --------------------------------------------------------

namespace {
constexpr std::uint32_t reader_tag = 0;
constexpr std::uint32_t writer_tag = 1;

// Admits waiters from the head while they can enter (S3). Called with the
// lock held, after anything that may let the head in.
void grant(wait_list& waiters, std::uint64_t& writer, std::size_t& readers,
           wake_batch& b) noexcept {
  while (wait_point* w = waiters.front()) {
    if (w->tag == writer_tag) {
      if (writer != 0 || readers != 0) return;
      waiters.remove(*w);
      if (!claim(*w)) continue;  // it left already (timeout, kill)
      writer = *static_cast<const std::uint64_t*>(w->slot);
      b.add(*w);
      return;
    }
    if (writer != 0) return;
    waiters.remove(*w);
    if (!claim(*w)) continue;
    ++readers;
    b.add(*w);
  }
}
}  // namespace

bool shared_mutex::try_lock() {
  detail::interruption_point();  // S9
  const std::uint64_t me = detail::owner_token();
  guard g(lock_);
  if (writer_ != 0 || readers_ != 0 || !waiters_.empty()) return false;
  writer_ = me;
  return true;
}

bool shared_mutex::try_lock_shared() {
  detail::interruption_point();  // S9
  guard g(lock_);
  if (writer_ != 0 || !waiters_.empty()) return false;  // a waiting writer goes first
  ++readers_;
  return true;
}

void shared_mutex::lock(detail::op_site at) {
  lock_impl(nullptr, false, at);
}

void shared_mutex::lock_shared(detail::op_site at) {
  lock_impl(nullptr, true, at);
}

bool shared_mutex::lock_until(time_point deadline, bool shared, detail::op_site at) {
  return lock_impl(finite(deadline), shared, at);
}

bool shared_mutex::lock_impl(const time_point* deadline, bool shared, detail::op_site at) {
  detail::interruption_point();  // S9
  std::uint64_t me = detail::owner_token();
  wait_point w;
  {
    guard g(lock_);
    if (writer_ == me)
      throw usage_error("taiga::shared_mutex: locked again by its writer (deadlock)");
    if (shared ? (writer_ == 0 && waiters_.empty())
               : (writer_ == 0 && readers_ == 0 && waiters_.empty())) {
      if (shared) {
        ++readers_;
      } else {
        writer_ = me;
      }
      return true;
    }
    if (expired(deadline)) return false;
    prepare_wait(w,
                 shared ? detail::park_cause(park_reason::shared_mutex, "shared_mutex (shared)")
                        : detail::park_cause(park_reason::shared_mutex),
                 this, detail::call_site(at));
    w.tag = shared ? reader_tag : writer_tag;
    w.slot = &me;
    waiters_.push_back(w);
  }
  wake_batch b;  // completes readers that a departing head writer let in
  wake_status s =
      park(w, lock_, waiters_, deadline, [&] { grant(waiters_, writer_, readers_, b); });
  b.flush();
  if (s == wake_status::signaled) return true;
  return interrupted_or_false(s);
}

void shared_mutex::unlock() {
  const std::uint64_t me = detail::owner_token();
  wake_batch b;
  guard g(lock_);
  if (writer_ != me)
    throw usage_error(writer_ == 0 ? "taiga::shared_mutex: unlock without exclusive ownership"
                                   : "taiga::shared_mutex: unlock by a party that does not own it");
  writer_ = 0;
  grant(waiters_, writer_, readers_, b);
}

void shared_mutex::unlock_shared() {
  wake_batch b;
  guard g(lock_);
  if (readers_ == 0) throw usage_error("taiga::shared_mutex: unlock_shared without shared owners");
  if (--readers_ == 0) grant(waiters_, writer_, readers_, b);
}

// ---- condition_variable --------------------------------------------------

void condition_variable::notify_one() noexcept {
  wait_point* w = nullptr;
  {
    guard g(lock_);
    w = claim_front(waiters_);
  }
  if (w != nullptr) detail::complete(*w);
}

void condition_variable::notify_all() noexcept {
  wake_batch b;
  guard g(lock_);
  claim_all(waiters_, b);
}

void condition_variable::wait(std::unique_lock<mutex>& lk, detail::op_site at) {
  wait_impl(lk, nullptr, at);
}

std::cv_status condition_variable::wait_until_steady(std::unique_lock<mutex>& lk,
                                                     time_point deadline, detail::op_site at) {
  return wait_impl(lk, finite(deadline), at);
}

std::cv_status condition_variable::wait_impl(std::unique_lock<mutex>& lk,
                                             const time_point* deadline, detail::op_site at) {
  detail::interruption_point();  // S9: lk is still held if it throws
  if (!lk.owns_lock() || !lk.mutex()->held_by_caller())
    throw usage_error("taiga::condition_variable: wait without holding the mutex");
  if (expired(deadline)) return std::cv_status::timeout;
  wait_point w;
  prepare_wait(w, park_reason::condition_variable, this,
               detail::call_site(at));  // a kill here leaves lk held
  {
    guard g(lock_);
    waiters_.push_back(w);  // before the unlock: a notify after it finds us
  }
  lk.unlock();
  const wake_status s = park(w, lock_, waiters_, deadline);
  std::exception_ptr error;
  if (s == wake_status::interrupted) {
    try {
      detail::throw_interrupt();
    } catch (...) {
      error = std::current_exception();
    }
  }
  // Retake the mutex whatever happens. A timeout_scope must not fail this
  // lock (its deadline never clears, so retrying would spin): it is turned
  // off meanwhile. A kill or throw_into is consumed once: keep the first,
  // retry until the mutex is ours again. Taken as lk.lock() would, but
  // with the caller's site, so that a wait for the mutex here reports the
  // line of the condition_variable wait.
  bool pass_on = false;
  mutex& m = *lk.mutex();
  const std::int64_t saved_scope = detail::suspend_timeout_scope();
  for (;;) {
    try {
      m.lock(at);
      lk = std::unique_lock<mutex>(m, std::adopt_lock);
      break;
    } catch (...) {
      if (!error) {
        error = std::current_exception();
        // We were notified but will not act on it: hand the notification to
        // the next waiter instead of losing it.
        pass_on = s == wake_status::signaled;
      }
    }
  }
  detail::restore_timeout_scope(saved_scope);
  if (pass_on) notify_one();
  if (error) std::rethrow_exception(error);
  return s == wake_status::timeout ? std::cv_status::timeout : std::cv_status::no_timeout;
}

// ---- event ---------------------------------------------------------------

void event::set() noexcept {
  wake_batch b;
  guard g(lock_);
  set_.store(true, std::memory_order_release);
  claim_all(waiters_, b);
}

void event::clear() noexcept {
  guard g(lock_);
  set_.store(false, std::memory_order_relaxed);
}

bool event::is_set() const noexcept {
  return set_.load(std::memory_order_acquire);
}

void event::wait(detail::op_site at) {
  wait_impl(nullptr, at);
}

bool event::wait_until_steady(time_point deadline, detail::op_site at) {
  return wait_impl(finite(deadline), at);
}

bool event::wait_impl(const time_point* deadline, detail::op_site at) {
  detail::interruption_point();  // S9
  if (set_.load(std::memory_order_acquire)) return true;
  wait_point w;
  {
    guard g(lock_);
    if (set_.load(std::memory_order_relaxed)) return true;
    if (expired(deadline)) return false;
    prepare_wait(w, park_reason::event, this, detail::call_site(at));
    waiters_.push_back(w);
  }
  const wake_status s = park(w, lock_, waiters_, deadline);
  if (s == wake_status::signaled) return true;
  return interrupted_or_false(s);
}

// ---- semaphore -----------------------------------------------------------

semaphore::semaphore(std::ptrdiff_t initial)
    : semaphore(initial, std::numeric_limits<std::ptrdiff_t>::max()) {}

semaphore::semaphore(std::ptrdiff_t initial, std::ptrdiff_t max) : count_(initial), max_(max) {
  if (initial < 0) throw usage_error("taiga::semaphore: negative initial count");
}

bool semaphore::try_acquire() {
  detail::interruption_point();  // S9
  guard g(lock_);
  if (count_ == 0) return false;  // S4: count_ > 0 means nobody waits
  --count_;
  return true;
}

void semaphore::acquire(detail::op_site at) {
  acquire_impl(nullptr, at);
}

bool semaphore::acquire_until(time_point deadline, detail::op_site at) {
  return acquire_impl(finite(deadline), at);
}

bool semaphore::acquire_impl(const time_point* deadline, detail::op_site at) {
  detail::interruption_point();  // S9
  wait_point w;
  {
    guard g(lock_);
    if (count_ > 0) {
      --count_;
      return true;
    }
    if (expired(deadline)) return false;
    prepare_wait(w, park_reason::semaphore, this, detail::call_site(at));
    waiters_.push_back(w);
  }
  const wake_status s = park(w, lock_, waiters_, deadline);
  if (s == wake_status::signaled) return true;  // a releaser handed us its permit
  return interrupted_or_false(s);
}

void semaphore::release(std::ptrdiff_t n) {
  wake_batch b;
  guard g(lock_);
  if (n < 0) throw usage_error("taiga::semaphore: release of a negative count");
  if (n > max_ - count_) throw usage_error("taiga::semaphore: released beyond its bound");
  while (n > 0) {
    wait_point* w = claim_front(waiters_);
    if (w == nullptr) break;
    b.add(*w);
    --n;
  }
  count_ += n;
}

std::ptrdiff_t semaphore::available() const noexcept {
  guard g(lock_);
  return count_;
}

// ---- latch ---------------------------------------------------------------

latch::latch(std::ptrdiff_t expected) : count_(expected) {
  if (expected < 0) throw usage_error("taiga::latch: negative count");
}

void latch::count_down(std::ptrdiff_t n) {
  wake_batch b;
  guard g(lock_);
  if (n < 0 || n > count_) throw usage_error("taiga::latch: count_down below zero");
  count_ -= n;
  if (count_ == 0) claim_all(waiters_, b);
}

bool latch::try_wait() const noexcept {
  guard g(lock_);
  return count_ == 0;
}

void latch::wait(detail::op_site at) {
  wait_impl(nullptr, at);
}

bool latch::wait_until_steady(time_point deadline, detail::op_site at) {
  return wait_impl(finite(deadline), at);
}

bool latch::wait_impl(const time_point* deadline, detail::op_site at) {
  detail::interruption_point();  // S9
  wait_point w;
  {
    guard g(lock_);
    if (count_ == 0) return true;
    if (expired(deadline)) return false;
    prepare_wait(w, park_reason::latch, this, detail::call_site(at));
    waiters_.push_back(w);
  }
  const wake_status s = park(w, lock_, waiters_, deadline);
  if (s == wake_status::signaled) return true;
  return interrupted_or_false(s);
}

void latch::arrive_and_wait(std::ptrdiff_t n, detail::op_site at) {
  detail::interruption_point();  // S9: a kill here does not count down
  count_down(n);
  wait_impl(nullptr, at);
}

// ---- barrier -------------------------------------------------------------

namespace {
// A barrier waiter's slot: its phase, and how the phase ended.
struct barrier_slot {
  std::uint64_t phase = 0;
  bool broken = false;
};
}  // namespace

barrier::barrier(std::size_t parties, std::function<void()> completion)
    : parties_(parties), completion_(std::move(completion)) {
  if (parties == 0) throw usage_error("taiga::barrier: zero parties");
}

void barrier::break_locked(wake_batch& b) noexcept {
  broken_ = true;
  for (wait_list* l : {&waiters_, &entering_}) {
    while (wait_point* w = claim_front(*l)) {
      static_cast<barrier_slot*>(w->slot)->broken = true;
      b.add(*w);
    }
  }
}

std::size_t barrier::arrive_and_wait(detail::op_site at) {
  detail::interruption_point();  // S9: a kill here does not arrive (nothing breaks)
  wake_batch b;                  // declared before the lock: completes after it is released
  std::unique_lock<spinlock> g(lock_);
  for (;;) {
    if (broken_) throw broken_barrier();
    if (!completing_) break;
    // S7: a completion action runs; wait for its end before arriving. Not
    // counted, so leaving (a kill) changes nothing.
    wait_point w;
    barrier_slot slot;
    prepare_wait(w, detail::park_cause(park_reason::barrier, "barrier (completion running)"), this,
                 detail::call_site(at));  // may throw: nothing counted
    w.slot = &slot;
    entering_.push_back(w);
    g.unlock();
    const wake_status s = park(w, lock_, entering_, nullptr);
    if (s != wake_status::signaled) detail::throw_interrupt();  // no deadline
    if (slot.broken) throw broken_barrier();
    g.lock();
  }
  const std::size_t index = count_;
  if (count_ + 1 < parties_) {
    wait_point w;
    barrier_slot slot;
    prepare_wait(w, park_reason::barrier, this,
                 detail::call_site(at));  // may throw: nothing counted yet
    ++count_;
    slot.phase = phase_;
    w.slot = &slot;
    waiters_.push_back(w);
    g.unlock();
    const wake_status s = park(w, lock_, waiters_, nullptr, [&] {
      // S6: leaving a phase that has not completed breaks it.
      if (slot.phase == phase_ && !broken_) break_locked(b);
    });
    b.flush();
    if (s == wake_status::signaled) {
      if (slot.broken) throw broken_barrier();
      return index;
    }
    detail::throw_interrupt();  // no deadline: not signaled means interrupted
  }
  // The last arrival: the phase completes.
  const std::uint64_t phase = phase_++;
  count_ = 0;
  if (completion_) {
    completing_ = true;  // S7: hold later arrivals until the action is done
    g.unlock();
    try {
      completion_();
    } catch (...) {
      g.lock();
      completing_ = false;
      if (!broken_) break_locked(b);  // the completing phase and the held arrivals
      throw;
    }
    g.lock();
    completing_ = false;
  }
  // S7: release this phase's parties (unless abort() broke them meanwhile)
  // and let the held arrivals in, in one critical section.
  for (wait_point* w = waiters_.front(); w != nullptr;) {
    wait_point* next = w->next;
    if (static_cast<barrier_slot*>(w->slot)->phase == phase) {
      waiters_.remove(*w);
      if (claim(*w)) b.add(*w);
    }
    w = next;
  }
  claim_all(entering_, b);
  return index;
}

void barrier::abort() noexcept {
  wake_batch b;
  guard g(lock_);
  break_locked(b);
}

void barrier::reset() noexcept {
  wake_batch b;
  guard g(lock_);
  // While an action runs (S7), waiters_ holds only the completing phase,
  // which is let through; held arrivals stay held until the action ends.
  for (wait_point* w = waiters_.front(); w != nullptr;) {
    wait_point* next = w->next;
    auto* slot = static_cast<barrier_slot*>(w->slot);
    if (slot->phase == phase_) {  // a completing phase's waiters are let through
      waiters_.remove(*w);
      if (claim(*w)) {
        slot->broken = true;
        b.add(*w);
      }
    }
    w = next;
  }
  count_ = 0;
  ++phase_;
  broken_ = false;
}

std::size_t barrier::n_waiting() const noexcept {
  guard g(lock_);
  return count_;
}

bool barrier::broken() const noexcept {
  guard g(lock_);
  return broken_;
}

// ---- wait_group ----------------------------------------------------------

void wait_group::add(std::ptrdiff_t n) {
  wake_batch b;
  guard g(lock_);
  if (n < -count_) throw usage_error("taiga::wait_group: negative counter");
  count_ += n;
  if (count_ == 0) claim_all(waiters_, b);
}

void wait_group::wait(detail::op_site at) {
  wait_impl(nullptr, at);
}

bool wait_group::wait_until_steady(time_point deadline, detail::op_site at) {
  return wait_impl(finite(deadline), at);
}

bool wait_group::wait_impl(const time_point* deadline, detail::op_site at) {
  detail::interruption_point();  // S9
  wait_point w;
  {
    guard g(lock_);
    if (count_ == 0) return true;
    if (expired(deadline)) return false;
    prepare_wait(w, park_reason::wait_group, this, detail::call_site(at));
    waiters_.push_back(w);
  }
  const wake_status s = park(w, lock_, waiters_, deadline);
  if (s == wake_status::signaled) return true;
  return interrupted_or_false(s);
}

std::ptrdiff_t wait_group::count() const noexcept {
  guard g(lock_);
  return count_;
}

}  // namespace taiga
