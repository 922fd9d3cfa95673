// taiga's synchronization toolkit: tasklet-level locks, condition variables,
// events, semaphores, latches, barriers and wait groups.
//
// Every primitive here parks the calling tasklet (its worker thread goes on
// running other tasklets); called from a plain thread, the same call blocks
// that thread. Tasklets and plain threads may share one primitive. Waiters
// are served in FIFO order, and locks are handed off: an unlock makes the
// first waiter the owner, so a newcomer cannot barge in. Each call that can
// park is a kill point: a kill or throw_into that arrives while it is parked
// removes the waiter and leaves the primitive consistent (see sync.cpp).
//
// Interruption points (issue 18 B; sync.cpp, S9). These operations deliver a
// pending kill or throw_into of the calling tasklet when they start, whether
// or not they would park, before they read or change anything: the kill
// then takes nothing (no lock, no permit, no item, no arrival, no count).
// So a tasklet that loops on one that completes at once (an uncontended
// lock, a set event, a free permit, a zero counter, a ready future) can
// still be killed.
//   mutex, recursive_mutex   lock, try_lock, try_lock_for, try_lock_until
//   shared_mutex             the same, and lock_shared, try_lock_shared,
//                            try_lock_shared_for, try_lock_shared_until
//   condition_variable       wait, wait_for, wait_until, with or without a
//                            predicate (the mutex is still held when it
//                            throws there)
//   event                    wait, wait_for, wait_until
//   semaphore                acquire, try_acquire, try_acquire_for,
//   (and bounded_semaphore)  try_acquire_until
//   latch                    wait, wait_for, wait_until, arrive_and_wait
//                            (before it counts down)
//   barrier                  arrive_and_wait (before it arrives)
//   wait_group               wait, wait_for, wait_until
//   queue.hpp                put, try_put, try_put_for/until, get, try_get,
//                            try_get_for/until, join, try_join_for/until
//   future.hpp               future and shared_future wait, wait_for,
//                            wait_until, get; as_completed's next and
//                            try_next_for (also once every future was taken)
//   executor.hpp             map_range's iteration (a future's wait);
//                            task_pool::shutdown(true) only where it parks
// Not interruption points: what releases or signals (unlock, unlock_shared,
// release, notify_one/all, set, clear, count_down, wait_group::add/done,
// barrier::abort/reset, queue::task_done, promise::set_value/exception,
// future::cancel, task_pool::submit and shutdown(false)), because
// destructors and cleanup paths call them and a kill must never make an
// unlock throw; and the snapshots (is_set, latch::try_wait, available,
// count, n_waiting, broken, size, unfinished_tasks, is_ready), which are
// noexcept queries. A loop that polls only a snapshot never parks: give it
// a this_tasklet::yield(). task_pool::shutdown(true) closes the pool first
// and is a kill point only when it has calls to wait for: the pool's
// destructor calls it and cannot pass a kill on. Outside tasklets nothing
// is pending, and these operations behave as before.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>  // std::cv_status
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>  // std::unique_lock
#include <stdexcept>
#include <taiga/channels/detail/deadline.hpp>
#include <taiga/channels/detail/op_site.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <type_traits>

