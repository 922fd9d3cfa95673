// taiga::promise / future / shared_future, and the combinators when_all,
// when_any and as_completed (evergreen's futures, shaped like std::future so
// that C++ readers know them). Built only on the runtime's parking API.
//
// Design note. One shared state per promise, reference counted: the promise,
// every future and shared_future, and pending continuations hold it. The
// state goes from empty to ready exactly once, by set_value, set_exception, or
// the promise's destructor (taiga::broken_promise):
//  F1  `satisfied_` is set, under lock_, by the one setter that wins; a second
//      setter throws usage_error. The winner then writes the value or error
//      outside the lock (a T constructor may be long; readers do not look
//      before F2).
//  F2  `ready_` goes false -> true once, under lock_, with release order,
//      after the value or error is written. Readers load it with acquire
//      order; the value and error never change after it (except that
//      future::get moves the value out: a future is its state's only reader).
//  F3  waiters are parked in a FIFO list under lock_ and all woken, under
//      lock_, when F2 happens; a waiter that timed out or was killed unlinks
//      itself under lock_ (the park protocol of taiga/runtime/detail/park.hpp).
//  F4  continuations (the combinators' glue) are run once, on the thread that
//      made the state ready, after lock_ is released, or at once by on_ready
//      if the state is ready already. They must not throw.
// Ownership cycles (a child state holds a continuation that holds the
// combinator's context, which holds the child future) exist only until the
// child becomes ready: continuations are dropped after they run. A promise
// that is destroyed makes its state ready, so no cycle outlives its promises.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <taiga/channels/queue.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace taiga {

/// The error a future holds when its promise was destroyed before it set a
/// value or an exception (std::future_errc::broken_promise).
class broken_promise : public std::logic_error {
 public:
  broken_promise() : std::logic_error("taiga: the promise was destroyed without a result") {}
};

template <class T>
class future;
template <class T>
class shared_future;
template <class T>
class promise;

namespace detail::future_impl {

using steady_time = std::chrono::steady_clock::time_point;

/// The part of a shared state that does not depend on T.
class state_base {
 public:
  state_base() = default;
  state_base(const state_base&) = delete;
  state_base& operator=(const state_base&) = delete;

  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }

  /// Parks (or blocks) until ready or until `*deadline`; returns ready().
  bool wait(const steady_time* deadline) {
    if (ready()) return true;
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) return false;
    wait_point w;
    prepare_wait(w, "future", this);  // a kill point
    {
      std::lock_guard lk(lock_);
      if (ready_.load(std::memory_order_relaxed)) {
        cancel_wait(w);
        return true;
      }
      waiters_.push_back(w);
    }
    wake_status s = detail::wait(w, deadline);
    if (s == wake_status::signaled) return true;
    {
      std::lock_guard lk(lock_);
      waiters_.remove(w);
    }
    if (s == wake_status::interrupted) throw_interrupt();
    return ready();
  }

  /// Runs `fn` once the state is ready (F4).
  void on_ready(std::function<void()> fn) {
    {
      std::lock_guard lk(lock_);
      if (!ready_.load(std::memory_order_relaxed)) {
        callbacks_.push_back(std::move(fn));
        return;
      }
    }
    fn();
  }

  void set_exception(std::exception_ptr e) {
    if (!e) throw usage_error("taiga::promise::set_exception with a null exception_ptr");
    set([&] { error_ = std::move(e); });
  }

  /// The promise died: break it unless it was satisfied.
  void abandon() noexcept {
    {
      std::lock_guard lk(lock_);
      if (satisfied_) return;
      satisfied_ = true;
    }
    error_ = std::make_exception_ptr(broken_promise());
    publish();
  }

  /// After ready(): the error, if it ended with one.
  const std::exception_ptr& error() const noexcept { return error_; }

 protected:
  ~state_base() = default;

  /// F1 + F2: `write()` stores the result; it runs outside the lock.
  template <class Write>
  void set(Write&& write) {
    {
      std::lock_guard lk(lock_);
      if (satisfied_) throw usage_error("taiga::promise: the result was already set");
      satisfied_ = true;
    }
    try {
      std::forward<Write>(write)();
    } catch (...) {
      std::lock_guard lk(lock_);
      satisfied_ = false;
      throw;
    }
    publish();
  }

 private:
  void publish() noexcept {
    std::vector<std::function<void()>> cbs;
    {
      queue_impl::wake_batch wb;  // completes the waiters after the unlock
      std::lock_guard lk(lock_);
      ready_.store(true, std::memory_order_release);  // pairs with ready()'s acquire
      waiters_.claim_all(wb);
      cbs.swap(callbacks_);
    }
    for (auto& cb : cbs) cb();
  }

  mutable spinlock lock_;  // guards satisfied_, waiters_, callbacks_, ready_'s change
  bool satisfied_ = false;
  // Written by the setter before publish(), read by anyone after ready().
  std::atomic<bool> ready_{false};
  std::exception_ptr error_;
  queue_impl::wait_list waiters_;
  std::vector<std::function<void()>> callbacks_;
};

