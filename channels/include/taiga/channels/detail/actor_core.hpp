// Installed because actor.hpp's templates use it; users must not name
// anything in taiga::detail. The actor's record (actor_base: life cycle,
// links, monitors, system messages, pending asks) and its typed mailbox
// (mailbox<Msg>), both under one spinlock; the non-template half is in
// channels/src/actor.cpp.
//
// Design note. An actor is a detached tasklet running its behaviour, plus a
// record shared by every actor_ref to it. The record outlives the tasklet:
// a ref to an ended actor still answers "dead" at once, and says why. All
// state lives under the record's lock_, a spinlock never held across a park
// (docs/hacking.md); a sender, the receiver and the ending actor meet only
// there. Waiters (the actor in receive, senders parked on a full mailbox,
// joiners, askers) park through the runtime's parking API and are woken
// with claim + complete, completed after the lock is released (wake_batch).
//
// Invariants (A-prefixed; under lock_ unless said otherwise):
//  A1  once ended_ is set it is never cleared, and no message is queued
//      after it: every push checks ended_ under the lock. finish() sets it
//      and then empties the mailbox, so a message is either received by the
//      actor, or dropped with the mailbox at its end, never both.
//  A2  count_ <= capacity_. A parked sender exists only while the mailbox
//      is full (count_ == capacity_) or its wake is on the way; a receive
//      that frees a place moves the first claimable parked sender's message
//      in, so parked senders are served first come, first served and
//      messages from one sender keep their order.
//  A3  receiver_ is null or the actor's own wait_point while it is parked
//      in a receive; only the actor receives.
//  A4  finish() runs once (the first caller wins under the lock): it wakes
//      every parked sender with send_status::dead and every joiner, fails
//      every registered ask with the exit reason, and delivers one down per
//      monitor and one exit signal per link, outside the lock.
//  A5  an ask_state changes from pending exactly once (replied, failed or
//      abandoned), under its own lock; the target's lock may be held around
//      it (finish), never the other way round.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <taiga/channels/actor_types.hpp>
#include <taiga/channels/detail/deadline.hpp>
#include <taiga/channels/detail/op_site.hpp>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <variant>
#include <vector>

namespace taiga::detail::actor_impl {

using steady_time = sync_clock::time_point;

/// A system message as queued: down or exit_msg.
using system_message = std::variant<down, exit_msg>;

/// The demangled name of a type (for errors and exit reasons).
std::string demangle(const char* mangled);

/// Why the exception being handled ended an actor (call inside a catch).
exit_reason current_exception_reason();

class actor_base;

/// The untyped half of one ask's reply slot. Linked into the target's list
/// of pending asks while the asker waits, so that the target's end fails it
/// at once (Erlang's gen_server:call monitors its server for the same
/// reason).
class ask_node {
 public:
  enum class state : std::uint8_t { pending, replied, failed, abandoned };

  explicit ask_node(std::shared_ptr<actor_base> target) : target_(std::move(target)) {}
  ask_node(const ask_node&) = delete;
  ask_node& operator=(const ask_node&) = delete;
  virtual ~ask_node() = default;

  /// The target ended (called by actor_base::finish under the target's lock).
  void fail(ask_error e, std::string text, wake_batch& wb) noexcept {
    std::lock_guard g(lock_);
    if (st_ != state::pending) return;
    st_ = state::failed;
    error_ = e;
    text_ = std::move(text);
    wake_locked(wb);
  }
  /// The request was destroyed unanswered. During stack unwinding the actor
  /// is probably ending: its end (or the deadline) answers instead, with
  /// the real reason.
  void broken() noexcept {
    if (std::uncaught_exceptions() > 0) return;
    wake_batch wb;
    std::lock_guard g(lock_);
    if (st_ != state::pending) return;
    st_ = state::failed;
    error_ = ask_error::no_reply;
    text_ = "taiga: the actor dropped the request without replying";
    wake_locked(wb);
  }

 protected:
  void wake_locked(wake_batch& wb) noexcept {
    if (waiter_ != nullptr && claim(*waiter_)) wb.add(*waiter_);
    waiter_ = nullptr;
  }
  void count_late() noexcept;  // actor.cpp: the target's late_replies

