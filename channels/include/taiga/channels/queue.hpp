// taiga::queue: evergreen's (and Python's queue module's) Queue, LifoQueue and
// PriorityQueue for tasklets and plain threads, built only on the runtime's
// parking API (taiga/runtime/detail/park.hpp).
//
// Design note. A queue is a store (a list, a stack or a heap of nodes) plus
// two FIFO wait lists, parked getters and parked putters, all under one
// spinlock that is never held across a park. Items move between a waiter and
// the store only by the party that holds the lock, so every item is in
// exactly one place: the caller's argument, the store, or a getter's slot.
//
// Invariants (under lock_):
//  Q1  if getters_ is not empty, the store is empty: a put hands its item
//      straight to the first getter it can claim.
//  Q2  if putters_ is not empty, the queue is bounded and full: a get that
//      frees a place moves the first claimable putter's item into the store.
//  Q3  unfinished_ counts successful puts minus task_done() calls; it is never
//      negative (a surplus task_done() throws usage_error).
//  Q4  a waiter is in at most one list (detail::wait_list::contains tells
//      whether it still is). A waker unlinks a waiter *before* it tries to
//      claim it, so a waiter that wakes for another reason (timeout, kill)
//      finds itself either unlinked (it lost nothing) or still linked (it
//      unlinks itself).
//  Q5  nothing under lock_ allocates, and every step under it that can throw
//      (T's move constructor, Compare) comes before the first change it would
//      have to undo, and before any claim on its behalf (strong guarantee).
//      Each item lives in a node whose storage the putter allocates before it
//      takes the lock; the heap's array grows outside the lock (make_room).
//      The item is moved into its node under the lock, only once it is sure
//      to be accepted, so a put that fails or times out leaves it with the
//      caller. A heap insertion or removal first finds its place with
//      comparisons only, and then moves node pointers, which cannot throw.
//
// Exactly-once delivery. A waker claims a waiter (detail::claim) before it
// moves an item into or out of the waiter's slot, and completes it only
// afterwards. A failed claim means the waiter already woke for a timeout or a
// kill; its slot is left alone and the waker tries the next waiter. So a
// getter that times out or is killed never holds an item, and a putter that
// times out or is killed still owns its item (put() did not happen). The one
// step that can throw after a claim is the move of a parked putter's item
// into the store (on a get that freed a place): that putter is then woken
// with the exception, which its put() rethrows, and the next putter is tried.
//
// Interruption points (sync.hpp's list; issue 18 B). put, get, join and their
// try_ and timed forms start with detail::interruption_point(), before they
// take the lock: a pending kill or throw_into is delivered even when the
// call would not park (an item ready, room free, an unbounded queue), and
// then nothing moved: the item stays with the caller or in the queue.
// task_done() is a release and never throws for a kill.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <taiga/channels/detail/op_site.hpp>
#include <taiga/channels/status.hpp>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace taiga {

namespace detail::queue_impl {

// The wait list, the wake batch and the deadline helpers are the sync
// toolkit's (detail:: in sync.hpp): one implementation of each.

/// One queued item, with the link its store needs. `seq` orders equal items
/// in a priority_store.
template <class T>
struct node {
  node(T&& v, std::uint64_t s) : seq(s), value(std::move(v)) {}
  node* next = nullptr;
  std::uint64_t seq;
  T value;
};

/// Destroys a node made by node_storage::build.
template <class T>
struct node_deleter {
  void operator()(node<T>* n) const noexcept {
    n->~node();
    std::allocator<node<T>>().deallocate(n, 1);
  }
};
template <class T>
using node_ptr = std::unique_ptr<node<T>, node_deleter<T>>;

/// Raw storage for one node, allocated by a putter before it takes the
/// queue's lock (Q5). It owns the storage until build() makes a node there;
/// the node then belongs to the store or to a getter.
template <class T>
class node_storage {
 public:
  node_storage() : p_(std::allocator<node<T>>().allocate(1)) {}  // may throw bad_alloc
  node_storage(const node_storage&) = delete;
  node_storage& operator=(const node_storage&) = delete;
  ~node_storage() {
    if (p_ != nullptr) std::allocator<node<T>>().deallocate(p_, 1);
  }
  /// Moves `v` into a new node. If T's move constructor throws, the storage
  /// stays raw and this object still owns it.
  node<T>* build(T& v, std::uint64_t seq) {
    node<T>* n = ::new (static_cast<void*>(p_)) node<T>(std::move(v), seq);
    p_ = nullptr;
    return n;
  }