template <class T>
class state final : public state_base {
 public:
  template <class... A>
  void set_value(A&&... a) {
    set([&] { value_.emplace(std::forward<A>(a)...); });
  }
  /// After ready() and without error().
  T& value() noexcept { return *value_; }

 private:
  std::optional<T> value_;
};

template <>
class state<void> final : public state_base {
 public:
  void set_value() {
    set([] {});
  }
};

/// Lets the combinators reach a future's state.
struct access {
  template <class F>
  static auto& state_of(F& f) noexcept {
    return f.state_;
  }
  template <class T>
  static future<T> make(std::shared_ptr<state<T>> s) noexcept {
    return future<T>(std::move(s));
  }
};

template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

}  // namespace detail::future_impl

/// The producing side of a one-shot result (std::promise). Move-only. Set it
/// once with set_value() or set_exception(); destroying it unset makes its
/// future throw taiga::broken_promise.
/// @threadsafe set_value/set_exception may race (one wins, the other throws).
template <class T>
class promise {
  static_assert(!std::is_reference_v<T>, "taiga::promise<T&> is not supported");
  using state_type = detail::future_impl::state<T>;

 public:
  promise() : state_(std::make_shared<state_type>()) {}
  promise(promise&& o) noexcept = default;
  promise& operator=(promise&& o) noexcept {
    if (this != &o) {
      abandon();
      state_ = std::move(o.state_);
      retrieved_ = o.retrieved_;
    }
    return *this;
  }
  promise(const promise&) = delete;
  promise& operator=(const promise&) = delete;
  ~promise() { abandon(); }

  /// The future of this promise.
  /// @throws usage_error when called twice or on a moved-from promise.
  /// @suspends no
  [[nodiscard]] future<T> get_future() {
    require();
    if (retrieved_) throw usage_error("taiga::promise::get_future called twice");
    retrieved_ = true;
    return detail::future_impl::access::make<T>(state_);
  }

  /// Stores the value and wakes every waiter.
  /// @throws usage_error if a value or exception was set already.
  /// @suspends no
  template <class... A>
  void set_value(A&&... a) {
    require();
    state_->set_value(std::forward<A>(a)...);
  }
  /// Stores an exception for get() to rethrow and wakes every waiter.
  /// @throws usage_error if a value or exception was set already.
  /// @suspends no
  void set_exception(std::exception_ptr e) {
    require();
    state_->set_exception(std::move(e));
  }

 private:
  void require() const {
    if (!state_) throw usage_error("taiga::promise: no shared state (moved from)");
  }
  void abandon() noexcept {
    if (state_) state_->abandon();
  }
  std::shared_ptr<state_type> state_;
  bool retrieved_ = false;
};

/// The consuming side of a one-shot result (std::future): move-only, read
/// once. get() moves the value out and leaves the future invalid; use share()
/// (or shared_future) when several parties wait for the same result.
///
/// Waiting parks a tasklet and blocks a plain thread. A tasklet waiting for a
/// promise that only a plain thread will set should hold a
/// runtime::keep_alive() guard, or deadlock detection may interrupt it.
/// @threadsafe no: one future is one reader (the shared state is threadsafe;
///             distinct futures of one state may be used concurrently).
template <class T>
class future {
  static_assert(!std::is_reference_v<T>, "taiga::future<T&> is not supported");
  using state_type = detail::future_impl::state<T>;

 public:
  future() noexcept = default;
  future(future&&) noexcept = default;
  future& operator=(future&&) noexcept = default;
  future(const future&) = delete;
  future& operator=(const future&) = delete;

