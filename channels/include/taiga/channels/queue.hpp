// taiga::queue: evergreen's (and Python's queue module's) Queue, LifoQueue and
// PriorityQueue for tasklets and plain threads, built only on the runtime's
// parking API (taiga/runtime/detail/park.hpp).
//
// Design note. A queue is a store (deque, stack or heap) plus two FIFO wait
// lists, parked getters and parked putters, all under one spinlock that is
// never held across a park. Items move between a waiter and the store only by
// the party that holds the lock, so every item is in exactly one place: the
// caller's argument, the store, or a getter's slot.
//
// Invariants (under lock_):
//  Q1  if getters_ is not empty, the store is empty: a put hands its item
//      straight to the first getter it can claim.
//  Q2  if putters_ is not empty, the queue is bounded and full: a get that
//      frees a place moves the first claimable putter's item into the store.
//  Q3  unfinished_ counts successful puts minus task_done() calls; it is never
//      negative (a surplus task_done() throws usage_error).
//  Q4  a waiter is in at most one list, and only while its wait_point::tag is
//      1. A waker unlinks a waiter *before* it tries to claim it, so a waiter
//      that wakes for another reason (timeout, kill) finds itself either
//      unlinked (it lost nothing) or still linked (it unlinks itself).
//
// Exactly-once delivery. A waker claims a waiter (detail::claim) before it
// moves an item into or out of the waiter's slot, and completes it only
// afterwards. A failed claim means the waiter already woke for a timeout or a
// kill; its slot is left alone and the waker tries the next waiter. So a
// getter that times out or is killed never holds an item, and a putter that
// times out or is killed still owns its item (put() did not happen).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <taiga/channels/status.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace taiga {

namespace detail::queue_impl {

/// An intrusive FIFO list of wait_points (through next/prev). `tag` is 1
/// while a wait_point is linked (invariant Q4). Not thread-safe: the owner's
/// lock guards it.
class wait_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(wait_point& w) noexcept {
    w.tag = 1;
    w.next = nullptr;
    w.prev = tail_;
    if (tail_ != nullptr) {
      tail_->next = &w;
    } else {
      head_ = &w;
    }
    tail_ = &w;
  }
  wait_point* pop_front() noexcept {
    wait_point* w = head_;
    if (w != nullptr) remove(*w);
    return w;
  }
  /// Unlinks `w` if it is still linked.
  void remove(wait_point& w) noexcept {
    if (w.tag != 1) return;
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
    w.next = w.prev = nullptr;
    w.tag = 0;
  }
  /// Claims every waiter (they carry no data) into `batch`, which completes
  /// them once the owner's lock is released.
  template <class Batch>
  void claim_all(Batch& batch) noexcept {
    while (wait_point* w = pop_front())
      if (claim(*w)) batch.add(*w);
  }

 private:
  wait_point* head_ = nullptr;
  wait_point* tail_ = nullptr;
};

/// Waiters claimed under the queue's lock, completed when the batch is
/// destroyed. Declare it before the lock guard: it is then destroyed after
/// the lock is released, and nothing touches the queue after a waiter is
/// completed (a woken joiner or getter may destroy the queue at once).
/// Linked through wait_point::next, free once the waiter left its list.
class wake_batch {
 public:
  wake_batch() = default;
  wake_batch(const wake_batch&) = delete;
  wake_batch& operator=(const wake_batch&) = delete;
  void add(wait_point& w) noexcept {
    w.next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = &w;
    } else {
      head_ = &w;
    }
    tail_ = &w;
  }
  ~wake_batch() {
    for (wait_point* w = head_; w != nullptr;) {
      wait_point* next = w->next;  // read before the waiter can return
      complete(*w);
      w = next;
    }
  }

 private:
  wait_point* head_ = nullptr;
  wait_point* tail_ = nullptr;
};

using steady_time = std::chrono::steady_clock::time_point;

/// A deadline on steady_clock for a time point of any clock.
template <class Clock, class Duration>
steady_time to_steady(const std::chrono::time_point<Clock, Duration>& t) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return std::chrono::time_point_cast<std::chrono::steady_clock::duration>(t);
  } else {
    return std::chrono::steady_clock::now() +
           std::chrono::ceil<std::chrono::steady_clock::duration>(t - Clock::now());
  }
}

template <class Rep, class Period>
steady_time after(const std::chrono::duration<Rep, Period>& d) {
  // Saturates: try_get_for(hours::max()) means "forever", not an overflow.
  auto now = std::chrono::steady_clock::now();
  if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(
               std::chrono::hours(24 * 365 * 100)))
    return steady_time::max();
  return now + std::chrono::ceil<std::chrono::steady_clock::duration>(d);
}