 private:
  node<T>* p_;
};

/// What a store that never allocates under the lock uses as its spare.
struct no_spare {};

// The stores. Called only under the queue's lock. Each one has:
//   size()              items held
//   growth()            0, or the capacity to allocate (outside the lock,
//                       allocate_spare) before the next push may run
//   adopt(spare)        takes that allocation if it still helps; leaves the
//                       buffer to free (outside the lock) in `spare`
//   push(raw, v)        builds a node from v and stores it; strong guarantee
//   push_built(n)       stores a node; noexcept; pre: the store is empty
//   pop()               removes the next node; strong guarantee
// growth() must be 0 before push and push_built.

/// FIFO store: a singly linked list of nodes.
template <class T>
class fifo_store {
 public:
  using spare_type = no_spare;
  fifo_store() = default;
  fifo_store(const fifo_store&) = delete;
  fifo_store& operator=(const fifo_store&) = delete;
  ~fifo_store() {
    while (head_ != nullptr) node_deleter<T>()(pop());
  }
  std::size_t size() const noexcept { return size_; }
  static constexpr std::size_t growth() noexcept { return 0; }
  static void allocate_spare(spare_type&, std::size_t) noexcept {}
  static void adopt(spare_type&) noexcept {}
  void push(node_storage<T>& raw, T& v) { push_built(raw.build(v, 0)); }
  void push_built(node<T>* n) noexcept {
    n->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = n;
    } else {
      head_ = n;
    }
    tail_ = n;
    ++size_;
  }
  node<T>* pop() noexcept {
    node<T>* n = head_;
    head_ = n->next;
    if (head_ == nullptr) tail_ = nullptr;
    --size_;
    return n;
  }

 private:
  node<T>* head_ = nullptr;
  node<T>* tail_ = nullptr;
  std::size_t size_ = 0;
};

/// LIFO store: a stack of nodes.
template <class T>
class lifo_store {
 public:
  using spare_type = no_spare;
  lifo_store() = default;
  lifo_store(const lifo_store&) = delete;
  lifo_store& operator=(const lifo_store&) = delete;
  ~lifo_store() {
    while (top_ != nullptr) node_deleter<T>()(pop());
  }
  std::size_t size() const noexcept { return size_; }
  static constexpr std::size_t growth() noexcept { return 0; }
  static void allocate_spare(spare_type&, std::size_t) noexcept {}
  static void adopt(spare_type&) noexcept {}
  void push(node_storage<T>& raw, T& v) { push_built(raw.build(v, 0)); }
  void push_built(node<T>* n) noexcept {
    n->next = top_;
    top_ = n;
    ++size_;
  }
  node<T>* pop() noexcept {
    node<T>* n = top_;
    top_ = n->next;
    --size_;
    return n;
  }

 private:
  node<T>* top_ = nullptr;
  std::size_t size_ = 0;
};