  /// True while the future refers to a shared state (before get()).
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  /// True once a value or an exception is available. @throws usage_error if !valid().
  [[nodiscard]] bool is_ready() const { return require().ready(); }

  /// Parks until ready. @suspends yes (a plain thread blocks); a kill point.
  void wait() const { (void)require().wait(nullptr); }
  /// Parks until ready or until `d` has passed.
  /// @returns std::future_status::ready or ::timeout. @suspends yes
  template <class Rep, class Period>
  std::future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
    auto dl = detail::queue_impl::after(d);
    return require().wait(&dl) ? std::future_status::ready : std::future_status::timeout;
  }
  template <class Clock, class Duration>
  std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& t) const {
    auto dl = detail::queue_impl::to_steady(t);
    return require().wait(&dl) ? std::future_status::ready : std::future_status::timeout;
  }

  /// Parks until ready, then returns the value (moved out) or rethrows the
  /// stored exception (taiga::broken_promise if the promise died unset).
  /// Leaves the future invalid, unless the wait itself was interrupted (a
  /// kill), which propagates and leaves it valid.
  /// @throws usage_error if !valid(). @suspends yes (a plain thread blocks)
  T get() {
    require().wait(nullptr);
    std::shared_ptr<state_type> s = std::move(state_);
    if (s->error()) std::rethrow_exception(s->error());
    if constexpr (!std::is_void_v<T>) return std::move(s->value());
  }

  /// Converts to a shared_future (this future becomes invalid).
  [[nodiscard]] shared_future<T> share() noexcept { return shared_future<T>(std::move(state_)); }

 private:
  friend struct detail::future_impl::access;
  explicit future(std::shared_ptr<state_type> s) noexcept : state_(std::move(s)) {}
  state_type& require() const {
    if (!state_) throw usage_error("taiga::future: no shared state (invalid future)");
    return *state_;
  }
  std::shared_ptr<state_type> state_;
};

/// A copyable future (std::shared_future): every copy refers to the same
/// state and get() returns a reference to the stored value, so any number of
/// tasklets and threads may wait for and read one result.
/// @threadsafe each copy may be used by one party at a time; copies may be
///             used concurrently.
template <class T>
class shared_future {
  using state_type = detail::future_impl::state<T>;

 public:
  shared_future() noexcept = default;
  shared_future(future<T>&& f) noexcept : shared_future(f.share()) {}  // NOLINT: like std

  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  [[nodiscard]] bool is_ready() const { return require().ready(); }
  /// @suspends yes (a plain thread blocks); a kill point.
  void wait() const { (void)require().wait(nullptr); }
  template <class Rep, class Period>
  std::future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
    auto dl = detail::queue_impl::after(d);
    return require().wait(&dl) ? std::future_status::ready : std::future_status::timeout;
  }
  template <class Clock, class Duration>
  std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& t) const {
    auto dl = detail::queue_impl::to_steady(t);
    return require().wait(&dl) ? std::future_status::ready : std::future_status::timeout;
  }

  /// Parks until ready, then returns a reference to the value (valid while
  /// a copy of this shared_future lives) or rethrows the stored exception.
  /// The future stays valid. @suspends yes (a plain thread blocks)
  std::conditional_t<std::is_void_v<T>, void, const detail::future_impl::value_or_monostate<T>&>
  get() const {
    state_type& s = require();
    s.wait(nullptr);
    if (s.error()) std::rethrow_exception(s.error());
    if constexpr (!std::is_void_v<T>) return s.value();
  }

 private:
  friend class future<T>;
  explicit shared_future(std::shared_ptr<state_type> s) noexcept : state_(std::move(s)) {}
  state_type& require() const {
    if (!state_) throw usage_error("taiga::shared_future: no shared state (invalid future)");
    return *state_;
  }
  std::shared_ptr<state_type> state_;
};

/// A future that is ready with `v` (or, for void, with nothing).
template <class T>
[[nodiscard]] future<std::decay_t<T>> make_ready_future(T&& v) {
  promise<std::decay_t<T>> p;
  auto f = p.get_future();
  p.set_value(std::forward<T>(v));
  return f;
}
[[nodiscard]] inline future<void> make_ready_future() {
  promise<void> p;
  auto f = p.get_future();
  p.set_value();
  return f;
}
/// A future that is ready with the exception `e`.
template <class T>
[[nodiscard]] future<T> make_exceptional_future(std::exception_ptr e) {
  promise<T> p;
  auto f = p.get_future();
  p.set_exception(std::move(e));
  return f;
}