/// FIFO store.
template <class T>
class fifo_store {
 public:
  void push(T&& v) { items_.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items_.front());
    items_.pop_front();
    return v;
  }
  std::size_t size() const noexcept { return items_.size(); }

 private:
  std::deque<T> items_;
};

/// LIFO store.
template <class T>
class lifo_store {
 public:
  void push(T&& v) { items_.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items_.back());
    items_.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return items_.size(); }

 private:
  std::vector<T> items_;
};

/// Binary min-heap by `Compare`, stable: equal items leave in put order (a
/// sequence number breaks ties).
template <class T, class Compare>
class priority_store {
 public:
  void push(T&& v) {
    heap_.push_back(entry{std::move(v), seq_++});
    std::push_heap(heap_.begin(), heap_.end(), later{&comp_});
  }
  T pop() {
    std::pop_heap(heap_.begin(), heap_.end(), later{&comp_});
    T v = std::move(heap_.back().value);
    heap_.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return heap_.size(); }

 private:
  struct entry {
    T value;
    std::uint64_t seq;
  };
  // std's heap algorithms keep the *largest* on top; "larger" here means
  // "leaves later", so the top is the lowest item (the oldest among equals).
  struct later {
    Compare* comp;
    bool operator()(const entry& a, const entry& b) const {
      if ((*comp)(a.value, b.value)) return false;
      if ((*comp)(b.value, a.value)) return true;
      return a.seq > b.seq;
    }
  };
  std::vector<entry> heap_;
  Compare comp_{};
  std::uint64_t seq_ = 0;
};

}  // namespace detail::queue_impl

/// A multi-producer multi-consumer queue of `T` for tasklets and plain threads
/// (evergreen's Queue / LifoQueue / PriorityQueue, Python's queue.Queue). The
/// order in which items leave is set by `Store`; use the aliases `queue<T>`
/// (FIFO), `lifo_queue<T>` and `priority_queue<T, Compare>`.
///
/// - Bounded when `maxsize > 0`: put() parks while the queue is full.
///   `maxsize == 0` means unbounded (put() never parks).
/// - Parked getters and parked putters are served first come, first served.
/// - A parked get or put that times out or is killed takes nothing out and
///   puts nothing in: every item put is received exactly once.
/// - Work accounting (Python's task_done()/join()): every successful put adds
///   one unfinished task; task_done() removes one; join() parks until none is
///   left.
/// - `T` may be move-only. Moving a `T` must not throw; a failed allocation
///   while an item is handed to or from a parked waiter terminates.
///
/// Tasklets park; plain threads block (a futex). A tasklet parked on a queue
/// counts for deadlock detection: if a plain thread is the only one that will
/// ever put, hold a runtime::keep_alive() guard meanwhile.
/// @threadsafe
template <class T, class Store>
class basic_queue {
 public:
  using value_type = T;

  /// A queue that holds at most `maxsize` items; 0 = unbounded.
  explicit basic_queue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  basic_queue(const basic_queue&) = delete;
  basic_queue& operator=(const basic_queue&) = delete;
  /// @pre nobody is parked on the queue.
  ~basic_queue() = default;

  // ---- put ----------------------------------------------------------------

  /// Puts `v`, parking the caller while the queue is full.
  /// @suspends yes (a plain thread blocks); a kill point when it parks.
  /// @throws   tasklet_exit (or a throw_into exception) if the tasklet is
  ///           killed while it waits; `v` is then not put.
  /// @threadsafe
  void put(T&& v) { (void)put_impl(v, nullptr); }
  void put(const T& v) {
    T copy(v);
    (void)put_impl(copy, nullptr);
  }

  /// Puts `v` if there is room now (moving from it only on success).
  /// @returns  `channel_status::ok`, or `channel_status::would_block` if the
  ///           queue is full (`v` is left untouched).
  /// @suspends no
  /// @threadsafe
  [[nodiscard]] channel_status try_put(T&& v) {
    detail::queue_impl::wake_batch wb;
    std::lock_guard lk(lock_);
    return put_locked(v, wb) ? channel_status::ok : channel_status::would_block;
  }
  [[nodiscard]] channel_status try_put(const T& v) {
    T copy(v);
    return try_put(std::move(copy));
  }