  friend class actor_base;
  template <class R>
  friend class ask_state;
  ask_node* next_ = nullptr;  // the target's pending asks (under the target's lock)
  ask_node* prev_ = nullptr;
  bool linked_ = false;
  mutable spinlock lock_;  // guards what follows (A5)
  state st_ = state::pending;
  ask_error error_ = ask_error::timeout;
  std::string text_;
  wait_point* waiter_ = nullptr;  // the asker, while parked
  std::shared_ptr<actor_base> target_;
};

/// The record of one actor: everything but the typed mailbox.
class actor_base : public std::enable_shared_from_this<actor_base> {
 public:
  actor_base(const actor_options& o, std::type_index msg_type, const char* msg_type_name);
  actor_base(const actor_base&) = delete;
  actor_base& operator=(const actor_base&) = delete;
  virtual ~actor_base();

  std::uint64_t id() const noexcept { return id_; }
  const std::string& name() const noexcept { return name_; }
  std::chrono::nanoseconds ask_timeout() const noexcept { return ask_timeout_; }
  std::type_index msg_type() const noexcept { return msg_type_; }
  std::string msg_type_name() const { return demangle(msg_type_name_); }

  // ---- life cycle (actor.cpp) ---------------------------------------------

  /// On the actor's tasklet, first thing: records the tasklet (for kill).
  /// False if a kill came before it started: the behaviour must not run.
  bool start() noexcept;
  /// Ends the actor with `r` (A4). Only the first call counts.
  void finish(exit_reason r) noexcept;
  /// The reason for a tasklet_exit that reached the behaviour: killed (by
  /// whom) when kill() asked for it, else shutdown.
  exit_reason kill_reason() const;
  /// Asks the actor to end with `kind` (killed, or shutdown from a
  /// supervisor; `why` in the text): a tasklet_exit at its next park point.
  bool kill(exit_kind kind = exit_kind::killed, std::string why = {});
  /// Parks (blocks a plain thread) until finish() ran; returns the reason.
  exit_reason join(call_site site = call_site()) { return *join_until(nullptr, site); }
  /// join with a deadline: std::nullopt if the actor is still alive at `dl`.
  std::optional<exit_reason> join_until(const steady_time* dl, call_site site = call_site());
  /// An exit signal from `from` (a link's, or a supervisor's shutdown):
  /// an exit_msg if this actor traps exits, else for an abnormal `r` a kill
  /// with r's kind.
  void signal_exit(const any_actor_ref& from, const exit_reason& r);
  bool ended() const noexcept {
    std::lock_guard g(lock_);
    return ended_;
  }
  /// The exit reason once ended.
  std::optional<exit_reason> reason() const;

  // ---- links, monitors, system messages (actor.cpp) -----------------------

  /// Queues a system message; wakes the actor if it waits in a visitor
  /// receive. False (dropped) if this actor has ended.
  bool push_system(system_message m);
  /// `watcher` gets one down when this actor ends (at once if it has).
  void add_monitor(const std::shared_ptr<actor_base>& watcher);
  /// Links this actor and `other` both ways. If either has ended already,
  /// the other gets its exit signal at once.
  void link(const std::shared_ptr<actor_base>& other);
  void unlink(const std::shared_ptr<actor_base>& other);
  void set_trap_exit(bool on) noexcept { trap_exit_.store(on, std::memory_order_relaxed); }
  bool trap_exit() const noexcept { return trap_exit_.load(std::memory_order_relaxed); }

  // ---- asks (actor.cpp) ---------------------------------------------------

  /// Links `n` into the pending asks; false if the actor has ended (then
  /// `n` is failed with the reason).
  bool register_ask(ask_node& n);
  void unregister_ask(ask_node& n) noexcept;
  /// The ask error and text for an actor that has ended.
  static std::pair<ask_error, std::string> error_for(const exit_reason& r);

  mailbox_stats stats() const;
  std::size_t size() const {
    std::lock_guard g(lock_);
    return count_;
  }

  // Registry bookkeeping (actor.cpp): set while a name points here.
  std::atomic<bool> registered{false};

