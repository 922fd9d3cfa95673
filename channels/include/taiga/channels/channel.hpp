#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <taiga/channels/detail/deadline.hpp>
#include <taiga/channels/detail/op_site.hpp>
#include <taiga/channels/status.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/source_location.hpp>
#include <taiga/runtime/this_tasklet.hpp>
#include <type_traits>
#include <utility>

namespace taiga {

/// The value of a channel that only signals (Go's `chan struct{}`):
/// `taiga::channel<taiga::unit> ready; ready.send({});`. Not named `signal`,
/// which `using namespace taiga;` would make collide with <csignal>'s.
struct unit {
  friend bool operator==(unit, unit) noexcept { return true; }
};

/// What a receive that reports its status returns: the value (when `status`
/// is ok) and why nothing came otherwise (closed, timeout, would_block).
/// `auto [v, st] = ch.receive_for(10ms);` binds both; `if (r) use(*r);`.
template <class T>
struct received {
  std::optional<T> value;
  channel_status status = channel_status::ok;
  explicit operator bool() const noexcept { return status == channel_status::ok; }
  T& operator*() & noexcept { return *value; }
  T&& operator*() && noexcept { return std::move(*value); }
  T* operator->() noexcept { return &*value; }
};

template <class T>
class channel;
template <class T>
struct select_access;
template <class T, class F>
class receive_case;
template <class T, class F, bool Refers>
class send_case;

namespace detail {

/// How a channel keeps a T: as itself when its moves cannot throw (nothing
/// under a channel lock may throw, C7), else boxed in a unique_ptr, whose
/// moves cannot: the box is made before the lock is taken and opened after
/// it is released, the only steps where T's own move runs.
template <class T>
inline constexpr bool chan_boxed =
    !(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>);
template <class T>
using chan_stored = std::conditional_t<chan_boxed<T>, std::unique_ptr<T>, T>;

/// What travels through a channel: a value, or an exception for the
/// receiver to throw (send_exception).
template <class T>
struct chan_item {
  std::optional<chan_stored<T>> value;
  std::exception_ptr error;