  /// Puts `v`, parking at most `d` (or until `t`) while the queue is full.
  /// @returns  `channel_status::ok`, or `channel_status::timeout` (`v` is left
  ///           untouched).
  /// @suspends yes; a kill point when it parks.
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] channel_status try_put_for(T&& v, const std::chrono::duration<Rep, Period>& d) {
    auto dl = detail::queue_impl::after(d);
    return put_impl(v, &dl);
  }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status try_put_until(T&& v,
                                             const std::chrono::time_point<Clock, Duration>& t) {
    auto dl = detail::queue_impl::to_steady(t);
    return put_impl(v, &dl);
  }
  template <class Rep, class Period>
  [[nodiscard]] channel_status try_put_for(const T& v,
                                           const std::chrono::duration<Rep, Period>& d) {
    T copy(v);
    return try_put_for(std::move(copy), d);
  }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status try_put_until(const T& v,
                                             const std::chrono::time_point<Clock, Duration>& t) {
    T copy(v);
    return try_put_until(std::move(copy), t);
  }

  // ---- get ----------------------------------------------------------------

  /// Takes the next item, parking the caller while the queue is empty.
  /// @suspends yes (a plain thread blocks); a kill point when it parks.
  /// @throws   tasklet_exit (or a throw_into exception) if the tasklet is
  ///           killed while it waits; no item is taken then.
  /// @threadsafe
  [[nodiscard]] T get() { return std::move(*get_impl(nullptr)); }

  /// Takes the next item if there is one now.
  /// @suspends no
  /// @threadsafe
  [[nodiscard]] std::optional<T> try_get() {
    detail::queue_impl::wake_batch wb;
    std::lock_guard lk(lock_);
    return get_locked(wb);
  }

  /// Takes the next item, parking at most `d` (or until `t`).
  /// @returns  the item, or std::nullopt on timeout.
  /// @suspends yes; a kill point when it parks.
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] std::optional<T> try_get_for(const std::chrono::duration<Rep, Period>& d) {
    auto dl = detail::queue_impl::after(d);
    return get_impl(&dl);
  }
  template <class Clock, class Duration>
  [[nodiscard]] std::optional<T> try_get_until(const std::chrono::time_point<Clock, Duration>& t) {
    auto dl = detail::queue_impl::to_steady(t);
    return get_impl(&dl);
  }

  // ---- state --------------------------------------------------------------

  /// Items in the queue now (a snapshot). @threadsafe
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lk(lock_);
    return store_.size();
  }
  [[nodiscard]] bool empty() const { return size() == 0; }
  /// True if bounded and holding maxsize() items (a snapshot). @threadsafe
  [[nodiscard]] bool full() const {
    std::lock_guard lk(lock_);
    return full_locked();
  }
  /// The bound given at construction; 0 = unbounded.
  [[nodiscard]] std::size_t maxsize() const noexcept { return maxsize_; }

  // ---- work accounting ----------------------------------------------------

  /// Marks one item put earlier as processed. Wakes join()ers when the
  /// count of unfinished items drops to zero.
  /// @throws   usage_error if called more times than items were put.
  /// @suspends no
  /// @threadsafe
  void task_done() {
    detail::queue_impl::wake_batch wb;
    std::lock_guard lk(lock_);
    if (unfinished_ == 0) throw usage_error("taiga::queue::task_done called too many times");
    if (--unfinished_ == 0) joiners_.claim_all(wb);
  }

  /// Parks until every item put so far has had its task_done().
  /// @suspends yes (a plain thread blocks); a kill point when it parks.
  /// @threadsafe
  void join() { (void)join_impl(nullptr); }
  /// join() with a time limit. @returns true if the count reached zero.
  template <class Rep, class Period>
  [[nodiscard]] bool try_join_for(const std::chrono::duration<Rep, Period>& d) {
    auto dl = detail::queue_impl::after(d);
    return join_impl(&dl);
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_join_until(const std::chrono::time_point<Clock, Duration>& t) {
    auto dl = detail::queue_impl::to_steady(t);
    return join_impl(&dl);
  }
  /// Items put and not yet task_done() (a snapshot). @threadsafe
  [[nodiscard]] std::size_t unfinished_tasks() const {
    std::lock_guard lk(lock_);
    return unfinished_;
  }

 private:
  using wait_list = detail::queue_impl::wait_list;
  using steady_time = detail::queue_impl::steady_time;

  bool full_locked() const noexcept { return maxsize_ != 0 && store_.size() >= maxsize_; }

  // Puts `v` (moving from it) if that needs no wait: to the first claimable
  // getter (Q1) or into the store. Returns false, `v` untouched, when full.
  bool put_locked(T& v, detail::queue_impl::wake_batch& wb) noexcept {
    while (detail::wait_point* w = getters_.pop_front()) {
      if (!detail::claim(*w)) continue;  // it timed out or was killed: skip it
      static_cast<std::optional<T>*>(w->slot)->emplace(std::move(v));
      ++unfinished_;
      wb.add(*w);  // completed after the lock is released
      return true;
    }
    if (full_locked()) return false;
    store_.push(std::move(v));
    ++unfinished_;
    return true;
  }

  // Takes the next item if there is one, then refills the place it freed from
  // the first claimable putter (Q2).
  std::optional<T> get_locked(detail::queue_impl::wake_batch& wb) noexcept {
    if (store_.size() == 0) return std::nullopt;
    std::optional<T> out(store_.pop());
    while (detail::wait_point* w = putters_.pop_front()) {
      if (!detail::claim(*w)) continue;
      store_.push(std::move(*static_cast<T*>(w->slot)));
      ++unfinished_;
      wb.add(*w);  // completed after the lock is released
      break;
    }
    return out;
  }

  channel_status put_impl(T& v, const steady_time* deadline) {
    {
      detail::queue_impl::wake_batch wb;
      std::lock_guard lk(lock_);
      if (put_locked(v, wb)) return channel_status::ok;
    }
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) {
      return channel_status::timeout;
    }
    detail::wait_point w;
    w.slot = &v;
    detail::prepare_wait(w, "queue put", this);  // a kill point
    {
      detail::queue_impl::wake_batch wb;
      std::lock_guard lk(lock_);
      if (put_locked(v, wb)) {
        detail::cancel_wait(w);
        return channel_status::ok;
      }
      putters_.push_back(w);
    }
    detail::wake_status s = detail::wait(w, deadline);
    if (s == detail::wake_status::signaled) return channel_status::ok;  // a getter took v
    {
      std::lock_guard lk(lock_);
      putters_.remove(w);
    }
    if (s == detail::wake_status::interrupted) detail::throw_interrupt();
    return channel_status::timeout;
  }

  std::optional<T> get_impl(const steady_time* deadline) {
    {
      detail::queue_impl::wake_batch wb;
      std::lock_guard lk(lock_);
      if (auto v = get_locked(wb)) return v;
    }
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) return std::nullopt;
    std::optional<T> slot;
    detail::wait_point w;
    w.slot = &slot;
    detail::prepare_wait(w, "queue get", this);  // a kill point
    {
      detail::queue_impl::wake_batch wb;
      std::lock_guard lk(lock_);
      if (auto v = get_locked(wb)) {
        detail::cancel_wait(w);
        return v;
      }
      getters_.push_back(w);
    }
    detail::wake_status s = detail::wait(w, deadline);
    if (s == detail::wake_status::signaled) return slot;  // a putter filled it
    {
      std::lock_guard lk(lock_);
      getters_.remove(w);
    }
    if (s == detail::wake_status::interrupted) detail::throw_interrupt();
    return std::nullopt;
  }

  bool join_impl(const steady_time* deadline) {
    {
      std::lock_guard lk(lock_);
      if (unfinished_ == 0) return true;
    }
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) return false;
    detail::wait_point w;
    detail::prepare_wait(w, "queue join", this);
    {
      std::lock_guard lk(lock_);
      if (unfinished_ == 0) {
        detail::cancel_wait(w);
        return true;
      }
      joiners_.push_back(w);
    }
    detail::wake_status s = detail::wait(w, deadline);
    if (s == detail::wake_status::signaled) return true;
    {
      std::lock_guard lk(lock_);
      joiners_.remove(w);
    }
    if (s == detail::wake_status::interrupted) detail::throw_interrupt();
    return false;
  }

  const std::size_t maxsize_;
  mutable detail::spinlock lock_;  // guards everything below; never held across a park
  Store store_;
  wait_list getters_;  // parked get()s; slot = std::optional<T>*
  wait_list putters_;  // parked put()s; slot = T* (the item they offer)
  wait_list joiners_;  // parked join()s
  std::size_t unfinished_ = 0;
};

/// First in, first out (evergreen/Python `Queue`).
template <class T>
using queue = basic_queue<T, detail::queue_impl::fifo_store<T>>;

/// Last in, first out (evergreen/Python `LifoQueue`).
template <class T>
using lifo_queue = basic_queue<T, detail::queue_impl::lifo_store<T>>;

/// Lowest first, like Python's heapq and evergreen's `PriorityQueue`: get()
/// returns an item `x` such that no queued `y` has `Compare{}(y, x)`. So with
/// the default std::less the smallest item leaves first (the opposite of
/// std::priority_queue). Equal items leave in the order they were put.
template <class T, class Compare = std::less<T>>
using priority_queue = basic_queue<T, detail::queue_impl::priority_store<T, Compare>>;

}  // namespace taiga