 protected:
  /// True on the actor's own tasklet (a send to itself must never park).
  bool is_self() const noexcept {
    std::lock_guard g(lock_);
    return core_ != nullptr && core_ == current_tasklet();
  }
  /// Destroys the queued user messages (outside the lock; A1).
  virtual void drop_messages() noexcept = 0;
  /// The actor parked in a receive, claimed (A3); null if none.
  wait_point* take_receiver_locked() noexcept {
    wait_point* w = std::exchange(receiver_, nullptr);
    return w != nullptr && claim(*w) ? w : nullptr;
  }
  /// Wakes the actor parked in a receive (A3).
  void wake_receiver_locked(wake_batch& wb, bool system) noexcept {
    if (receiver_ != nullptr && (!system || receiver_wants_system_)) {
      if (claim(*receiver_)) wb.add(*receiver_);
      receiver_ = nullptr;
    }
  }
  struct sys_node {
    explicit sys_node(system_message&& m) : msg(std::move(m)) {}
    sys_node* next = nullptr;
    system_message msg;
  };
  /// A parked sender's slot (wait_point::slot): its message (a Msg*) and
  /// how its send ended.
  struct put_slot {
    void* value;
    send_status result;
  };

  // Under lock_ (A1-A4), except the constants.
  mutable spinlock lock_;
  bool ended_ = false;
  bool kill_requested_ = false;
  bool receiver_wants_system_ = false;
  std::size_t count_ = 0;  // user messages queued (mailbox<Msg> keeps them)
  std::size_t high_water_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t rejected_ = 0;
  std::atomic<std::uint64_t> late_{0};  // ask_node::count_late, no lock
  const std::size_t capacity_;
  const overflow_policy overflow_;
  wait_point* receiver_ = nullptr;  // A3
  wait_list senders_;               // parked senders; slot = put_slot* (A2)
  wait_list joiners_;
  sys_node* sys_head_ = nullptr;  // system messages, FIFO
  sys_node* sys_tail_ = nullptr;

 private:
  friend class ask_node;
  const std::uint64_t id_;
  const std::string name_;
  const std::chrono::nanoseconds ask_timeout_;
  const std::type_index msg_type_;
  const char* const msg_type_name_;
  std::atomic<bool> trap_exit_;
  tasklet_core* core_ = nullptr;  // the running tasklet, from start() to finish()
  std::string kill_why_;
  exit_kind kill_kind_ = exit_kind::killed;
  std::optional<exit_reason> reason_;
  std::vector<std::shared_ptr<actor_base>> links_;
  std::vector<std::shared_ptr<actor_base>> monitors_;  // watchers, one entry per monitor()
  ask_node* asks_ = nullptr;                           // pending asks (A5)
};

/// One ask's reply slot, typed.
template <class R>
class ask_state final : public ask_node {
 public:
  using ask_node::ask_node;

  /// The actor's reply.
  void deliver(R&& v) {
    wake_batch wb;
    std::lock_guard g(lock_);
    if (st_ != state::pending) {
      count_late();  // the asker gave up (or the target's end answered): dropped
      return;
    }
    value_.emplace(std::move(v));  // may throw: nothing changed
    st_ = state::replied;
    wake_locked(wb);
  }

  /// The asker: waits until answered or `dl`; afterwards the slot is never
  /// pending (a reply that comes later is dropped and counted).
  void await(const steady_time& dl, op_site at) {
    {
      std::lock_guard g(lock_);
      if (st_ != state::pending) return;
    }
    wait_point w;
    prepare_wait(w, "actor ask", target_.get(), call_site(at));  // a kill point
    {
      std::lock_guard g(lock_);
      if (st_ != state::pending) {
        cancel_wait(w);
        return;
      }
      waiter_ = &w;
    }
    const wake_status s = wait(w, &dl);
    if (s != wake_status::signaled) abandon();
    if (s == wake_status::interrupted) throw_interrupt();
  }
  /// Gives up unless answered (timeout, kill, or an exception on the way).
  void abandon() noexcept {
    std::lock_guard g(lock_);
    waiter_ = nullptr;
    if (st_ == state::pending) st_ = state::abandoned;
  }

  state outcome() const noexcept {
    std::lock_guard g(lock_);
    return st_;
  }
  std::optional<R>& value() noexcept { return value_; }
  ask_error error() const noexcept { return error_; }
  std::string& text() noexcept { return text_; }

