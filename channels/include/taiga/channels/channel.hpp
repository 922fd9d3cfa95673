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
#include <taiga/channels/status.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/this_tasklet.hpp>
#include <type_traits>
#include <utility>

namespace taiga {

/// The value of a channel that only signals (a "void" channel):
/// `taiga::channel<taiga::signal> ready; ready.send({});`.
struct signal {
  friend bool operator==(signal, signal) noexcept { return true; }
};

template <class T>
class channel;
template <class T>
struct select_access;
template <class T, class F>
class receive_case;
template <class T, class F>
class send_case;

namespace detail {

/// What travels through a channel: a value, or an exception for the
/// receiver to throw (send_exception).
template <class T>
struct chan_item {
  std::optional<T> value;
  std::exception_ptr error;
};

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
/// capture channels by value. A default-constructed handle is "nil" (like
/// Go's nil channel): select treats its cases as disabled.
///
/// Capacity 0 (the default) is a rendezvous: send() parks until a receiver
/// takes the value. Capacity N buffers N values (FIFO).
///
/// Closing (close()): no new values are accepted; values already buffered or
/// offered by parked senders are still delivered, in order; after that
/// receivers get "closed" (receive() returns std::nullopt). Unlike Stackless,
/// close() wakes the parked receivers (they can only be parked when nothing
/// is buffered or offered) with "closed", instead of leaving them blocked;
/// parked senders are not woken: their offers stay drainable. A parked
/// sender or receiver that is killed or times out leaves the channel: its
/// value stays with it. Every value is delivered exactly once.
///
/// Preference (Stackless): who runs first when an operation finds a partner
/// parked. -1 (default): the receiver; a sender hands its value over and
/// yields so the receiver runs now (on the sender's worker). +1: the sender;
/// a receiver that takes a parked sender's value yields to it. 0: neither,
/// the caller continues and the partner is queued. The woken partner is
/// queued on the caller's worker, whichever worker it parked on.
template <class T>
class channel {
  // Values move under the channel's lock after a partner was claimed: a move
  // that threw there would leave the lock held and the partner parked.
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>,
                "channel<T> needs a T whose move constructor and move assignment are noexcept");

 public:
  using value_type = T;

  /// A new channel; capacity 0 = rendezvous.
  explicit channel(std::size_t capacity = 0) : s_(std::make_shared<state>()) {
    s_->capacity = capacity;
    s_->buffer.reserve_capacity(capacity);
  }
  /// A nil handle (no channel).
  static channel nil() { return channel(nullptr); }

  /// Hands `v` to a receiver, parking until one takes it (rendezvous) or
  /// until buffer space frees up. Returns channel_status::closed (and keeps
  /// nothing) if the channel is closing. @suspends yes @threadsafe
  [[nodiscard]] channel_status send(T v) {
    return put(item{std::move(v), nullptr}, nullptr, false);
  }
  /// Like send() but never parks: would_block if no receiver or space.
  [[nodiscard]] channel_status try_send(T v) {
    return put(item{std::move(v), nullptr}, nullptr, true);
  }
  template <class Rep, class Period>
  [[nodiscard]] channel_status try_send_for(T v, std::chrono::duration<Rep, Period> d) {
    return try_send_until(std::move(v),
                          std::chrono::steady_clock::now() +
                              std::chrono::ceil<std::chrono::steady_clock::duration>(d));
  }
  [[nodiscard]] channel_status try_send_until(T v, std::chrono::steady_clock::time_point t) {
    return put(item{std::move(v), nullptr}, &t, false);
  }
  /// The receiver's receive() throws `e` (Stackless send_exception).
  [[nodiscard]] channel_status send_exception(std::exception_ptr e) {
    return put(item{std::nullopt, std::move(e)}, nullptr, false);
  }
  template <class E>
  [[nodiscard]] channel_status send_exception(E e) {
    return send_exception(std::make_exception_ptr(std::move(e)));
  }
  /// Sends every element of `r` in order; returns how many were sent
  /// (fewer if the channel closed).
  template <class Range>
  std::size_t send_sequence(Range&& r) {
    std::size_t n = 0;
    for (auto&& v : r) {
      channel_status st;
      if constexpr (std::is_rvalue_reference_v<Range&&>) {
        st = send(T(std::move(v)));  // the range is ours to consume
      } else {
        st = send(T(v));
      }
      if (st != channel_status::ok) break;
      ++n;
    }
    return n;
  }

  /// Takes the next value, parking until there is one. std::nullopt once the
  /// channel is closed and drained. Throws what send_exception() sent.
  /// @suspends yes @threadsafe
  std::optional<T> receive() { return take(nullptr, false).first; }
  /// Never parks: nullopt if nothing is ready (see try_receive_status).
  std::optional<T> try_receive() { return take(nullptr, true).first; }
  template <class Rep, class Period>
  std::optional<T> try_receive_for(std::chrono::duration<Rep, Period> d) {
    return try_receive_until(std::chrono::steady_clock::now() +
                             std::chrono::ceil<std::chrono::steady_clock::duration>(d));
  }
  std::optional<T> try_receive_until(std::chrono::steady_clock::time_point t) {
    return take(&t, false).first;
  }
  /// The receive forms that also say why nothing came (closed, timeout,
  /// would_block).
  std::pair<std::optional<T>, channel_status> receive_status() { return take(nullptr, false); }
  std::pair<std::optional<T>, channel_status> try_receive_status() { return take(nullptr, true); }
  std::pair<std::optional<T>, channel_status> receive_status_until(
      std::chrono::steady_clock::time_point t) {
    return take(&t, false);
  }

