#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <taiga/channels/channel.hpp>
#include <tuple>
#include <utility>

namespace taiga {

/// select's result when its timeout passed first.
inline constexpr std::size_t select_timeout = std::numeric_limits<std::size_t>::max();

namespace detail {

/// The interface select drives. Calls marked "locked" run with the case's
/// channel locked (all channels of a select are locked together, in address
/// order); the others with no channel locked.
struct select_case {
  virtual ~select_case() = default;
  virtual chan_base* base() noexcept = 0;  // nullptr: disabled (nil channel, false guard)
  virtual bool is_default() const noexcept { return false; }
  virtual void load() {}       // before locking: take the value
  virtual void unload() {}     // not chosen: give it back
  virtual bool try_now() = 0;  // locked: done at once?
  // Locked: join / leave the channel's wait list (cases without one: no-ops).
  virtual void park(wait_point&, std::uint32_t) {}
  virtual void unpark() noexcept {}
  // Completes a partner woken by try_now; true: yield to it before the
  // handler runs (the channel's preference, as for plain operations).
  virtual bool after_unlock() noexcept { return false; }
  virtual void finish() = 0;                   // the chosen case's handler
  virtual void finish_woken() = 0;             // the same, chosen by a waker
  virtual op_site where() const noexcept = 0;  // the user's call site (deadlock report)
  // A timer case (after()): its deadline; it is ready once that has passed.
  virtual const std::chrono::steady_clock::time_point* deadline() const noexcept { return nullptr; }
};

std::uint64_t select_random() noexcept;

template <bool Never = false>
inline constexpr bool named_case_when = Never;

/// What a receive case and a send case share (CRTP: `Case` is the case
/// class): the channel, the guard, the node a parked case links into one of
/// the channel's lists (`Sends`: the senders list, else the receivers), the
/// partner that try_now claimed, and the outcome.
template <class T, class Case, bool Sends>
class channel_case : public select_case {
 public:
  /// Disables the case unless `guard` holds (occam's guards, Go's nil channel).
  Case&& when(bool guard) && {
    enabled_ = guard;
    return std::move(static_cast<Case&>(*this));
  }
  template <bool Never = false>
  void when(bool) & {
    static_assert(named_case_when<Never>,
                  "taiga: .when(guard) applies to a case as it is built: "
                  "select(on_receive(ch, fn).when(guard), ...); for a case in a variable "
                  "write std::move(c).when(guard)");
  }
  chan_base* base() noexcept override { return enabled_ && ch_ ? chan() : nullptr; }
  void park(wait_point& wp, std::uint32_t index) override {
    node_.wp = &wp;
    node_.item = static_cast<Case*>(this)->slot();
    node_.case_index = index;
    node_.in_select = true;
    list().push(&node_);
  }
  void unpark() noexcept override { list().remove(&node_); }
  bool after_unlock() noexcept override {
    if (!partner_) return false;
    complete(*partner_->wp, next_);
    return yield_;
  }
  void finish() override { static_cast<Case*>(this)->run(); }
  void finish_woken() override {
    status_ = node_.result;
    static_cast<Case*>(this)->run();
  }
  op_site where() const noexcept override { return at_; }

 protected:
  using item = chan_item<T>;
  channel_case(channel<T> ch, op_site at) : ch_(std::move(ch)), at_(at) {}
  auto* state() { return select_access<T>::state(ch_); }
  chan_base* chan() { return state(); }
  chan_list& list() { return Sends ? chan()->senders : chan()->receivers; }

  channel<T> ch_;
  op_site at_;
  bool enabled_ = true;
  bool next_ = false;   // the partner try_now woke goes into the next slot
  bool yield_ = false;  // and the select yields to it first (a rendezvous)
  chan_node node_;
  chan_node* partner_ = nullptr;
  channel_status status_ = channel_status::ok;
};

}  // namespace detail

template <class T, class F>
class receive_case final : public detail::channel_case<T, receive_case<T, F>, false> {
  using base_t = detail::channel_case<T, receive_case<T, F>, false>;
  friend base_t;
  using base_t::next_;
  using base_t::partner_;
  using base_t::status_;
  using base_t::yield_;
  static_assert(std::is_invocable_v<F&, std::optional<T>> || std::is_invocable_v<F&>,
                "taiga: on_receive(ch, fn): fn must take a std::optional<T> of the channel's T "
                "(std::nullopt: the channel is closed), or nothing");

 public:
  receive_case(channel<T> ch, F fn, detail::op_site at)
      : base_t(std::move(ch), at), fn_(std::move(fn)) {}
  bool try_now() override {
    auto& s = *this->state();
    if (!s.buffer.empty()) {
      got_ = std::move(s.buffer.front());
      s.buffer.pop_front();
      if ((partner_ = s.senders.claim_first())) {
        s.buffer.push_back(std::move(*static_cast<item*>(partner_->item)));
        partner_->result = channel_status::ok;
      }
      status_ = channel_status::ok;
      return true;
    }
    if ((partner_ = s.senders.claim_first())) {
      got_ = std::move(*static_cast<item*>(partner_->item));
      partner_->result = channel_status::ok;
      status_ = channel_status::ok;
      yield_ = next_ = s.preference > 0;  // +1: the sender runs first, as in receive()
      return true;
    }
    if (s.closing) {
      status_ = channel_status::closed;
      return true;
    }
    return false;
  }