  /// Takes the caller's value (moves it; boxes it if T's moves may throw).
  static chan_item of(T&& v) {
    if constexpr (chan_boxed<T>) {
      return chan_item{std::make_unique<T>(std::move(v)), nullptr};
    } else {
      return chan_item{std::move(v), nullptr};
    }
  }
  /// Gives a value that was not sent back to the caller's object.
  void give_back(T& v) {
    if (!value) return;
    if constexpr (chan_boxed<T>) {
      v = std::move(**value);
    } else {
      v = std::move(*value);
    }
    value.reset();
  }
  /// The value, out of its box.
  std::optional<T> open() {
    if (!value) return std::nullopt;
    if constexpr (chan_boxed<T>) {
      return std::optional<T>(std::move(**value));
    } else {
      return std::optional<T>(std::move(*value));
    }
  }
};

/// Whether a parked waiter still waits: nobody has claimed its wait point
/// (a waker, its timeout, a kill, a throw_into, another case of its
/// select). A node whose waiter no longer waits stays linked until its
/// owner's cleanup or the next waker drops it; it must not count (A1 of
/// design/channels.md): queries skip it.
inline bool chan_waiting(const wait_point& w) noexcept {
  const std::atomic<std::uint32_t>& word = w.tasklet ? w.tasklet->wait_word : w.word;
  std::uint32_t v = word.load(std::memory_order_acquire);
  return v != ww_idle && (v & ww_claimed) == 0;
}
/// One parked send or receive, in the waiting tasklet's frame. A select
/// parks one node per case, all sharing one wait_point: the first waker to
/// claim it wins, the other nodes are unlinked by the select afterwards.
struct chan_node {
  chan_node* next = nullptr;
  chan_node* prev = nullptr;
  chan_node* wake_next = nullptr;  // the waker's private list of claimed nodes
  wait_point* wp = nullptr;
  void* item = nullptr;  // chan_item<T>*: the offer (send) or the destination (receive)
  channel_status result = channel_status::ok;  // written by the waker before complete()
  std::uint32_t case_index = 0;                // for select: which case this node is
  bool linked = false;
  bool in_select = false;  // its wait_point is shared with the select's other cases
};

/// An intrusive FIFO of parked nodes.
struct chan_list {
  chan_node* head = nullptr;
  chan_node* tail = nullptr;
  std::size_t size = 0;
  void push(chan_node* n) noexcept {
    n->next = nullptr;
    n->prev = tail;
    if (tail) {
      tail->next = n;
    } else {
      head = n;
    }
    tail = n;
    n->linked = true;
    ++size;
  }
  void remove(chan_node* n) noexcept {
    if (!n->linked) return;
    if (n->prev) {
      n->prev->next = n->next;
    } else {
      head = n->next;
    }
    if (n->next) {
      n->next->prev = n->prev;
    } else {
      tail = n->prev;
    }
    n->next = n->prev = nullptr;
    n->linked = false;
    --size;
  }
  /// Unlinks the nodes whose waiters no longer wait and returns how many
  /// still do: O(parked). A dropped node's owner finds it unlinked, which
  /// its own cleanup (remove) allows.
  std::size_t live() noexcept {
    for (chan_node* n = head; n;) {
      chan_node* next = n->next;
      if (!chan_waiting(*n->wp)) remove(n);
      n = next;
    }
    return size;
  }
  /// Whether any node's waiter still waits; drops dead nodes at the head.
  bool any_live() noexcept {
    while (head && !chan_waiting(*head->wp)) remove(head);
    return head != nullptr;
  }
  /// Unlinks and returns the first node whose waiter this caller could claim,
  /// dropping nodes whose waiters already woke for another reason.
  chan_node* claim_first() noexcept {
    while (chan_node* n = head) {
      remove(n);
      if (claim(*n->wp)) {
        n->wp->tag = n->case_index;
        return n;
      }
    }
    return nullptr;
  }
};

/// A channel's buffer: a fixed-capacity ring allocated when the channel is
/// made (none for a rendezvous channel: std::deque allocated ~600 bytes per
/// channel up front, which skynet's 111,111 channels paid for), so that no
/// allocation ever happens under the channel's lock.
template <class Item>
class chan_ring {
 public:
  chan_ring() = default;
  chan_ring(const chan_ring&) = delete;
  chan_ring& operator=(const chan_ring&) = delete;
  ~chan_ring() {
    while (count_ > 0) pop_front();
    ::operator delete(slots_);
  }
  /// Allocates the slots (none for capacity 0), outside any lock.
  void reserve_capacity(std::size_t cap) {
    cap_ = cap;
    if (cap > 0) slots_ = static_cast<Item*>(::operator new(cap * sizeof(Item)));
  }
  bool empty() const noexcept { return count_ == 0; }
  std::size_t size() const noexcept { return count_; }
  Item& front() noexcept { return slots_[head_]; }
  void pop_front() noexcept {
    slots_[head_].~Item();
    head_ = head_ + 1 == cap_ ? 0 : head_ + 1;
    --count_;
  }
  void push_back(Item&& it) noexcept {
    std::size_t tail = head_ + count_;
    if (tail >= cap_) tail -= cap_;
    ::new (static_cast<void*>(slots_ + tail)) Item(std::move(it));
    ++count_;
  }