namespace taiga {

/// Thrown by barrier::arrive_and_wait when the barrier is broken: abort()
/// was called, a waiter was killed before its phase completed, the
/// completion action threw, or reset() was called while it waited.
class broken_barrier : public std::runtime_error {
 public:
  broken_barrier() : std::runtime_error("taiga: broken barrier") {}
};

namespace detail {

/// An intrusive FIFO of wait_points, linked through wait_point::next/prev.
/// Not synchronized: the owning primitive guards it with its own lock.
class wait_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  wait_point* front() const noexcept { return head_; }
  void push_back(wait_point& w) noexcept {
    w.next = nullptr;
    w.prev = tail_;
    if (tail_ != nullptr) {
      tail_->next = &w;
    } else {
      head_ = &w;
    }
    tail_ = &w;
  }
  /// True while `w` is linked into this list.
  bool contains(const wait_point& w) const noexcept { return w.prev != nullptr || head_ == &w; }
  void remove(wait_point& w) noexcept {
    if (w.prev != nullptr) {
      w.prev->next = w.next;
    } else {
      head_ = w.next;
    }
    if (w.next != nullptr) {
      w.next->prev = w.prev;
    } else {
      tail_ = w.prev;
    }
    w.next = nullptr;
    w.prev = nullptr;
  }
  wait_point* pop_front() noexcept {
    wait_point* w = head_;
    if (w != nullptr) remove(*w);
    return w;
  }
  /// For a waiter that woke for another reason (timeout, kill): a waker may
  /// already have unlinked it.
  void remove_if_linked(wait_point& w) noexcept {
    if (contains(w)) remove(w);
  }
  /// Claims every waiter (they carry no data) into `batch` (a wake_batch),
  /// which completes them once the owner's lock is released.
  template <class Batch>
  void claim_all(Batch& batch) noexcept {
    while (wait_point* w = pop_front())
      if (claim(*w)) batch.add(*w);
  }

 private:
  wait_point* head_ = nullptr;
  wait_point* tail_ = nullptr;
};

/// Waiters claimed under a primitive's lock, completed (made runnable) by
/// the destructor, after that lock is released: declare it before the lock
/// guard. Completing outside the lock keeps the critical section short and
/// never touches the primitive after its lock is released. Links through
/// wait_point::next (free once the waiter left the wait list).
class wake_batch {
 public:
  wake_batch() = default;
  wake_batch(const wake_batch&) = delete;
  wake_batch& operator=(const wake_batch&) = delete;
  ~wake_batch() { flush(); }
  /// `w` must be claimed and unlinked.
  void add(wait_point& w) noexcept {
    w.next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = &w;
    } else {
      head_ = &w;
    }
    tail_ = &w;
  }
  void flush() noexcept {
    wait_point* w = head_;
    head_ = tail_ = nullptr;
    while (w != nullptr) {
      wait_point* n = w->next;  // read first: `w` may die once completed
      complete(*w);
      w = n;
    }
  }

 private:
  wait_point* head_ = nullptr;
  wait_point* tail_ = nullptr;
};

/// Who holds a lock: the calling tasklet's id, or (outside tasklets) a
/// process-unique number of the calling thread with the top bit set. Never 0.
std::uint64_t owner_token() noexcept;

}  // namespace detail

/// A mutual-exclusion lock for tasklets (Lockable and TimedLockable: works
/// with std::lock_guard, std::unique_lock, std::scoped_lock). Not recursive.
/// Ownership belongs to the locking tasklet (or plain thread), so a tasklet
/// may move between workers while it holds the lock. Unlock hands the lock
/// to the longest-waiting locker (FIFO, no barging).
class mutex {
 public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  /// Takes the lock, parking until it is handed over. `at` (defaulted: the
  /// caller's line) is where the deadlock report says a parked caller
  /// waits; under std::lock_guard, std::unique_lock or std::scoped_lock,
  /// which call lock() without it, that site is inside <mutex> (the same for
  /// every lock below).
  /// @throws    taiga::usage_error if the caller already holds it (it would
  ///            deadlock); tasklet_exit (or the exception thrown in) if a
  ///            kill is pending when it starts (an interruption point) or
  ///            arrives while it waits: it then does not hold it.
  /// @suspends  yes, when the lock is held
  /// @threadsafe
  void lock(detail::op_site at = detail::op_site::current());
  /// Takes the lock if it is free; false otherwise (also when the caller
  /// holds it already).
  /// @throws    tasklet_exit (or the exception thrown in) if a kill is
  ///            pending: an interruption point; the lock is not taken then.
  /// @suspends  no
  /// @threadsafe
  [[nodiscard]] bool try_lock();
  /// Like lock(), but gives up after `d`: false on timeout (never throws one).
  /// @suspends  yes, when the lock is held
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& d,
                                  detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::deadline_after(d), at);
  }
  /// Like lock(), but gives up at `t`: false on timeout.
  /// @suspends  yes, when the lock is held
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t,
                                    detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::to_steady(t), at);
  }
  /// Releases the lock, handing it to the first waiter if there is one.
  /// @throws    taiga::usage_error if the caller does not hold it.
  /// @suspends  no
  /// @threadsafe
  void unlock();

 private:
  friend class condition_variable;
  bool lock_until(detail::sync_clock::time_point deadline, detail::op_site at);
  bool lock_impl(const detail::sync_clock::time_point* deadline, detail::op_site at);
  bool held_by_caller() const noexcept;

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;
  std::uint64_t owner_ = 0;  // owner_token() of the holder; 0 = unlocked
};