 private:
  using item = detail::chan_item<T>;
  item* slot() { return &got_; }
  void run() {
    if (status_ == channel_status::ok && got_.error) std::rethrow_exception(got_.error);
    if constexpr (std::is_invocable_v<F&, std::optional<T>>) {
      if (status_ == channel_status::ok) {
        fn_(got_.open());
      } else {
        fn_(std::optional<T>());
      }
    } else {
      fn_();
    }
  }
  F fn_;
  item got_;
};

/// A send case. `Refers`: made from an rvalue T, it refers to the caller's
/// object and moves the value out only while the select runs, giving it
/// back unless this case is the one chosen; otherwise it owns a copy.
template <class T, class F, bool Refers>
class send_case final : public detail::channel_case<T, send_case<T, F, Refers>, true> {
  using base_t = detail::channel_case<T, send_case<T, F, Refers>, true>;
  friend base_t;
  using base_t::next_;
  using base_t::partner_;
  using base_t::status_;
  using base_t::yield_;
  static_assert(std::is_invocable_v<F&, channel_status> || std::is_invocable_v<F&>,
                "taiga: on_send(ch, v, fn): fn must take a taiga::channel_status (ok or closed), "
                "or nothing");

 public:
  using source = std::conditional_t<Refers, T*, T>;
  send_case(channel<T> ch, source v, F fn, detail::op_site at)
      : base_t(std::move(ch), at), v_(std::move(v)), fn_(std::move(fn)) {}
  static constexpr bool refers = Refers;
  void load() override { offer_ = item::of(std::move(value())); }
  void unload() override { offer_.give_back(value()); }
  bool try_now() override {
    auto& s = *this->state();
    if (s.closing) {
      status_ = channel_status::closed;
      return true;
    }
    if ((partner_ = s.receivers.claim_first())) {
      *static_cast<item*>(partner_->item) = std::move(offer_);
      offer_.value.reset();
      partner_->result = channel_status::ok;
      status_ = channel_status::ok;
      // -1: the receiver runs first, as in send() (a rendezvous only).
      next_ = s.preference < 0;
      yield_ = next_ && s.capacity == 0;
      return true;
    }
    if (s.buffer.size() < s.capacity) {
      s.buffer.push_back(std::move(offer_));
      offer_.value.reset();
      status_ = channel_status::ok;
      return true;
    }
    return false;
  }

 private:
  using item = detail::chan_item<T>;
  T& value() {
    if constexpr (Refers) {
      return *v_;
    } else {
      return v_;
    }
  }
  item* slot() { return &offer_; }
  void run() {
    // Closed: the value was not sent; it goes back before the handler runs.
    if (status_ != channel_status::ok) unload();
    if constexpr (std::is_invocable_v<F&, channel_status>) {
      fn_(status_);
    } else {
      fn_();
    }
  }
  source v_;
  item offer_;
  F fn_;
};

template <class F>
class default_case final : public detail::select_case {
 public:
  default_case(F fn, detail::op_site at) : fn_(std::move(fn)), at_(at) {}
  detail::chan_base* base() noexcept override { return nullptr; }
  bool is_default() const noexcept override { return true; }
  bool try_now() override { return false; }
  void finish() override { fn_(); }
  void finish_woken() override { fn_(); }
  detail::op_site where() const noexcept override { return at_; }

 private:
  F fn_;
  detail::op_site at_;
};

/// A timer case: ready once its deadline has passed (after()).
template <class F>
class after_case final : public detail::select_case {
  static_assert(std::is_invocable_v<F&, std::chrono::steady_clock::time_point> ||
                    std::is_invocable_v<F&>,
                "taiga: after(d, fn): fn must take a std::chrono::steady_clock::time_point (when "
                "it fired), or nothing");

 public:
  after_case(std::chrono::steady_clock::time_point when, F fn, detail::op_site at)
      : when_(when), fn_(std::move(fn)), at_(at) {}
  detail::chan_base* base() noexcept override { return nullptr; }
  bool try_now() override { return std::chrono::steady_clock::now() >= when_; }
  void finish() override { run(); }
  void finish_woken() override { run(); }
  detail::op_site where() const noexcept override { return at_; }
  const std::chrono::steady_clock::time_point* deadline() const noexcept override { return &when_; }