 private:
  Item* slots_ = nullptr;
  std::size_t cap_ = 0, head_ = 0, count_ = 0;
};

/// Nodes a waker claimed under the channel lock and completes after
/// unlocking. Linked through wake_next only: the nodes have already left the
/// channel's list (their `linked` stays false, so a woken select's unpark()
/// does not touch them again).
struct chan_wake_list {
  chan_node* head = nullptr;
  chan_node* tail = nullptr;
  void push(chan_node* n) noexcept {
    n->wake_next = nullptr;
    if (tail) {
      tail->wake_next = n;
    } else {
      head = n;
    }
    tail = n;
  }
  /// Completes every node; reads each link before completing its node (the
  /// waiter may return, and its frame die, as soon as it is completed).
  void complete_all() noexcept {
    for (chan_node* n = head; n;) {
      chan_node* next = n->wake_next;
      complete(*n->wp);
      n = next;
    }
  }
};

/// Arms a channel or select wait, recording the user's call site for the
/// deadlock report.
inline void chan_prepare_wait(wait_point& wp, park_cause what, const void* object, op_site at) {
  prepare_wait(wp, what, object, call_site(at));
}

/// Type-independent part of a channel, used by select to lock channels of
/// different types in one (address) order.
struct chan_base {
  spinlock lock;
  chan_list senders;
  chan_list receivers;
  bool closing = false;
  int preference = -1;
  std::size_t capacity = 0;
};

}  // namespace detail

/// A typed channel with Stackless semantics. It is a handle: copies share
/// one channel, and the channel lives while any handle does, so tasklets can
/// capture channels by value. Operations are const: a handle is only a
/// reference, so a lambda that captured one by value need not be `mutable`.
/// A default-constructed handle is a new rendezvous channel; `nil()` makes a
/// handle to no channel (Go's nil channel), whose select cases are disabled.
///
/// Capacity 0 (the default) is a rendezvous: send() parks until a receiver
/// takes the value. Capacity N buffers N values (FIFO).
///
/// T is any move-constructible, move-assignable type. When its moves may
/// throw (std::deque, say), the channel boxes each value (one allocation per
/// send), because nothing may throw under the channel's lock.
///
/// A value whose send did not succeed stays with the caller: send(T&&) and
/// its try/timed forms leave the argument untouched unless they return ok,
/// also when they throw (a kill). A move-only resource (a socket, a
/// unique_ptr) is never lost to a closed channel or a timeout.
///
/// Closing (close()): no new values are accepted; values already buffered or
/// offered by parked senders are still delivered, in order; after that
/// receivers get "closed" (receive() returns std::nullopt). Unlike Stackless,
/// close() wakes the parked receivers (they can only be parked when nothing
/// is buffered or offered) with "closed", instead of leaving them blocked;
/// parked senders are not woken: their offers stay drainable. A parked
/// sender or receiver that is killed or times out leaves the channel: its
/// value stays with it, and from the moment its wait was claimed it no
/// longer counts in balance() or closed(). Every value is delivered exactly
/// once.
///
/// Every operation that sends or receives is an interruption point, whether
/// or not it parks: a pending kill() or throw_into() is delivered before the
/// operation changes anything, so a loop on a closed channel stays killable.
///
/// Preference (Stackless): who runs first when an operation finds a partner
/// parked. -1 (default): the receiver; a sender hands its value over and
/// yields so the receiver runs now (on the sender's worker). +1: the sender;
/// a receiver that takes a parked sender's value yields to it. 0: neither,
/// the caller continues and the partner is queued. The woken partner is
/// queued on the caller's worker, whichever worker it parked on. select
/// follows the same rule. On a buffered channel a sender that finds a
/// receiver parked (the buffer is empty) hands the value over and puts the
/// receiver in the next slot with -1, but does not yield: a buffer is there
/// to let the sender run ahead (Go's rule), and a producer that yielded on
/// every value to consumers that drain the buffer at once would switch twice
/// per value.
template <class T>
class channel {
  static_assert(std::is_move_constructible_v<T> && std::is_move_assignable_v<T>,
                "channel<T> needs a T that can be move-constructed and move-assigned");
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>,
                "channel<T> carries values: T must not be a reference or const");

 public:
  using value_type = T;
  using site = detail::op_site;

  /// A new channel; capacity 0 = rendezvous. `channel<T> ch;`, `ch{}`,
  /// `ch(0)` and `ch(16)` all make one.
  channel() : channel(std::size_t{0}) {}
  explicit channel(std::size_t capacity) : s_(std::make_shared<state>()) {
    s_->capacity = capacity;
    s_->buffer.reserve_capacity(capacity);
  }
  /// A nil handle (no channel): its select cases are disabled; any other
  /// operation on it is a bug.
  static channel nil() { return channel(nil_tag{}); }

  // ---- send ---------------------------------------------------------------