namespace detail::future_impl {

template <class F>
std::shared_ptr<state_base> base_of(F& f) {
  auto& s = access::state_of(f);
  if (!s) throw usage_error("taiga: a combinator was given an invalid future");
  return s;
}

/// Calls `fin()` once, when every state in `states` is ready. `fin` is
/// destroyed right after it runs (breaking the cycles of the design note).
template <class Fin>
void on_all_ready(const std::vector<std::shared_ptr<state_base>>& states, Fin fin) {
  struct ctl {
    std::atomic<std::size_t> left;
    std::optional<Fin> fin;
  };
  auto c = std::make_shared<ctl>();
  c->left.store(states.size(), std::memory_order_relaxed);
  c->fin.emplace(std::move(fin));
  // Each state is kept alive by `states` while on_ready runs: the last
  // continuation may run (and drop the futures) on another thread meanwhile.
  for (const auto& s : states) {
    s->on_ready([c] {
      // acq_rel: the last one sees every child's result (release sequence).
      if (c->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        (*c->fin)();
        c->fin.reset();
      }
    });
  }
}

}  // namespace detail::future_impl

/// A future of every result of `fs`, in the order of `fs`: future<vector<T>>,
/// or future<void> for void. It becomes ready when all of `fs` are ready; if
/// any failed, it holds the exception of the first failed one (by position).
/// An empty `fs` gives a ready future.
/// @throws usage_error if a future is invalid. @suspends no
template <class T>
[[nodiscard]] auto when_all(std::vector<future<T>> fs)
    -> future<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> {
  using R = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;
  std::vector<std::shared_ptr<detail::future_impl::state_base>> states;
  states.reserve(fs.size());
  for (auto& f : fs) states.push_back(detail::future_impl::base_of(f));
  promise<R> p;
  future<R> out = p.get_future();
  auto fin = [p = std::move(p), fs = std::move(fs)]() mutable {
    for (auto& f : fs) {
      auto& s = detail::future_impl::access::state_of(f);
      if (s->error()) {
        p.set_exception(s->error());
        return;
      }
    }
    if constexpr (std::is_void_v<T>) {
      p.set_value();
    } else {
      std::vector<T> values;
      values.reserve(fs.size());
      for (auto& f : fs)
        values.push_back(std::move(detail::future_impl::access::state_of(f)->value()));
      p.set_value(std::move(values));
    }
  };
  if (states.empty()) {
    fin();
  } else {
    detail::future_impl::on_all_ready(states, std::move(fin));
  }
  return out;
}

/// A future of the results of `fs...` as a tuple (void results become
/// std::monostate). Same rules as the vector form.
/// @throws usage_error if a future is invalid. @suspends no
template <class... T>
[[nodiscard]] future<std::tuple<detail::future_impl::value_or_monostate<T>...>> when_all(
    future<T>... fs) {
  using R = std::tuple<detail::future_impl::value_or_monostate<T>...>;
  std::vector<std::shared_ptr<detail::future_impl::state_base>> states{
      detail::future_impl::base_of(fs)...};
  promise<R> p;
  future<R> out = p.get_future();
  auto fin = [p = std::move(p), tup = std::make_tuple(std::move(fs)...)]() mutable {
    std::exception_ptr err;
    std::apply(
        [&](auto&... f) {
          ((err = err ? err : detail::future_impl::access::state_of(f)->error()), ...);
        },
        tup);
    if (err) {
      p.set_exception(err);
      return;
    }
    auto take = [](auto& f) {
      auto& s = detail::future_impl::access::state_of(f);
      using S = std::decay_t<decltype(*s)>;
      if constexpr (std::is_same_v<S, detail::future_impl::state<void>>) {
        return std::monostate{};
      } else {
        return std::move(s->value());
      }
    };
    p.set_value(std::apply([&](auto&... f) { return R(take(f)...); }, tup));
  };
  if constexpr (sizeof...(T) == 0) {
    fin();
  } else {
    detail::future_impl::on_all_ready(states, std::move(fin));
  }
  return out;
}