/// A mutex that its holder may lock again; it is released when unlock() has
/// been called as many times as lock(). FIFO hand-off like taiga::mutex.
class recursive_mutex {
 public:
  recursive_mutex() = default;
  recursive_mutex(const recursive_mutex&) = delete;
  recursive_mutex& operator=(const recursive_mutex&) = delete;

  /// Takes the lock (or one more level of it, for the holder).
  /// @throws    tasklet_exit (or the exception thrown in) if killed while it
  ///            waits; the caller then does not hold it.
  /// @suspends  yes, when another party holds it
  /// @threadsafe
  void lock(detail::op_site at = detail::op_site::current());
  /// Takes the lock (one more level) if free or held by the caller.
  /// @throws    tasklet_exit (or the exception thrown in) if a kill is
  ///            pending: an interruption point; nothing is taken then.
  /// @suspends  no
  /// @threadsafe
  [[nodiscard]] bool try_lock();
  /// Like lock(), false on timeout.
  /// @suspends  yes, when another party holds it
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& d,
                                  detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::deadline_after(d), at);
  }
  /// Like lock(), false on timeout.
  /// @suspends  yes, when another party holds it
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t,
                                    detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::to_steady(t), at);
  }
  /// Drops one level; the last one hands the lock to the first waiter.
  /// @throws    taiga::usage_error if the caller does not hold it.
  /// @suspends  no
  /// @threadsafe
  void unlock();

 private:
  bool lock_until(detail::sync_clock::time_point deadline, detail::op_site at);
  bool lock_impl(const detail::sync_clock::time_point* deadline, detail::op_site at);

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;
  std::uint64_t owner_ = 0;
  std::size_t depth_ = 0;
};

/// A readers-writer lock (works with std::shared_lock and std::unique_lock).
/// Waiters are served FIFO and a waiting writer blocks later readers, so
/// writers do not starve; when a writer leaves, the run of readers at the
/// head of the queue enters together.
class shared_mutex {
 public:
  shared_mutex() = default;
  shared_mutex(const shared_mutex&) = delete;
  shared_mutex& operator=(const shared_mutex&) = delete;