  /// Hands `v` to a receiver, parking until one takes it (rendezvous) or
  /// until buffer space frees up. Returns channel_status::closed if the
  /// channel is closing; then `v` is untouched. @suspends yes @threadsafe
  [[nodiscard]] channel_status send(T&& v, site at = site::current()) const {
    return send_value(v, nullptr, false, at);
  }
  [[nodiscard]] channel_status send(const T& v, site at = site::current()) const {
    T copy(v);
    return send_value(copy, nullptr, false, at);
  }
  /// Like send() but never parks: would_block if no receiver or space.
  [[nodiscard]] channel_status try_send(T&& v) const {
    return send_value(v, nullptr, true, site::current());
  }
  [[nodiscard]] channel_status try_send(const T& v) const {
    T copy(v);
    return send_value(copy, nullptr, true, site::current());
  }
  /// Like send() with a deadline: timeout if nobody took `v` in time (then
  /// `v` is untouched). Any clock.
  template <class Rep, class Period>
  [[nodiscard]] channel_status send_for(T&& v, std::chrono::duration<Rep, Period> d,
                                        site at = site::current()) const {
    auto t = detail::deadline_after(d);
    return send_value(v, &t, false, at);
  }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status send_until(T&& v, std::chrono::time_point<Clock, Duration> tp,
                                          site at = site::current()) const {
    auto t = detail::to_steady(tp);
    return send_value(v, &t, false, at);
  }
  template <class Rep, class Period>
  [[nodiscard]] channel_status send_for(const T& v, std::chrono::duration<Rep, Period> d,
                                        site at = site::current()) const {
    T copy(v);
    return send_for(std::move(copy), d, at);
  }
  template <class Clock, class Duration>
  [[nodiscard]] channel_status send_until(const T& v, std::chrono::time_point<Clock, Duration> tp,
                                          site at = site::current()) const {
    T copy(v);
    return send_until(std::move(copy), tp, at);
  }
  /// The receiver's receive() throws `e` (Stackless send_exception). The
  /// caller's `e` is untouched whatever the outcome.
  [[nodiscard]] channel_status send_exception(const std::exception_ptr& e,
                                              site at = site::current()) const {
    item it{std::nullopt, e};
    return put(it, nullptr, false, at);
  }
  template <class E>
  [[nodiscard]] channel_status send_exception(E e, site at = site::current()) const {
    return send_exception(std::make_exception_ptr(std::move(e)), at);
  }
  /// Sends every element of `r` in order; returns how many were sent
  /// (fewer if the channel closed). From an rvalue range of T the elements
  /// are moved, and the unsent tail (the element that met the closed
  /// channel included) is left untouched in `r`.
  template <class Range>
  std::size_t send_sequence(Range&& r, site at = site::current()) const {
    std::size_t n = 0;
    for (auto&& v : r) {
      channel_status st;
      if constexpr (std::is_rvalue_reference_v<Range&&> &&
                    std::is_same_v<std::remove_cvref_t<decltype(v)>, T> &&
                    !std::is_const_v<std::remove_reference_t<decltype(v)>>) {
        st = send_value(v, nullptr, false, at);  // the range is ours to consume
      } else {
        T copy(v);
        st = send_value(copy, nullptr, false, at);
      }
      if (st != channel_status::ok) break;
      ++n;
    }
    return n;
  }

  // ---- receive ------------------------------------------------------------

  /// Takes the next value, parking until there is one. std::nullopt once the
  /// channel is closed and drained. Throws what send_exception() sent.
  /// @suspends yes @threadsafe
  std::optional<T> receive(site at = site::current()) const {
    return take(nullptr, false, at).value;
  }
  /// Never parks: nullopt if nothing is ready (try_receive_status says why).
  std::optional<T> try_receive() const { return take(nullptr, true, site::current()).value; }
  /// The receive forms that say why nothing came (closed, timeout,
  /// would_block). The timed ones take a duration or any clock's time point.
  received<T> receive_status(site at = site::current()) const { return take(nullptr, false, at); }
  received<T> try_receive_status() const { return take(nullptr, true, site::current()); }
  template <class Rep, class Period>
  received<T> receive_for(std::chrono::duration<Rep, Period> d, site at = site::current()) const {
    auto t = detail::deadline_after(d);
    return take(&t, false, at);
  }
  template <class Clock, class Duration>
  received<T> receive_until(std::chrono::time_point<Clock, Duration> tp,
                            site at = site::current()) const {
    auto t = detail::to_steady(tp);
    return take(&t, false, at);
  }

  // ---- state ----------------------------------------------------------------

  /// Stops accepting values; see the class comment. Idempotent. Not an
  /// interruption point (cleanup code calls it).
  void close() const {
    detail::chan_wake_list woken;
    {
      std::lock_guard lk(s_->lock);
      if (s_->closing) return;
      s_->closing = true;
      if (s_->buffer.empty() && !s_->senders.any_live()) wake_receivers_closed(woken);
    }
    woken.complete_all();
  }
  /// close() was called.
  bool closing() const {
    std::lock_guard lk(s_->lock);
    return s_->closing;
  }
  /// Closing and nothing left to drain (a parked sender that was killed or
  /// timed out has nothing left to offer).
  bool closed() const {
    std::lock_guard lk(s_->lock);
    return s_->closing && s_->buffer.empty() && !s_->senders.any_live();
  }
  /// Parked senders (positive) or parked receivers (negative), Stackless's
  /// balance. Buffered values are not counted, nor waiters whose wait was
  /// already claimed (killed, timed out, or a select that another case
  /// won). O(parked waiters).
  long balance() const {
    std::lock_guard lk(s_->lock);
    return static_cast<long>(s_->senders.live()) - static_cast<long>(s_->receivers.live());
  }
  std::size_t size() const {
    std::lock_guard lk(s_->lock);
    return s_->buffer.size();
  }
  std::size_t capacity() const { return s_->capacity; }
  int preference() const {
    std::lock_guard lk(s_->lock);
    return s_->preference;
  }
  void set_preference(int p) const {
    std::lock_guard lk(s_->lock);
    s_->preference = p < 0 ? -1 : (p > 0 ? 1 : 0);
  }