 private:
  void run() {
    if constexpr (std::is_invocable_v<F&, std::chrono::steady_clock::time_point>) {
      fn_(std::chrono::steady_clock::now());
    } else {
      fn_();
    }
  }
  std::chrono::steady_clock::time_point when_;
  F fn_;
  detail::op_site at_;
};

template <class T>
struct select_access {
  static typename channel<T>::state* state(channel<T>& c) { return c.s_.get(); }
};

struct nothing {
  template <class... A>
  void operator()(A&&...) const noexcept {}
};

/// A receive case: `fn(std::optional<T>)` (nullopt: closed) or `fn()`.
template <class T, class F = nothing>
receive_case<T, F> on_receive(const channel<T>& ch, F fn = {},
                              detail::op_site at = detail::op_site::current()) {
  return receive_case<T, F>(ch, std::move(fn), at);
}
/// A send case: `fn(channel_status)` (ok or closed) or `fn()`.
///
/// Given an rvalue of T (`on_send(ch, std::move(p))`), the case refers to
/// that object: the value leaves it only if this case is chosen and sends;
/// when another case wins, the select times out or throws, or the channel
/// is closed, the object still holds its value (a move-only resource is not
/// lost). Build such a case inside the select call, as the examples do: a
/// case kept in a variable must not outlive the object it refers to.
/// Given anything else (an lvalue, a value of another type), the case owns
/// a T made from it.
template <class T, class U, class F = nothing>
auto on_send(const channel<T>& ch, U&& v, F fn = {},
             detail::op_site at = detail::op_site::current()) {
  if constexpr (std::is_same_v<std::remove_cvref_t<U>, T> && !std::is_lvalue_reference_v<U> &&
                !std::is_const_v<std::remove_reference_t<U>>) {
    return send_case<T, F, true>(ch, &v, std::move(fn), at);
  } else {
    return send_case<T, F, false>(ch, T(std::forward<U>(v)), std::move(fn), at);
  }
}
/// Taken when no other case is ready at once: the select never parks.
template <class F = nothing>
default_case<F> on_default(F fn = {}, detail::op_site at = detail::op_site::current()) {
  return default_case<F>(std::move(fn), at);
}

/// A timer case (Go's `case <-time.After(d)`): chosen when `d` has passed
/// and no other case completed first; `fn()` or `fn(time_point)`. Costs no
/// timer and no channel: the select folds it into its own deadline. A
/// select may hold several; the earliest wins.
template <class Rep, class Period, class F = nothing>
after_case<F> after(std::chrono::duration<Rep, Period> d, F fn = {},
                    detail::op_site at = detail::op_site::current()) {
  return after_case<F>(detail::deadline_after(d), std::move(fn), at);
}
/// A timer case for a time point of any clock.
template <class Clock, class Duration, class F = nothing>
after_case<F> at_time(std::chrono::time_point<Clock, Duration> t, F fn = {},
                      detail::op_site at = detail::op_site::current()) {
  return after_case<F>(detail::to_steady(t), std::move(fn), at);
}

namespace detail {
std::size_t run_select(select_case** cases, std::size_t n,
                       const std::chrono::steady_clock::time_point* deadline);

template <class C>
inline constexpr bool refers_case = false;
template <class T, class F>
inline constexpr bool refers_case<send_case<T, F, true>> = true;
template <class... Cases>
inline constexpr bool cases_ok = (!(refers_case<std::remove_cvref_t<Cases>> &&
                                    std::is_lvalue_reference_v<Cases>)&&...);
}  // namespace detail

/// Waits on any mix of send and receive cases over channels of any types
/// and runs the handler of the one that completes; returns its index. Among
/// cases ready at once, one is chosen at random (fairness). With an
/// on_default case the select never parks. Channels are locked in address
/// order, so selects over overlapping channels cannot deadlock. A select
/// whose cases are all disabled (nil channels, false guards) and that has no
/// default parks until its timeout, a kill or a throw_into, like Go's
/// `select {}` (the deadlock report says "select with no enabled case").
/// An interruption point, whether or not it parks.
/// @suspends yes (unless it has a default case) @threadsafe
template <class... Cases>
std::size_t select(Cases&&... cs) {
  static_assert(detail::cases_ok<Cases...>,
                "taiga::select: a send case made from an rvalue refers to that object; pass it "
                "as an rvalue (build it inside the select call, or std::move the case)");
  detail::select_case* arr[] = {&cs...};
  return detail::run_select(arr, sizeof...(Cases), nullptr);
}
/// select with a deadline (any clock): returns select_timeout if nothing
/// completed in time.
template <class Clock, class Duration, class... Cases>
std::size_t select_until(std::chrono::time_point<Clock, Duration> t, Cases&&... cs) {
  static_assert(detail::cases_ok<Cases...>,
                "taiga::select_until: a send case made from an rvalue refers to that object; "
                "pass it as an rvalue (build it inside the select call, or std::move the case)");
  detail::select_case* arr[] = {&cs...};
  auto deadline = detail::to_steady(t);
  return detail::run_select(arr, sizeof...(Cases), &deadline);
}
template <class Rep, class Period, class... Cases>
std::size_t select_for(std::chrono::duration<Rep, Period> d, Cases&&... cs) {
  return select_until(detail::deadline_after(d), std::forward<Cases>(cs)...);
}

}  // namespace taiga