  /// Takes the lock exclusively.
  /// @throws    taiga::usage_error if the caller holds it exclusively;
  ///            tasklet_exit (or the exception thrown in) if killed while
  ///            it waits (it then does not hold it).
  /// @suspends  yes, when held or when others wait
  /// @threadsafe
  void lock(detail::op_site at = detail::op_site::current());
  /// @throws    tasklet_exit (or the exception thrown in) if a kill is
  ///            pending (an interruption point).
  /// @suspends  no
  /// @threadsafe
  [[nodiscard]] bool try_lock();
  /// @suspends  yes, when held or when others wait; false on timeout
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& d,
                                  detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::deadline_after(d), false, at);
  }
  /// @suspends  yes, when held or when others wait; false on timeout
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t,
                                    detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::to_steady(t), false, at);
  }
  /// Releases exclusive ownership and admits the next waiter(s).
  /// @throws    taiga::usage_error if the caller does not hold it exclusively.
  /// @suspends  no
  /// @threadsafe
  void unlock();

  /// Takes the lock shared. Parks while a writer holds it or waits for it.
  /// @throws    taiga::usage_error if the caller holds it exclusively;
  ///            tasklet_exit (or the exception thrown in) if killed while
  ///            it waits.
  /// @suspends  yes, when a writer holds or waits
  /// @threadsafe
  void lock_shared(detail::op_site at = detail::op_site::current());
  /// @throws    tasklet_exit (or the exception thrown in) if a kill is
  ///            pending (an interruption point).
  /// @suspends  no
  /// @threadsafe
  [[nodiscard]] bool try_lock_shared();
  /// @suspends  yes, when a writer holds or waits; false on timeout
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& d,
                                         detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::deadline_after(d), true, at);
  }
  /// @suspends  yes, when a writer holds or waits; false on timeout
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& t,
                                           detail::op_site at = detail::op_site::current()) {
    return lock_until(detail::to_steady(t), true, at);
  }
  /// Releases one shared ownership. Readers are counted, not identified.
  /// @throws    taiga::usage_error if nobody holds it shared.
  /// @suspends  no
  /// @threadsafe
  void unlock_shared();

 private:
  bool lock_until(detail::sync_clock::time_point deadline, bool shared, detail::op_site at);
  bool lock_impl(const detail::sync_clock::time_point* deadline, bool shared, detail::op_site at);

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;  // tag: 1 = writer, 0 = reader
  std::uint64_t writer_ = 0;   // owner_token() of the writer; 0 = none
  std::size_t readers_ = 0;
};

/// A condition variable for taiga::mutex. Waiters are woken in FIFO order.
class condition_variable {
 public:
  condition_variable() = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  /// Wakes the longest-waiting waiter, if any.
  /// @suspends  no
  /// @threadsafe
  void notify_one() noexcept;
  /// Wakes every waiter.
  /// @suspends  no
  /// @threadsafe
  void notify_all() noexcept;

  /// Releases `lk`, parks until notified, and takes `lk` again before it
  /// returns. Spurious wake-ups do not happen, but prefer the predicate form.
  /// If the caller is killed (or thrown into) while it waits, the lock is
  /// taken again before the exception propagates.
  /// @pre       `lk` holds the mutex, and the caller is its owner
  ///            (taiga::usage_error otherwise).
  /// @suspends  yes
  /// @threadsafe
  void wait(std::unique_lock<mutex>& lk, detail::op_site at = detail::op_site::current());
  /// Waits until `pred()` holds (checked with the lock held).
  /// @suspends  yes, unless pred() holds already
  /// @threadsafe
  template <class Predicate>
  void wait(std::unique_lock<mutex>& lk, Predicate pred,
            detail::op_site at = detail::op_site::current()) {
    detail::interruption_point();  // also when pred() holds already
    while (!pred()) wait_impl(lk, nullptr, at);
  }
  /// Like wait(), but gives up after `d`: std::cv_status::timeout (the lock
  /// is held again either way).
  /// @suspends  yes
  /// @threadsafe
  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<mutex>& lk, const std::chrono::duration<Rep, Period>& d,
                          detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(lk, detail::deadline_after(d), at);
  }
  /// Like wait(), but gives up at `t`.
  /// @suspends  yes
  /// @threadsafe
  template <class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<mutex>& lk,
                            const std::chrono::time_point<Clock, Duration>& t,
                            detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(lk, detail::to_steady(t), at);
  }
  /// Waits until `pred()` holds or `d` passes; returns pred()'s last value.
  /// @suspends  yes, unless pred() holds already
  /// @threadsafe
  template <class Rep, class Period, class Predicate>
  bool wait_for(std::unique_lock<mutex>& lk, const std::chrono::duration<Rep, Period>& d,
                Predicate pred, detail::op_site at = detail::op_site::current()) {
    detail::interruption_point();  // also when pred() holds already
    const auto deadline = detail::deadline_after(d);
    while (!pred())
      if (wait_until_steady(lk, deadline, at) == std::cv_status::timeout) return pred();
    return true;
  }
  /// Waits until `pred()` holds or `t` passes; returns pred()'s last value.
  /// @suspends  yes, unless pred() holds already
  /// @threadsafe
  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::unique_lock<mutex>& lk, const std::chrono::time_point<Clock, Duration>& t,
                  Predicate pred, detail::op_site at = detail::op_site::current()) {
    detail::interruption_point();  // also when pred() holds already
    const auto deadline = detail::to_steady(t);
    while (!pred())
      if (wait_until_steady(lk, deadline, at) == std::cv_status::timeout) return pred();
    return true;
  }

 private:
  std::cv_status wait_until_steady(std::unique_lock<mutex>& lk,
                                   detail::sync_clock::time_point deadline, detail::op_site at);
  std::cv_status wait_impl(std::unique_lock<mutex>& lk,
                           const detail::sync_clock::time_point* deadline, detail::op_site at);

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;
};