/// What when_any gives: the position of the first future that became ready
/// and all the futures, handed back (std::experimental::when_any_result).
template <class T>
struct when_any_result {
  std::size_t index;
  std::vector<future<T>> futures;
};

/// A future that becomes ready as soon as one of `fs` is ready; it holds the
/// index of that one and gives all of `fs` back. It never holds an exception
/// of the children: read it from `futures[index]`.
/// @throws usage_error if `fs` is empty or a future is invalid. @suspends no
template <class T>
[[nodiscard]] future<when_any_result<T>> when_any(std::vector<future<T>> fs) {
  if (fs.empty()) throw usage_error("taiga::when_any of no futures");
  std::vector<std::shared_ptr<detail::future_impl::state_base>> states;
  states.reserve(fs.size());
  for (auto& f : fs) states.push_back(detail::future_impl::base_of(f));
  struct ctl {
    std::atomic<bool> done{false};
    std::optional<promise<when_any_result<T>>> p;
    std::vector<future<T>> fs;
  };
  auto c = std::make_shared<ctl>();
  c->p.emplace();
  auto out = c->p->get_future();
  c->fs = std::move(fs);
  for (std::size_t i = 0; i < states.size(); ++i) {
    states[i]->on_ready([c, i] {
      if (c->done.exchange(true, std::memory_order_acq_rel)) return;
      // The winner alone touches p and fs; dropping p here breaks the cycle
      // result -> futures -> child state -> this continuation -> c -> p.
      promise<when_any_result<T>> p = std::move(*c->p);
      c->p.reset();
      p.set_value(when_any_result<T>{i, std::move(c->fs)});
    });
  }
  return out;
}

/// The futures of as_completed(), in the order they become ready.
///
///     for (auto& f : taiga::as_completed(std::move(futures))) use(f.get());
///
/// Iterating parks until the next future is ready (a plain thread blocks).
/// Each future is yielded exactly once, as an lvalue to move from or get()
/// (bind it with `auto&` or `auto&&`). Single pass.
/// @threadsafe no (one consumer)
template <class T>
class as_completed_range {
 public:
  explicit as_completed_range(std::vector<future<T>> fs)
      : fs_(std::move(fs)), order_(std::make_shared<queue<std::size_t>>()), left_(fs_.size()) {
    std::vector<std::shared_ptr<detail::future_impl::state_base>> states;
    states.reserve(fs_.size());
    for (auto& f : fs_) states.push_back(detail::future_impl::base_of(f));
    for (std::size_t i = 0; i < states.size(); ++i) {
      // The queue is unbounded: try_put never parks and never fails.
      states[i]->on_ready([q = order_, i] { (void)q->try_put(std::size_t(i)); });
    }
  }

  /// Parks until the next future is ready and returns it; std::nullopt once
  /// every future has been returned.
  /// @suspends yes (a plain thread blocks); a kill point.
  std::optional<future<T>> next() {
    if (left_ == 0) return std::nullopt;
    std::size_t i = order_->get();
    --left_;
    return std::move(fs_[i]);
  }
  /// next() with a time limit: std::nullopt on timeout too (see remaining()).
  template <class Rep, class Period>
  std::optional<future<T>> try_next_for(const std::chrono::duration<Rep, Period>& d) {
    if (left_ == 0) return std::nullopt;
    auto i = order_->try_get_for(d);
    if (!i) return std::nullopt;
    --left_;
    return std::move(fs_[*i]);
  }
  /// Futures not returned yet.
  [[nodiscard]] std::size_t remaining() const noexcept { return left_; }

  class iterator {
   public:
    using value_type = future<T>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(as_completed_range* r) : r_(r), cur_(r->next()) {}
    future<T>& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = r_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !cur_.has_value(); }

   private:
    as_completed_range* r_ = nullptr;
    std::optional<future<T>> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::vector<future<T>> fs_;
  std::shared_ptr<queue<std::size_t>> order_;  // indices, in completion order
  std::size_t left_;
};

/// Yields the futures of `fs` in the order they complete (evergreen's and
/// concurrent.futures' as_completed). Futures already ready when it is
/// called come first, in their order in `fs`.
/// @throws usage_error if a future is invalid. @suspends no (iterating does)
template <class T>
[[nodiscard]] as_completed_range<T> as_completed(std::vector<future<T>> fs) {
  return as_completed_range<T>(std::move(fs));
}

}  // namespace taiga