/// Binary min-heap of nodes by `Compare`, stable: equal items leave in put
/// order (a sequence number breaks ties). Exception-safe for a throwing
/// Compare (Q5): push and pop first find where the moving node goes, with
/// comparisons only, and then shift node pointers along that path.
template <class T, class Compare>
class priority_store {
 public:
  using spare_type = std::vector<node<T>*>;
  priority_store() = default;
  priority_store(const priority_store&) = delete;
  priority_store& operator=(const priority_store&) = delete;
  ~priority_store() {
    for (node<T>* n : heap_) node_deleter<T>()(n);
  }
  std::size_t size() const noexcept { return heap_.size(); }
  std::size_t growth() const noexcept {
    if (heap_.size() < heap_.capacity()) return 0;
    return heap_.capacity() < 8 ? 16 : 2 * heap_.capacity();
  }
  static void allocate_spare(spare_type& spare, std::size_t capacity) {
    spare.clear();
    spare.reserve(capacity);
  }
  void adopt(spare_type& spare) noexcept {
    if (spare.capacity() <= heap_.capacity()) return;  // grown meanwhile
    spare.assign(heap_.begin(), heap_.end());          // fits: no allocation, pointers
    heap_.swap(spare);
  }
  void push(node_storage<T>& raw, T& v) {
    // 1. Where it goes: up from the new leaf while it leaves before the
    // parent (a new item leaves after its equals: it has the largest seq).
    std::size_t i = heap_.size();
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!comp_(v, heap_[parent]->value)) break;
      i = parent;
    }
    // 2. The item moves into its node: the last step that can throw.
    node<T>* n = raw.build(v, seq_);
    // 3. Shift the path down by one and place the node (capacity was made).
    std::size_t j = heap_.size();
    heap_.push_back(nullptr);
    while (j > i) {
      const std::size_t parent = (j - 1) / 2;
      heap_[j] = heap_[parent];
      j = parent;
    }
    heap_[i] = n;
    ++seq_;
  }
  void push_built(node<T>* n) noexcept {
    n->seq = seq_++;
    heap_.push_back(n);  // the heap is empty and has capacity
  }
  node<T>* pop() {
    node<T>* const top = heap_.front();
    node<T>* const last = heap_.back();
    const std::size_t m = heap_.size() - 1;  // the heap without `last`
    // 1. Where `last` goes, from the root down (comparisons only); the
    // path's turns are recorded, one bit per level (right = 1).
    std::uint64_t turns = 0;
    unsigned depth = 0;
    for (std::size_t i = 0;;) {
      std::size_t c = 2 * i + 1;
      if (c >= m) break;
      const bool right = c + 1 < m && earlier(*heap_[c + 1], *heap_[c]);
      if (right) ++c;
      if (!earlier(*heap_[c], *last)) break;
      turns |= std::uint64_t{right} << depth;
      ++depth;
      i = c;
    }
    // 2. Move the path up by one and put `last` at its end.
    std::size_t j = 0;
    for (unsigned d = 0; d < depth; ++d) {
      const std::size_t c = 2 * j + 1 + ((turns >> d) & 1U);
      heap_[j] = heap_[c];
      j = c;
    }
    heap_[j] = last;
    heap_.pop_back();
    return top;
  }

 private:
  // True if `a` leaves before `b`: lower by Compare, or equal and older.
  bool earlier(const node<T>& a, const node<T>& b) {
    if (comp_(a.value, b.value)) return true;
    if (comp_(b.value, a.value)) return false;
    return a.seq < b.seq;
  }
  std::vector<node<T>*> heap_;
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
/// - `T` may be move-only. Exceptions: a put or get that throws
///   std::bad_alloc (each item gets a node, allocated before the queue's lock
///   is taken), or what T's move constructor or `Compare` throws, changes
///   nothing in the queue: a failed put did not put its item (the argument
///   is as T's move constructor left it, untouched when Compare or the
///   allocation failed), a failed get took nothing, and parked waiters stay
///   parked, or are served by the next put or get. The one loss a throwing
///   move can cause is outside the queue: get() moves the item it took into
///   its return value, and if that move throws, the item is gone (as with
///   any function that returns by value).
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
  /// @suspends yes (a plain thread blocks); an interruption point (a kill
  ///           pending on entry throws before `v` is touched) and a kill
  ///           point when it parks.
  /// @throws   tasklet_exit (or a throw_into exception) if the tasklet is
  ///           killed while it waits; std::bad_alloc; what T's move
  ///           constructor or Compare throws. `v` is then not put.
  /// @threadsafe
  void put(T&& v, detail::op_site at = detail::op_site::current()) {
    (void)put_impl(v, nullptr, at);
  }
  void put(const T& v, detail::op_site at = detail::op_site::current()) {
    T copy(v);
    (void)put_impl(copy, nullptr, at);
  }

  /// Puts `v` if there is room now (moving from it only on success).
  /// @returns  `channel_status::ok`, or `channel_status::would_block` if the
  ///           queue is full (`v` is left untouched).
  /// @throws   tasklet_exit (or a throw_into exception) if a kill is pending
  ///           (an interruption point: `v` is left untouched); std::bad_alloc;
  ///           what T's move constructor or Compare throws (`v` is then not
  ///           put).
  /// @suspends no
  /// @threadsafe
  [[nodiscard]] channel_status try_put(T&& v) {
    detail::interruption_point();  // before anything moves
    node_storage raw;              // outside the lock (Q5)
    spare_type spare;              // freed after the unlock
    detail::wake_batch wb;
    lock_type lk(lock_);
    make_room(lk, spare);
    return put_locked(raw, v, wb) ? channel_status::ok : channel_status::would_block;
  }
  [[nodiscard]] channel_status try_put(const T& v) {
    T copy(v);
    return try_put(std::move(copy));
  }

  /// Puts `v`, parking at most `d` (or until `t`) while the queue is full.
  /// @returns  `channel_status::ok`, or `channel_status::timeout` (`v` is left
  ///           untouched).
  /// @throws   like put().
  /// @suspends yes; a kill point when it parks.
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] channel_status try_put_for(T&& v, const std::chrono::duration<Rep, Period>& d,
                                           detail::op_site at = detail::op_site::current()) {
    auto dl = detail::deadline_after(d);
    return put_impl(v, &dl, at);
  }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status try_put_until(T&& v,
                                             const std::chrono::time_point<Clock, Duration>& t,
                                             detail::op_site at = detail::op_site::current()) {
    auto dl = detail::to_steady(t);
    return put_impl(v, &dl, at);
  }
  template <class Rep, class Period>
  [[nodiscard]] channel_status try_put_for(const T& v, const std::chrono::duration<Rep, Period>& d,
                                           detail::op_site at = detail::op_site::current()) {
    T copy(v);
    return try_put_for(std::move(copy), d, at);
  }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status try_put_until(const T& v,
                                             const std::chrono::time_point<Clock, Duration>& t,
                                             detail::op_site at = detail::op_site::current()) {
    T copy(v);
    return try_put_until(std::move(copy), t, at);
  }

  // ---- get ----------------------------------------------------------------

  /// Takes the next item, parking the caller while the queue is empty.
  /// @suspends yes (a plain thread blocks); an interruption point (a kill
  ///           pending on entry throws and takes nothing) and a kill point
  ///           when it parks.
  /// @throws   tasklet_exit (or a throw_into exception) if the tasklet is
  ///           killed while it waits; what Compare throws (priority_queue);
  ///           no item is taken then. What T's move constructor throws (the
  ///           item taken is lost, see above).
  /// @threadsafe
  [[nodiscard]] T get(detail::op_site at = detail::op_site::current()) {
    node_ptr n = get_impl(nullptr, at);
    return std::move(n->value);
  }

  /// Takes the next item if there is one now.
  /// @throws   like get(): an interruption point, also on an empty queue.
  /// @suspends no
  /// @threadsafe
  [[nodiscard]] std::optional<T> try_get() {
    detail::interruption_point();  // before anything moves
    node_ptr n;
    {
      detail::wake_batch wb;
      std::lock_guard lk(lock_);
      n.reset(get_locked(wb));
    }
    return take(n);
  }

  /// Takes the next item, parking at most `d` (or until `t`).
  /// @returns  the item, or std::nullopt on timeout.
  /// @throws   like get().
  /// @suspends yes; a kill point when it parks.
  /// @threadsafe
  template <class Rep, class Period>
  [[nodiscard]] std::optional<T> try_get_for(const std::chrono::duration<Rep, Period>& d,
                                             detail::op_site at = detail::op_site::current()) {
    auto dl = detail::deadline_after(d);
    node_ptr n = get_impl(&dl, at);
    return take(n);
  }
  template <class Clock, class Duration>
  [[nodiscard]] std::optional<T> try_get_until(const std::chrono::time_point<Clock, Duration>& t,
                                               detail::op_site at = detail::op_site::current()) {
    auto dl = detail::to_steady(t);
    node_ptr n = get_impl(&dl, at);
    return take(n);
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
    detail::wake_batch wb;
    std::lock_guard lk(lock_);
    if (unfinished_ == 0) throw usage_error("taiga::queue::task_done called too many times");
    if (--unfinished_ == 0) joiners_.claim_all(wb);
  }

  /// Parks until every item put so far has had its task_done().
  /// @suspends yes (a plain thread blocks); a kill point when it parks.
  /// @threadsafe
  void join(detail::op_site at = detail::op_site::current()) { (void)join_impl(nullptr, at); }
  /// join() with a time limit. @returns true if the count reached zero.
  template <class Rep, class Period>
  [[nodiscard]] bool try_join_for(const std::chrono::duration<Rep, Period>& d,
                                  detail::op_site at = detail::op_site::current()) {
    auto dl = detail::deadline_after(d);
    return join_impl(&dl, at);
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_join_until(const std::chrono::time_point<Clock, Duration>& t,
                                    detail::op_site at = detail::op_site::current()) {
    auto dl = detail::to_steady(t);
    return join_impl(&dl, at);
  }
  /// Items put and not yet task_done() (a snapshot). @threadsafe
  [[nodiscard]] std::size_t unfinished_tasks() const {
    std::lock_guard lk(lock_);
    return unfinished_;
  }

 private:
  using wait_list = detail::wait_list;
  using steady_time = detail::sync_clock::time_point;
  using node_type = detail::queue_impl::node<T>;
  using node_ptr = detail::queue_impl::node_ptr<T>;
  using node_storage = detail::queue_impl::node_storage<T>;
  using spare_type = typename Store::spare_type;
  using lock_type = std::unique_lock<detail::spinlock>;

  // A parked putter's slot: its item, the storage for the item's node, and
  // the exception that kept a getter from moving the item in (Q5).
  struct put_slot {
    T* value;
    node_storage* raw;
    std::exception_ptr error;
  };

  bool full_locked() const noexcept { return maxsize_ != 0 && store_.size() >= maxsize_; }

  static std::optional<T> take(node_ptr& n) {
    if (!n) return std::nullopt;
    return std::optional<T>(std::move(n->value));
  }

  // Lets the store take one more item without allocating under the lock:
  // the allocation is made with the lock released (Q5). Returns with `lk`
  // held, or throws (std::bad_alloc) with it released.
  void make_room(lock_type& lk, spare_type& spare) {
    while (const std::size_t capacity = store_.growth()) {
      lk.unlock();
      Store::allocate_spare(spare, capacity);
      lk.lock();
      store_.adopt(spare);
    }
  }

  // Puts `v` if that needs no wait: to the first claimable getter (Q1) or
  // into the store, in a node built in `raw`. Returns false, `v` untouched,
  // when full. Throws (T's move, Compare) before any change (Q5).
  // @pre make_room() ran in this critical section.
  bool put_locked(node_storage& raw, T& v, detail::wake_batch& wb) {
    if (!getters_.empty()) {
      node_type* n = raw.build(v, 0);  // may throw: nothing changed yet
      while (detail::wait_point* w = getters_.pop_front()) {
        if (!detail::claim(*w)) continue;  // it timed out or was killed: skip it
        *static_cast<node_type**>(w->slot) = n;
        ++unfinished_;
        wb.add(*w);  // completed after the lock is released
        return true;
      }
      store_.push_built(n);  // every getter had left; the store is empty (Q1)
      ++unfinished_;
      return true;
    }
    if (full_locked()) return false;
    store_.push(raw, v);  // strong guarantee
    ++unfinished_;
    return true;
  }

  // Takes the next item's node if there is one (nullptr otherwise), then
  // refills the place it freed from the first claimable putter (Q2). Throws
  // only before any change (Compare, in a priority_store's pop).
  node_type* get_locked(detail::wake_batch& wb) {
    if (store_.size() == 0) return nullptr;
    node_type* out = store_.pop();  // may throw: nothing changed yet
    while (detail::wait_point* w = putters_.pop_front()) {
      if (!detail::claim(*w)) continue;
      auto& p = *static_cast<put_slot*>(w->slot);
      wb.add(*w);  // completed after the lock is released
      try {
        store_.push(*p.raw, *p.value);  // the place just freed: no growth needed
        ++unfinished_;
        break;
      } catch (...) {
        // That putter's item cannot go in: its put() throws this, and the
        // place goes to the next putter (Q2).
        p.error = std::current_exception();
      }
    }
    return out;
  }

  channel_status put_impl(T& v, const steady_time* deadline, detail::op_site at) {
    detail::interruption_point();  // before anything moves: v stays the caller's
    node_storage raw;              // outside the lock (Q5); a parked put offers it
    spare_type spare;              // freed after the unlock
    {
      detail::wake_batch wb;
      lock_type lk(lock_);
      make_room(lk, spare);
      if (put_locked(raw, v, wb)) return channel_status::ok;
    }
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) {
      return channel_status::timeout;
    }
    put_slot slot{&v, &raw, nullptr};
    detail::wait_point w;
    w.slot = &slot;
    detail::prepare_wait(w, park_reason::queue_put, this, detail::call_site(at));  // a kill point
    {
      detail::wake_batch wb;
      lock_type lk(lock_);
      try {
        make_room(lk, spare);
        if (put_locked(raw, v, wb)) {
          detail::cancel_wait(w);
          return channel_status::ok;
        }
      } catch (...) {
        detail::cancel_wait(w);  // never parked
        throw;
      }
      putters_.push_back(w);
    }
    detail::wake_status s = detail::wait(w, deadline);
    if (s == detail::wake_status::signaled) {
      // A getter took v, or could not (Q5): then this put failed.
      if (slot.error) std::rethrow_exception(slot.error);
      return channel_status::ok;
    }
    {
      std::lock_guard lk(lock_);
      putters_.remove_if_linked(w);
    }
    if (s == detail::wake_status::interrupted) detail::throw_interrupt();
    return channel_status::timeout;
  }

  // The next item's node, parking for it; nullptr on timeout.
  node_ptr get_impl(const steady_time* deadline, detail::op_site at) {
    detail::interruption_point();  // before anything moves: the item stays queued
    node_ptr got;
    {
      detail::wake_batch wb;
      std::lock_guard lk(lock_);
      got.reset(get_locked(wb));
    }
    if (got) return got;
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) return got;
    node_type* slot = nullptr;
    detail::wait_point w;
    w.slot = &slot;
    detail::prepare_wait(w, park_reason::queue_get, this, detail::call_site(at));  // a kill point
    {
      detail::wake_batch wb;
      std::lock_guard lk(lock_);
      try {
        got.reset(get_locked(wb));
      } catch (...) {
        detail::cancel_wait(w);  // never parked
        throw;
      }
      if (got) {
        detail::cancel_wait(w);
      } else {
        getters_.push_back(w);
      }
    }
    if (got) return got;
    detail::wake_status s = detail::wait(w, deadline);
    if (s == detail::wake_status::signaled) {
      got.reset(slot);  // a putter filled it
      return got;
    }
    {
      std::lock_guard lk(lock_);
      getters_.remove_if_linked(w);
    }
    if (s == detail::wake_status::interrupted) detail::throw_interrupt();
    return got;
  }

  bool join_impl(const steady_time* deadline, detail::op_site at) {
    detail::interruption_point();
    {
      std::lock_guard lk(lock_);
      if (unfinished_ == 0) return true;
    }
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) return false;
    detail::wait_point w;
    detail::prepare_wait(w, park_reason::queue_join, this, detail::call_site(at));
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
      joiners_.remove_if_linked(w);
    }
    if (s == detail::wake_status::interrupted) detail::throw_interrupt();
    return false;
  }

  const std::size_t maxsize_;
  mutable detail::spinlock lock_;  // guards everything below; never held across a park
  Store store_;
  wait_list getters_;  // parked get()s; slot = node_type** (the node handed over)
  wait_list putters_;  // parked put()s; slot = put_slot*
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