/// A flag that tasklets and threads can wait for (Python's Event): set()
/// wakes every waiter and lets later waits pass until clear().
class event {
 public:
  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// Sets the flag and wakes every waiter (FIFO).
  /// @suspends  no
  /// @threadsafe
  void set() noexcept;
  /// Clears the flag.
  /// @suspends  no
  /// @threadsafe
  void clear() noexcept;
  /// @suspends  no
  /// @threadsafe
  [[nodiscard]] bool is_set() const noexcept;
  /// Parks until the flag is set (returns at once if it is).
  /// @suspends  yes, unless set
  /// @threadsafe
  void wait(detail::op_site at = detail::op_site::current());
  /// Parks until the flag is set or `d` passes: true if it was set, false on
  /// timeout.
  /// @suspends  yes, unless set
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& d,
                              detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(detail::deadline_after(d), at);
  }
  /// Parks until the flag is set or `t` passes: true if it was set.
  /// @suspends  yes, unless set
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& t,
                                detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(detail::to_steady(t), at);
  }

 private:
  bool wait_until_steady(detail::sync_clock::time_point deadline, detail::op_site at);
  bool wait_impl(const detail::sync_clock::time_point* deadline, detail::op_site at);

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;
  std::atomic<bool> set_{false};
};

/// A counting semaphore. acquire() takes one permit, parking while there is
/// none; release(n) hands permits to waiters in FIFO order first and keeps
/// the rest.
class semaphore {
 public:
  /// @throws taiga::usage_error if `initial` is negative.
  explicit semaphore(std::ptrdiff_t initial);
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  /// Takes one permit, parking until one is handed over.
  /// @throws    tasklet_exit (or the exception thrown in) if a kill is
  ///            pending when it starts (an interruption point, also with
  ///            permits free) or arrives while it waits: no permit is taken
  ///            then.
  /// @suspends  yes, when no permit is free
  /// @threadsafe
  void acquire(detail::op_site at = detail::op_site::current());
  /// Takes a permit if one is free (and nobody waits).
  /// @throws    tasklet_exit (or the exception thrown in) if a kill is
  ///            pending: an interruption point; no permit is taken then.
  /// @suspends  no
  /// @threadsafe
  [[nodiscard]] bool try_acquire();
  /// Like acquire(), false on timeout.
  /// @suspends  yes, when no permit is free
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& d,
                                     detail::op_site at = detail::op_site::current()) {
    return acquire_until(detail::deadline_after(d), at);
  }
  /// Like acquire(), false on timeout.
  /// @suspends  yes, when no permit is free
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& t,
                                       detail::op_site at = detail::op_site::current()) {
    return acquire_until(detail::to_steady(t), at);
  }
  /// Returns `n` permits: waiters get them first, in FIFO order.
  /// @throws    taiga::usage_error if `n` is negative or the count would pass
  ///            its maximum (a bounded_semaphore's initial count); nothing
  ///            changes then.
  /// @suspends  no
  /// @threadsafe
  void release(std::ptrdiff_t n = 1);
  /// The free permits now (a snapshot).
  /// @threadsafe
  [[nodiscard]] std::ptrdiff_t available() const noexcept;

 protected:
  semaphore(std::ptrdiff_t initial, std::ptrdiff_t max);

 private:
  bool acquire_until(detail::sync_clock::time_point deadline, detail::op_site at);
  bool acquire_impl(const detail::sync_clock::time_point* deadline, detail::op_site at);

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;
  std::ptrdiff_t count_ = 0;  // > 0 only while nobody waits
  std::ptrdiff_t max_ = std::numeric_limits<std::ptrdiff_t>::max();
};