  /// Stops accepting values; see the class comment. Idempotent.
  void close() {
    detail::chan_wake_list woken;
    {
      std::lock_guard lk(s_->lock);
      if (s_->closing) return;
      s_->closing = true;
      if (s_->buffer.empty() && s_->senders.size == 0) wake_receivers_closed(woken);
    }
    woken.complete_all();
  }
  /// close() was called.
  bool closing() const {
    std::lock_guard lk(s_->lock);
    return s_->closing;
  }
  /// Closing and nothing left to drain.
  bool closed() const {
    std::lock_guard lk(s_->lock);
    return s_->closing && s_->buffer.empty() && s_->senders.size == 0;
  }
  /// Parked senders (positive) or parked receivers (negative), Stackless's
  /// balance. Buffered values are not counted.
  long balance() const {
    std::lock_guard lk(s_->lock);
    return static_cast<long>(s_->senders.size) - static_cast<long>(s_->receivers.size);
  }
  std::size_t size() const {
    std::lock_guard lk(s_->lock);
    return s_->buffer.size();
  }
  std::size_t capacity() const { return s_->capacity; }
  int preference() const { return s_->preference; }
  void set_preference(int p) {
    std::lock_guard lk(s_->lock);
    s_->preference = p < 0 ? -1 : (p > 0 ? 1 : 0);
  }

  explicit operator bool() const noexcept { return s_ != nullptr; }
  friend bool operator==(const channel& a, const channel& b) noexcept { return a.s_ == b.s_; }

  /// Range-for: receives until the channel is closed and drained.
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(channel* c) : c_(c) { ++*this; }
    T& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = c_->receive();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !cur_.has_value(); }

   private:
    channel* c_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  friend struct select_access<T>;
  template <class U, class F>
  friend class receive_case;
  template <class U, class F>
  friend class send_case;
  using item = detail::chan_item<T>;
  struct state : detail::chan_base {
    detail::chan_ring<item> buffer;
  };
  explicit channel(std::nullptr_t) {}

  // With the lock held: wakes every parked receiver with "closed" (the
  // caller completes them after unlocking, in `woken`'s order).
  void wake_receivers_closed(detail::chan_wake_list& woken) {
    while (detail::chan_node* n = s_->receivers.claim_first()) {
      n->result = channel_status::closed;
      woken.push(n);
    }
  }

  // Hands `it` over, buffers it, or parks. Lock order: only this channel.
  channel_status put(item it, const std::chrono::steady_clock::time_point* deadline, bool nowait) {
    state& s = *s_;
    s.lock.lock();
    if (s.closing) {
      s.lock.unlock();
      return channel_status::closed;
    }
    // A parked receiver: hand the value over (see take() for the protocol).
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
      s.lock.unlock();
      if (claimed) {
        detail::complete(*claimed, /*next=*/pref < 0);
      } else {
        detail::finish_hand_off(ticket, /*next=*/pref < 0);
      }
      if (pref < 0) detail::yield_keeping_interrupts();
      return channel_status::ok;
    }
    if (s.buffer.size() < s.capacity) {
      s.buffer.push_back(std::move(it));
      s.lock.unlock();
      return channel_status::ok;
    }
    if (nowait) {
      s.lock.unlock();
      return channel_status::would_block;
    }
    detail::wait_point wp;
    try {
      detail::prepare_wait(wp, "channel send", &s);
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

  std::pair<std::optional<T>, channel_status> deliver(item&& it) {
    if (it.error) std::rethrow_exception(it.error);
    return {std::move(it.value), channel_status::ok};
  }

  std::pair<std::optional<T>, channel_status> take(
      const std::chrono::steady_clock::time_point* deadline, bool nowait) {
    state& s = *s_;
    s.lock.lock();
    if (!s.buffer.empty()) {
      item it = std::move(s.buffer.front());
      s.buffer.pop_front();
      // A parked sender's offer moves into the freed slot (FIFO preserved).
      detail::chan_node* snd = s.senders.claim_first();
      if (snd) {
        s.buffer.push_back(std::move(*static_cast<item*>(snd->item)));
        snd->result = channel_status::ok;
      }
      detail::chan_wake_list woken;
      if (s.closing && s.buffer.empty() && s.senders.size == 0) wake_receivers_closed(woken);
      s.lock.unlock();
      if (snd) detail::complete(*snd->wp);
      woken.complete_all();
      return deliver(std::move(it));
    }
    // A parked sender: take its offer. A plain sender is claimed and
    // released in one step (hand_off), after its offer moved out, which is
    // moved back if the sender already left (timeout, kill: it cannot
    // return before it retakes our lock); a select's node is claimed first.
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
      if (s.closing && s.senders.size == 0) wake_receivers_closed(woken);
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
    if (s.closing) {
      s.lock.unlock();
      return {std::nullopt, channel_status::closed};
    }
    if (nowait) {
      s.lock.unlock();
      return {std::nullopt, channel_status::would_block};
    }
    detail::wait_point wp;
    try {
      detail::prepare_wait(wp, "channel receive", &s);
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
