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
/// order).
struct select_case {
  virtual ~select_case() = default;
  virtual chan_base* base() noexcept = 0;  // nullptr: disabled (nil channel, false guard)
  virtual bool is_default() const noexcept { return false; }
  virtual bool try_now() = 0;                                  // locked: done at once?
  virtual void park(wait_point& wp, std::uint32_t index) = 0;  // locked
  virtual void unpark() noexcept = 0;                          // locked: leave the wait list
  virtual void after_unlock() noexcept {}  // complete a partner woken by try_now
  virtual void finish() = 0;               // unlocked: the chosen case's handler
  virtual void finish_woken() = 0;         // unlocked: chosen by a waker
};

std::uint64_t select_random() noexcept;

}  // namespace detail

namespace detail {

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
  chan_base* base() noexcept override { return enabled_ && ch_ ? chan() : nullptr; }
  void park(wait_point& wp, std::uint32_t index) override {
    node_.wp = &wp;
    node_.item = static_cast<Case*>(this)->slot();
    node_.case_index = index;
    node_.in_select = true;
    list().push(&node_);
  }
  void unpark() noexcept override { list().remove(&node_); }
  void after_unlock() noexcept override {
    if (partner_) complete(*partner_->wp);
  }
  void finish() override { static_cast<Case*>(this)->run(); }
  void finish_woken() override {
    status_ = node_.result;
    static_cast<Case*>(this)->run();
  }

 protected:
  using item = chan_item<T>;
  explicit channel_case(channel<T> ch) : ch_(std::move(ch)) {}
  auto* state() { return select_access<T>::state(ch_); }
  chan_base* chan() { return state(); }
  chan_list& list() { return Sends ? chan()->senders : chan()->receivers; }

  channel<T> ch_;
  bool enabled_ = true;
  chan_node node_;
  chan_node* partner_ = nullptr;
  channel_status status_ = channel_status::ok;
};

}  // namespace detail

template <class T, class F>
class receive_case final : public detail::channel_case<T, receive_case<T, F>, false> {
  using base_t = detail::channel_case<T, receive_case<T, F>, false>;
  friend base_t;
  using base_t::partner_;
  using base_t::status_;

 public:
  receive_case(channel<T> ch, F fn) : base_t(std::move(ch)), fn_(std::move(fn)) {}
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
    if constexpr (std::is_invocable_v<F, std::optional<T>>) {
      if (status_ == channel_status::ok) {
        fn_(std::move(got_.value));
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

template <class T, class F>
class send_case final : public detail::channel_case<T, send_case<T, F>, true> {
  using base_t = detail::channel_case<T, send_case<T, F>, true>;
  friend base_t;
  using base_t::partner_;
  using base_t::status_;

 public:
  send_case(channel<T> ch, T v, F fn)
      : base_t(std::move(ch)), offer_{std::move(v), nullptr}, fn_(std::move(fn)) {}
  bool try_now() override {
    auto& s = *this->state();
    if (s.closing) {
      status_ = channel_status::closed;
      return true;
    }
    if ((partner_ = s.receivers.claim_first())) {
      *static_cast<item*>(partner_->item) = std::move(offer_);
      partner_->result = channel_status::ok;
      status_ = channel_status::ok;
      return true;
    }
    if (s.buffer.size() < s.capacity) {
      s.buffer.push_back(std::move(offer_));
      status_ = channel_status::ok;
      return true;
    }
    return false;
  }

 private:
  using item = detail::chan_item<T>;
  item* slot() { return &offer_; }
  void run() {
    if constexpr (std::is_invocable_v<F, channel_status>) {
      fn_(status_);
    } else {
      fn_();
    }
  }
  item offer_;
  F fn_;
};

template <class F>
class default_case final : public detail::select_case {
 public:
  explicit default_case(F fn) : fn_(std::move(fn)) {}
  detail::chan_base* base() noexcept override { return nullptr; }
  bool is_default() const noexcept override { return true; }
  bool try_now() override { return false; }
  void park(detail::wait_point&, std::uint32_t) override {}
  void unpark() noexcept override {}
  void finish() override { fn_(); }
  void finish_woken() override { fn_(); }

 private:
  F fn_;
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
receive_case<T, F> on_receive(channel<T> ch, F fn = {}) {
  return receive_case<T, F>(std::move(ch), std::move(fn));
}
/// A send case: `fn(channel_status)` (ok or closed) or `fn()`.
template <class T, class U, class F = nothing>
send_case<T, F> on_send(channel<T> ch, U&& v, F fn = {}) {
  return send_case<T, F>(std::move(ch), T(std::forward<U>(v)), std::move(fn));
}
/// Taken when no other case is ready at once: the select never parks.
template <class F = nothing>
default_case<F> on_default(F fn = {}) {
  return default_case<F>(std::move(fn));
}

namespace detail {
std::size_t run_select(select_case** cases, std::size_t n,
                       const std::chrono::steady_clock::time_point* deadline);
}

/// Waits on any mix of send and receive cases over channels of any types
/// and runs the handler of the one that completes; returns its index. Among
/// cases ready at once, one is chosen at random (fairness). With an
/// on_default case the select never parks. Channels are locked in address
/// order, so selects over overlapping channels cannot deadlock.
/// @suspends yes (unless it has a default case) @threadsafe
template <class... Cases>
std::size_t select(Cases&&... cs) {
  detail::select_case* arr[] = {&cs...};
  return detail::run_select(arr, sizeof...(Cases), nullptr);
}
/// select with a deadline: returns select_timeout if nothing completed.
template <class... Cases>
std::size_t select_until(std::chrono::steady_clock::time_point t, Cases&&... cs) {
  detail::select_case* arr[] = {&cs...};
  return detail::run_select(arr, sizeof...(Cases), &t);
}
template <class Rep, class Period, class... Cases>
std::size_t select_for(std::chrono::duration<Rep, Period> d, Cases&&... cs) {
  return select_until(
      std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::steady_clock::duration>(d),
      std::forward<Cases>(cs)...);
}

}  // namespace taiga