/// A semaphore whose count may never exceed its initial value: releasing a
/// permit that was never acquired throws taiga::usage_error and changes
/// nothing (Python's BoundedSemaphore).
class bounded_semaphore : public semaphore {
 public:
  /// @throws taiga::usage_error if `initial` is negative.
  explicit bounded_semaphore(std::ptrdiff_t initial)
      : semaphore(initial, initial), bound_(initial) {}
  /// The bound (the initial count).
  [[nodiscard]] std::ptrdiff_t max() const noexcept { return bound_; }

 private:
  std::ptrdiff_t bound_;
};

/// A single-use countdown (std::latch): waiters park until the count reaches
/// zero.
class latch {
 public:
  /// @throws taiga::usage_error if `expected` is negative.
  explicit latch(std::ptrdiff_t expected);
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  /// Decrements the count by `n`; at zero, wakes every waiter.
  /// @throws    taiga::usage_error if `n` is negative or larger than the
  ///            count (nothing changes then).
  /// @suspends  no
  /// @threadsafe
  void count_down(std::ptrdiff_t n = 1);
  /// True once the count is zero. A snapshot, not an interruption point
  /// (a loop that polls it should yield).
  /// @threadsafe
  [[nodiscard]] bool try_wait() const noexcept;
  /// Parks until the count is zero.
  /// @suspends  yes, unless zero
  /// @threadsafe
  void wait(detail::op_site at = detail::op_site::current());
  /// Parks until the count is zero or `d` passes: false on timeout.
  /// @suspends  yes, unless zero
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& d,
                              detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(detail::deadline_after(d), at);
  }
  /// Parks until the count is zero or `t` passes: false on timeout.
  /// @suspends  yes, unless zero
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& t,
                                detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(detail::to_steady(t), at);
  }
  /// count_down(n), then wait().
  /// @suspends  yes, unless the count reaches zero
  /// @threadsafe
  void arrive_and_wait(std::ptrdiff_t n = 1, detail::op_site at = detail::op_site::current());

 private:
  bool wait_until_steady(detail::sync_clock::time_point deadline, detail::op_site at);
  bool wait_impl(const detail::sync_clock::time_point* deadline, detail::op_site at);

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;
  std::ptrdiff_t count_;
};