 private:
  std::optional<R> value_;
};

/// An actor's record with its mailbox of user messages: a ring that grows
/// by doubling up to the capacity (an idle actor holds no buffer).
template <class Msg>
class mailbox final : public actor_base {
  static_assert(std::is_nothrow_move_constructible_v<Msg>,
                "taiga: an actor's message type must be nothrow move constructible (the mailbox "
                "moves messages under its lock)");

 public:
  explicit mailbox(const actor_options& o) : actor_base(o, typeid(Msg), typeid(Msg).name()) {}
  ~mailbox() override { clear(buf_, cap_, head_, count_); }

  /// Queues `m` (moved from only when queued) by the overflow policy.
  /// `dl` bounds a park (null: no bound).
  send_status push(Msg& m, const steady_time* dl, op_site at) {
    interruption_point();        // before anything moves
    std::optional<Msg> evicted;  // destroyed after the unlock (drop_oldest)
    {
      wait_point* woken = nullptr;
      bool queued = false;
      {
        std::lock_guard g(lock_);
        if (ended_) return send_status::dead;  // A1
        if (count_ < capacity_) {
          push_locked(m);
          queued = true;
          woken = take_receiver_locked();
        }
      }
      if (queued) {
        // The receiver runs next on this worker (a hand-off, as a channel's):
        // the message is hot in this core's cache, and a request/reply pair
        // stays on one worker instead of waking another.
        if (woken != nullptr) complete(*woken, true);
        return send_status::ok;
      }
    }
    {
      wake_batch wb;
      std::lock_guard g(lock_);
      if (ended_) return send_status::dead;  // A1
      if (count_ < capacity_) {
        push_locked(m);
        wake_receiver_locked(wb, false);
        return send_status::ok;
      }
      switch (overflow_) {
        case overflow_policy::fail:
          ++rejected_;
          return send_status::full;
        case overflow_policy::drop_newest:
          ++dropped_;
          return send_status::dropped;
        case overflow_policy::drop_oldest:
          evicted.emplace(pop_locked());
          ++dropped_;
          push_locked(m);
          wake_receiver_locked(wb, false);
          return send_status::ok;
        case overflow_policy::park:
          break;
      }
    }
    if (dl != nullptr && *dl <= sync_clock::now()) return send_status::timeout;
    if (is_self()) {
      // The actor itself would wait for room only it can make: refuse.
      std::lock_guard g(lock_);
      ++rejected_;
      return send_status::full;
    }
    put_slot slot{&m, send_status::ok};
    wait_point w;
    w.slot = &slot;
    prepare_wait(w, "actor send", this, call_site(at));  // a kill point
    {
      wake_batch wb;
      std::lock_guard g(lock_);
      if (ended_ || count_ < capacity_) {
        cancel_wait(w);
        if (ended_) return send_status::dead;
        push_locked(m);
        wake_receiver_locked(wb, false);
        return send_status::ok;
      }
      senders_.push_back(w);
    }
    const wake_status s = wait(w, dl);
    if (s == wake_status::signaled) return slot.result;  // moved in (A2), or dead (A4)
    {
      std::lock_guard g(lock_);
      senders_.remove_if_linked(w);
    }
    if (s == wake_status::interrupted) throw_interrupt();
    return send_status::timeout;
  }