  /// False for a nil handle.
  explicit operator bool() const noexcept { return s_ != nullptr; }
  friend bool operator==(const channel& a, const channel& b) noexcept { return a.s_ == b.s_; }

  /// Range-for: receives until the channel is closed and drained.
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(const channel* c) : c_(c) { ++*this; }
    T& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = c_->receive();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !cur_.has_value(); }

   private:
    const channel* c_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() const { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  friend struct select_access<T>;
  template <class U, class F>
  friend class receive_case;
  template <class U, class F, bool R>
  friend class send_case;
  using item = detail::chan_item<T>;
  struct state : detail::chan_base {
    detail::chan_ring<item> buffer;
  };
  struct nil_tag {};
  explicit channel(nil_tag) {}

  // With the lock held: raises a pending kill or throw_into, unlocking first.
  // Every operation passes one interruption point before it moves anything:
  // this one where it completes without parking, prepare_wait's where it
  // parks. One out-of-line call and a load, under a lock held for a few
  // instructions more.
  static void interruption_point_locked(state& s) {
    if (detail::interrupt_pending()) [[unlikely]] {
      s.lock.unlock();
      detail::throw_interrupt();
    }
  }

  // With the lock held: wakes every parked receiver with "closed" (the
  // caller completes them after unlocking, in `woken`'s order).
  void wake_receivers_closed(detail::chan_wake_list& woken) const {
    while (detail::chan_node* n = s_->receivers.claim_first()) {
      n->result = channel_status::closed;
      woken.push(n);
    }
  }

  // Every send of a value: the value moves into an item, and back into `v`
  // unless it was sent (a failure status, or an exception: a kill pending
  // at the interruption point, or arriving while parked).
  channel_status send_value(T& v, const std::chrono::steady_clock::time_point* deadline,
                            bool nowait, site at) const {
    item it = item::of(std::move(v));
    channel_status st;
    try {
      st = put(it, deadline, nowait, at);
    } catch (...) {
      it.give_back(v);
      throw;
    }
    if (st != channel_status::ok) it.give_back(v);
    return st;
  }

  // Hands `it` over, buffers it, or parks. On any outcome but ok, `it` still
  // holds what it held. Lock order: only this channel.
  channel_status put(item& it, const std::chrono::steady_clock::time_point* deadline, bool nowait,
                     site at) const {
    state& s = *s_;
    s.lock.lock();
    // The interruption point, where the operation will not park (a park's
    // prepare_wait checks the same flags, P1): before anything moves.
    if (s.closing) {
      interruption_point_locked(s);
      s.lock.unlock();
      return channel_status::closed;
    }
    // A parked receiver: hand the value over (see take() for the protocol).
    if (s.receivers.head) interruption_point_locked(s);
    while (detail::chan_node* r = s.receivers.head) {
      s.receivers.remove(r);
      detail::wait_point* claimed = nullptr;
      if (r->in_select) {
        if (!detail::claim(*r->wp)) continue;
        r->wp->tag = r->case_index;
        claimed = r->wp;
      }
      *static_cast<item*>(r->item) = std::move(it);
      r->result = channel_status::ok;
      detail::hand_off_ticket ticket;
      if (!claimed && !detail::hand_off(*r->wp, ticket)) {
        it = std::move(*static_cast<item*>(r->item));  // it left first: take the value back
        continue;
      }
      int pref = s.preference;
      // A buffered channel lets its sender run ahead: the receiver takes
      // the next slot, the sender does not yield (Go's rule; see the class
      // comment).
      bool yield = pref < 0 && s.capacity == 0;
      s.lock.unlock();
      if (claimed) {
        detail::complete(*claimed, /*next=*/pref < 0);
      } else {
        detail::finish_hand_off(ticket, /*next=*/pref < 0);
      }
      if (yield) detail::yield_keeping_interrupts();
      return channel_status::ok;
    }
    if (s.buffer.size() < s.capacity) {
      interruption_point_locked(s);
      s.buffer.push_back(std::move(it));
      s.lock.unlock();
      return channel_status::ok;
    }
    if (nowait) {
      interruption_point_locked(s);
      s.lock.unlock();
      return channel_status::would_block;
    }
    detail::wait_point wp;
    try {
      detail::chan_prepare_wait(wp, park_reason::channel_send, &s, at);
    } catch (...) {
      s.lock.unlock();
      throw;
    }
    detail::chan_node node;
    node.wp = &wp;
    node.item = &it;
    s.senders.push(&node);
    s.lock.unlock();
    detail::wake_status ws = detail::wait(wp, deadline);
    if (ws == detail::wake_status::signaled) return node.result;
    {
      std::lock_guard lk(s.lock);
      s.senders.remove(&node);
    }
    if (ws == detail::wake_status::interrupted) detail::throw_interrupt();
    return channel_status::timeout;
  }

  static received<T> deliver(item&& it) {
    if (it.error) std::rethrow_exception(it.error);
    return {it.open(), channel_status::ok};
  }

  received<T> take(const std::chrono::steady_clock::time_point* deadline, bool nowait,
                   site at) const {
    state& s = *s_;
    s.lock.lock();
    // The interruption point where it will not park (see put()).
    if (!s.buffer.empty()) {
      interruption_point_locked(s);
      item it = std::move(s.buffer.front());
      s.buffer.pop_front();
      // A parked sender's offer moves into the freed slot (FIFO preserved).
      detail::chan_node* snd = s.senders.claim_first();
      if (snd) {
        s.buffer.push_back(std::move(*static_cast<item*>(snd->item)));
        snd->result = channel_status::ok;
      }
      detail::chan_wake_list woken;
      if (s.closing && s.buffer.empty() && !s.senders.any_live()) wake_receivers_closed(woken);
      s.lock.unlock();
      if (snd) detail::complete(*snd->wp);
      woken.complete_all();
      return deliver(std::move(it));
    }
    // A parked sender: take its offer. A plain sender is claimed and
    // released in one step (hand_off), after its offer moved out, which is
    // moved back if the sender already left (timeout, kill: it cannot
    // return before it retakes our lock); a select's node is claimed first.
    if (s.senders.head) interruption_point_locked(s);
    while (detail::chan_node* snd = s.senders.head) {
      s.senders.remove(snd);
      detail::wait_point* claimed = nullptr;
      if (snd->in_select) {
        if (!detail::claim(*snd->wp)) continue;
        snd->wp->tag = snd->case_index;
        claimed = snd->wp;
      }
      item it = std::move(*static_cast<item*>(snd->item));
      snd->result = channel_status::ok;
      detail::hand_off_ticket ticket;
      if (!claimed && !detail::hand_off(*snd->wp, ticket)) {
        *static_cast<item*>(snd->item) = std::move(it);
        continue;
      }
      int pref = s.preference;
      detail::chan_wake_list woken;
      if (s.closing && !s.senders.any_live()) wake_receivers_closed(woken);
      s.lock.unlock();
      if (claimed) {
        detail::complete(*claimed, /*next=*/pref > 0);
      } else {
        detail::finish_hand_off(ticket, /*next=*/pref > 0);
      }
      woken.complete_all();
      if (pref > 0) detail::yield_keeping_interrupts();
      return deliver(std::move(it));
    }
    if (s.closing || nowait) {
      interruption_point_locked(s);
      channel_status st = s.closing ? channel_status::closed : channel_status::would_block;
      s.lock.unlock();
      return {std::nullopt, st};
    }
    detail::wait_point wp;
    try {
      detail::chan_prepare_wait(wp, park_reason::channel_receive, &s, at);
    } catch (...) {
      s.lock.unlock();
      throw;
    }
    item dest;
    detail::chan_node node;
    node.wp = &wp;
    node.item = &dest;
    s.receivers.push(&node);
    s.lock.unlock();
    detail::wake_status ws = detail::wait(wp, deadline);
    if (ws == detail::wake_status::signaled) {
      if (node.result != channel_status::ok) return {std::nullopt, node.result};
      return deliver(std::move(dest));
    }
    {
      std::lock_guard lk(s.lock);
      s.receivers.remove(&node);
    }
    if (ws == detail::wake_status::interrupted) detail::throw_interrupt();
    return {std::nullopt, channel_status::timeout};
  }

  std::shared_ptr<state> s_;
};

}  // namespace taiga