/// A cyclic barrier for a fixed number of parties (Python's Barrier): each
/// arrive_and_wait() parks until `parties` calls have arrived; the last one
/// runs the completion action (if any) before the others are released, and
/// the barrier is then ready for the next phase.
///
/// Phases are strictly ordered, however many tasklets use the barrier: a
/// phase is the first `parties` arrivals counted after the previous phase
/// completed; its completion action runs exactly once, after all of them
/// arrived and before any of them returns. An arrival that comes while a
/// completion action runs is not counted yet: it waits until the action has
/// finished and then arrives in the next phase (so it can never complete a
/// phase, or be released, while an earlier phase's action still runs). So
/// the action must not arrive at its own barrier: it would wait for itself.
///
/// The barrier breaks (every waiter and every later arrival throws
/// taiga::broken_barrier, until reset()) when abort() is called, when the
/// completion action throws, or when a waiter is killed or thrown into
/// before its phase completes: the phase can no longer complete as planned.
/// An arrival killed while it waits for a completion action to finish was
/// not counted, so it breaks nothing.
class barrier {
 public:
  /// @throws taiga::usage_error if `parties` is 0.
  explicit barrier(std::size_t parties, std::function<void()> completion = {});
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  /// Arrives and parks until the phase completes. Returns the arrival index
  /// in this phase: 0 for the first arrival, parties() - 1 for the last
  /// (which runs the completion action and does not park, unless the action
  /// does). While another phase's completion action runs, it first parks
  /// until that action has finished, uncounted.
  /// @throws    taiga::broken_barrier if the barrier is or becomes broken;
  ///            whatever the completion action throws (in the last arriver;
  ///            the barrier breaks); tasklet_exit if killed while it waits.
  /// @suspends  yes, unless last
  /// @threadsafe
  std::size_t arrive_and_wait(detail::op_site at = detail::op_site::current());
  /// Breaks the barrier: current waiters and later arrivals throw
  /// taiga::broken_barrier until reset().
  /// @suspends  no
  /// @threadsafe
  void abort() noexcept;
  /// Returns the barrier to its initial state. Parties waiting in the
  /// current phase throw taiga::broken_barrier. The parties of a phase whose
  /// completion action is running are released as planned when it ends, and
  /// arrivals waiting for that action arrive in the first phase after it.
  /// @suspends  no
  /// @threadsafe
  void reset() noexcept;

  [[nodiscard]] std::size_t parties() const noexcept { return parties_; }
  /// Parties that have arrived in the current phase (a snapshot).
  [[nodiscard]] std::size_t n_waiting() const noexcept;
  [[nodiscard]] bool broken() const noexcept;

 private:
  void break_locked(detail::wake_batch& batch) noexcept;

  const std::size_t parties_;
  const std::function<void()> completion_;
  mutable detail::spinlock lock_;  // guards everything below
  detail::wait_list waiters_;      // counted arrivals: the current phase's, and a
                                   // completing phase's while its action runs
  detail::wait_list entering_;     // arrivals held while an action runs (uncounted)
  std::size_t count_ = 0;          // arrivals in phase `phase_`
  std::uint64_t phase_ = 0;
  bool completing_ = false;  // a completion action runs (phase_ is already the next one)
  bool broken_ = false;
};

/// Go's sync.WaitGroup: add(n) before starting work, done() when a piece of
/// work ends, wait() parks until the counter is zero.
class wait_group {
 public:
  wait_group() = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  /// Adds `n` (may be negative) to the counter; at zero, wakes every waiter.
  /// @throws    taiga::usage_error if the counter would go negative (nothing
  ///            changes then).
  /// @suspends  no
  /// @threadsafe
  void add(std::ptrdiff_t n);
  /// add(-1): one piece of work has ended.
  /// @throws    taiga::usage_error if the counter is already zero.
  /// @suspends  no
  /// @threadsafe
  void done() { add(-1); }
  /// Parks until the counter is zero.
  /// @suspends  yes, unless zero
  /// @threadsafe
  void wait(detail::op_site at = detail::op_site::current());
  /// Parks until the counter is zero or `d` passes: false on timeout.
  /// @suspends  yes, unless zero
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& d,
                              detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(detail::deadline_after(d), at);
  }
  /// Parks until the counter is zero or `t` passes: false on timeout.
  /// @suspends  yes, unless zero
  /// @threadsafe
  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& t,
                                detail::op_site at = detail::op_site::current()) {
    return wait_until_steady(detail::to_steady(t), at);
  }
  /// The counter now (a snapshot).
  /// @threadsafe
  [[nodiscard]] std::ptrdiff_t count() const noexcept;

 private:
  bool wait_until_steady(detail::sync_clock::time_point deadline, detail::op_site at);
  bool wait_impl(const detail::sync_clock::time_point* deadline, detail::op_site at);

  mutable detail::spinlock lock_;
  detail::wait_list waiters_;
  std::ptrdiff_t count_ = 0;
};

}  // namespace taiga