  /// The actor's receive: the next user message into `user`, or, when
  /// `sys` is given, the first queued system message that `accepts`
  /// (system messages first). False when `dl` passed.
  template <class Accepts>
  bool receive(std::optional<Msg>& user, std::optional<system_message>* sys, Accepts accepts,
               const steady_time* dl, op_site at) {
    interruption_point();  // before anything moves
    for (;;) {
      std::unique_ptr<sys_node> got_sys;
      {
        wake_batch wb;
        std::lock_guard g(lock_);
        if (sys != nullptr) got_sys.reset(take_system_locked(accepts));  // system first
        if (!got_sys && count_ > 0) {
          user.emplace(pop_locked());
          refill_locked(wb);
          return true;
        }
      }
      if (sys != nullptr && got_sys) {
        sys->emplace(std::move(got_sys->msg));  // moved out after the unlock
        return true;
      }
      if (dl != nullptr && *dl <= sync_clock::now()) return false;
      wait_point w;
      prepare_wait(w, "actor receive", this, call_site(at));  // a kill point
      {
        std::lock_guard g(lock_);
        if (count_ > 0 || (sys != nullptr && has_system_locked(accepts))) {
          cancel_wait(w);
          continue;
        }
        receiver_ = &w;  // A3
        receiver_wants_system_ = sys != nullptr;
      }
      const wake_status s = wait(w, dl);
      if (s != wake_status::signaled) {
        std::lock_guard g(lock_);
        if (receiver_ == &w) receiver_ = nullptr;
      }
      if (s == wake_status::interrupted) throw_interrupt();
      // Signaled or timed out: look again (a timeout returns at the top
      // only if nothing came meanwhile).
    }
  }

 private:
  template <class Accepts>
  sys_node* take_system_locked(Accepts& accepts) noexcept {
    sys_node* prev = nullptr;
    for (sys_node* n = sys_head_; n != nullptr; prev = n, n = n->next) {
      if (!accepts(n->msg)) continue;
      (prev != nullptr ? prev->next : sys_head_) = n->next;
      if (sys_tail_ == n) sys_tail_ = prev;
      return n;
    }
    return nullptr;
  }
  template <class Accepts>
  bool has_system_locked(Accepts& accepts) const noexcept {
    for (sys_node* n = sys_head_; n != nullptr; n = n->next)
      if (accepts(n->msg)) return true;
    return false;
  }

  // @pre count_ < capacity_. Grows the ring if it is full (an allocation
  // under the spinlock: short, and a bad_alloc changes nothing).
  void push_locked(Msg& m) {
    if (count_ == cap_) grow();
    ::new (static_cast<void*>(buf_ + (head_ + count_) % cap_)) Msg(std::move(m));
    ++count_;
    if (count_ > high_water_) high_water_ = count_;
  }
  Msg pop_locked() noexcept {
    Msg* p = buf_ + head_;
    Msg out(std::move(*p));
    p->~Msg();
    head_ = (head_ + 1) % cap_;
    --count_;
    return out;
  }
  // A place was freed: the first parked sender that can be claimed moves its
  // message in (A2). No growth: the ring had a free slot just now.
  void refill_locked(wake_batch& wb) noexcept {
    while (wait_point* w = senders_.pop_front()) {
      if (!claim(*w)) continue;  // it timed out or was killed
      auto& s = *static_cast<put_slot*>(w->slot);
      push_locked(*static_cast<Msg*>(s.value));
      s.result = send_status::ok;
      wb.add(*w);
      return;
    }
  }
  void grow() {
    std::size_t n = cap_ == 0 ? 4 : cap_ * 2;
    if (n > capacity_) n = capacity_;
    Msg* nb = std::allocator<Msg>().allocate(n);
    for (std::size_t i = 0; i < count_; ++i) {
      Msg* p = buf_ + (head_ + i) % cap_;
      ::new (static_cast<void*>(nb + i)) Msg(std::move(*p));
      p->~Msg();
    }
    if (buf_ != nullptr) std::allocator<Msg>().deallocate(buf_, cap_);
    buf_ = nb;
    cap_ = n;
    head_ = 0;
  }
  static void clear(Msg* buf, std::size_t cap, std::size_t head, std::size_t count) noexcept {
    for (std::size_t i = 0; i < count; ++i) (buf + (head + i) % cap)->~Msg();
    if (buf != nullptr) std::allocator<Msg>().deallocate(buf, cap);
  }
  void drop_messages() noexcept override {
    Msg* buf;
    std::size_t cap, head, count;
    {
      std::lock_guard g(lock_);
      buf = std::exchange(buf_, nullptr);
      cap = std::exchange(cap_, 0);
      head = std::exchange(head_, 0);
      count = std::exchange(count_, 0);
    }
    clear(buf, cap, head, count);  // requests in it answer their asks (already failed: A4)
  }

  Msg* buf_ = nullptr;  // ring of cap_ slots; count_ (actor_base) of them from head_
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
};

}  // namespace taiga::detail::actor_impl
