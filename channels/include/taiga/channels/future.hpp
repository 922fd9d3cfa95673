// taiga::promise / future / shared_future, and the combinators when_all,
// when_any and as_completed (evergreen's futures, shaped like std::future so
// that C++ readers know them), with concurrent.futures' cancel() and
// add_done_callback(). Built only on the runtime's parking API.
//
// Design note. One shared state per promise, reference counted: the promise,
// every future and shared_future, and pending callbacks hold it. The state
// goes from empty to ready exactly once, by the first *commit*: set_value,
// set_exception, cancel, or the promise's destructor (taiga::broken_promise).
//  F1  A commit happens under lock_: it stores the result (a value pointer,
//      an exception_ptr, the cancelled_ flag) and sets ready_ (release order)
//      in one critical section, so the result and the readiness change
//      together. A second commit finds ready_ set and stores nothing: a
//      set_value or set_exception then throws usage_error, or returns false
//      if the state was cancelled.
//  F2  A value is constructed before its commit, outside the lock, in storage
//      that only its setter touches: the state's own buffer for the first
//      setter in flight, a heap block for any setter that races it. So a
//      value constructor that throws (or is slow) changes nothing: another
//      setter may still commit, and the failed one propagates its exception.
//      A setter that loses the race destroys its value. Readers load ready_
//      with acquire order; the result never changes after it (except that
//      future::get moves the value out: a future is its state's only reader).
//  F3  waiters are parked in a FIFO list under lock_ and all claimed, under
//      lock_, by the commit; they are completed after lock_ is released. A
//      waiter that timed out or was killed unlinks itself under lock_ (the
//      park protocol of taiga/runtime/detail/park.hpp).
//  F4  callbacks (add_done_callback, and the combinators' glue) are nodes the
//      registering party allocates before it takes lock_. The commit takes
//      the whole list under lock_ and runs it, in registration order, on its
//      own thread after lock_ is released and the waiters are woken; a
//      callback registered after the commit runs at once, in the registering
//      caller. Each runs once and is destroyed right after. An exception
//      from a callback never propagates: it goes to report_callback_error
//      (the runtime's error_handler when one is configured, else a line on
//      stderr), and the other callbacks still run. tasklet_exit (a kill at a
//      park point inside a callback) is rethrown once the others have run,
//      except in a promise's destructor, which cannot throw.
// Ownership cycles (a child state holds a callback that holds the
// combinator's context, which holds the child future) exist only until the
// child becomes ready: callbacks are dropped after they run. A promise that
// is destroyed makes its state ready, so no cycle outlives its promises.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <taiga/channels/detail/op_site.hpp>
#include <taiga/channels/queue.hpp>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/runtime.hpp>
#include <taiga/runtime/this_tasklet.hpp>
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

/// The error a cancelled future holds: get() throws it (concurrent.futures'
/// CancelledError). See future::cancel().
class future_cancelled : public std::runtime_error {
 public:
  future_cancelled() : std::runtime_error("taiga: the future was cancelled") {}
};

template <class T>
class future;
template <class T>
class shared_future;
template <class T>
class promise;

namespace detail::future_impl {

using steady_time = std::chrono::steady_clock::time_point;

/// Where an exception thrown by a done callback goes (F4): the current
/// runtime's error_handler if one is configured (the tasklet_info describes
/// the caller, with state "running a future's done callback"), else one line
/// on stderr. Never throws.
inline void report_callback_error(std::exception_ptr e) noexcept {
  try {
    runtime* rt = runtime::current();
    if (rt != nullptr && rt->config().error_handler) {
      tasklet_info info;
      info.id = this_tasklet::get_id();
      if (this_tasklet::in_tasklet()) info.name = this_tasklet::name();
      info.state = "running a future's done callback";
      info.worker = this_tasklet::worker();
      rt->config().error_handler(info, e);
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "taiga: a future's done callback threw: %s\n", x.what());
    } catch (...) {
      std::fprintf(stderr, "taiga: a future's done callback threw a non-standard exception\n");
    }
  } catch (...) {
    // The handler (or the report) failed: nothing more can be done.
  }
}

/// A callback node (F4), linked through `next` while it waits.
struct callback {
  virtual ~callback() = default;
  virtual void run() = 0;
  callback* next = nullptr;
};
template <class F>
struct callback_of final : callback {
  explicit callback_of(F f) : fn(std::move(f)) {}
  void run() override { fn(); }
  F fn;
};
template <class F>
std::unique_ptr<callback> make_callback(F&& fn) {
  return std::make_unique<callback_of<std::decay_t<F>>>(std::forward<F>(fn));
}

/// Runs and destroys the callbacks of a list (F4). Returns the tasklet_exit
/// one of them threw, if any, for the caller to rethrow.
inline std::exception_ptr run_callbacks(callback* head) noexcept {
  std::exception_ptr kill;
  while (head != nullptr) {
    std::unique_ptr<callback> cb(head);
    head = head->next;
    try {
      cb->run();
    } catch (const tasklet_exit&) {
      if (!kill) kill = std::current_exception();
    } catch (...) {
      report_callback_error(std::current_exception());
    }
  }
  return kill;
}

/// The part of a shared state that does not depend on T.
class state_base {
 public:
  state_base() = default;
  state_base(const state_base&) = delete;
  state_base& operator=(const state_base&) = delete;

  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  /// True once cancelled (then ready() too, with future_cancelled as error()).
  bool cancelled() const noexcept { return ready() && cancelled_; }

  /// Parks (or blocks) until ready or until `*deadline`; returns ready().
  /// An interruption point (sync.hpp's list): a pending kill or throw_into
  /// is delivered first, also when the state is ready already, so a loop on
  /// a ready future's wait() or a shared_future's get() stays killable; the
  /// future is left as it was (get() leaves it valid).
  bool wait(const steady_time* deadline, op_site at) {
    interruption_point();
    if (ready()) return true;
    if (deadline != nullptr && *deadline <= std::chrono::steady_clock::now()) return false;
    wait_point w;
    prepare_wait(w, park_reason::future, this, call_site(at));  // a kill point
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
      waiters_.remove_if_linked(w);
    }
    if (s == wake_status::interrupted) throw_interrupt();
    return ready();
  }

  /// Runs `fn()` once the state is ready (F4): at once, in the caller, if it
  /// is ready already. Allocates (outside the lock): may throw bad_alloc,
  /// and then `fn` will not run.
  template <class F>
  void on_ready(F&& fn) {
    std::unique_ptr<callback> cb = make_callback(std::forward<F>(fn));
    {
      std::lock_guard lk(lock_);
      if (!ready_.load(std::memory_order_relaxed)) {
        callback* c = cb.release();
        if (cb_tail_ != nullptr) {
          cb_tail_->next = c;
        } else {
          cb_head_ = c;
        }
        cb_tail_ = c;
        return;
      }
    }
    if (std::exception_ptr kill = run_callbacks(cb.release())) std::rethrow_exception(kill);
  }

  /// Stores an exception (F1). @returns true if stored, false if the state
  /// was cancelled. @throws usage_error for a null `e`, or if a result was
  /// set already.
  bool set_exception(std::exception_ptr e) {
    if (!e) throw usage_error("taiga::promise::set_exception with a null exception_ptr");
    return settled(commit([&]() noexcept { error_ = std::move(e); }));
  }

  /// Cancels (F1): true if this call made the state ready.
  bool cancel() {
    if (ready()) return false;
    std::exception_ptr e = std::make_exception_ptr(future_cancelled());
    return commit([&]() noexcept {
             error_ = std::move(e);
             cancelled_ = true;
           }) == outcome::stored;
  }

  /// The promise died: break it unless it has a result.
  void abandon() noexcept {
    if (ready()) return;
    std::exception_ptr e = std::make_exception_ptr(broken_promise());
    // A callback that parked and was killed cannot be rethrown from a
    // destructor (F4): the kill is dropped.
    try {
      (void)commit([&]() noexcept { error_ = std::move(e); });
    } catch (...) {
    }
  }

  /// After ready(): the error, if it ended with one.
  const std::exception_ptr& error() const noexcept { return error_; }

 protected:
  ~state_base() = default;

  enum class outcome : std::uint8_t {
    stored,     // this commit made the state ready
    cancelled,  // it was cancelled before
    taken,      // it had a value or an exception already
  };

  /// F1: under lock_, unless ready already: `store()` (noexcept) writes the
  /// result, ready_ is set, and the waiters are claimed; then, outside the
  /// lock, the waiters are woken and the callbacks run (F3, F4). May throw
  /// only a callback's tasklet_exit (the result is stored then).
  template <class Store>
  outcome commit(Store&& store) {
    callback* cbs = nullptr;
    {
      wake_batch wb;  // completes the waiters after the unlock
      std::lock_guard lk(lock_);
      if (ready_.load(std::memory_order_relaxed)) {
        return cancelled_ ? outcome::cancelled : outcome::taken;
      }
      store();
      ready_.store(true, std::memory_order_release);  // pairs with ready()'s acquire
      waiters_.claim_all(wb);
      cbs = cb_head_;
      cb_head_ = cb_tail_ = nullptr;
    }
    if (std::exception_ptr kill = run_callbacks(cbs)) std::rethrow_exception(kill);
    return outcome::stored;
  }

  /// What a set_value or set_exception reports for a commit's outcome.
  static bool settled(outcome o) {
    if (o == outcome::taken) throw usage_error("taiga::promise: the result was already set");
    return o == outcome::stored;
  }

  spinlock& lock() const noexcept { return lock_; }

 private:
  mutable spinlock lock_;  // guards the fields below (ready_'s change) and subclasses' flags
  // Set by the commit under lock_ with release order; read by anyone
  // (acquire) before they read the result.
  std::atomic<bool> ready_{false};
  bool cancelled_ = false;    // written by the commit, before ready_
  std::exception_ptr error_;  // written by the commit, before ready_
  wait_list waiters_;
  callback* cb_head_ = nullptr;  // callbacks waiting for the commit (F4)
  callback* cb_tail_ = nullptr;
};

template <class T>
class state final : public state_base {
 public:
  state() = default;
  ~state() {
    if (value_ == nullptr) return;
    value_->~T();
    if (!value_in_buffer_) std::allocator<T>().deallocate(value_, 1);
  }

  /// Constructs the value from `a...` outside the lock, then commits it (F1,
  /// F2). @returns true if stored, false if the state was cancelled (the
  /// value is destroyed). @throws what T's constructor throws (nothing is
  /// stored then); std::bad_alloc (for a setter racing another); usage_error
  /// if a result was set already.
  template <class... A>
  bool set_value(A&&... a) {
    bool in_buffer = false;
    {
      std::lock_guard lk(lock());
      if (ready()) return settled(cancelled() ? outcome::cancelled : outcome::taken);
      if (!buffer_busy_) buffer_busy_ = in_buffer = true;  // F2: first setter in flight
    }
    T* v = nullptr;
    if (in_buffer) {
      try {
        v = ::new (static_cast<void*>(buffer_)) T(std::forward<A>(a)...);
      } catch (...) {
        std::lock_guard lk(lock());
        buffer_busy_ = false;
        throw;
      }
    } else {
      T* raw = std::allocator<T>().allocate(1);
      try {
        v = ::new (static_cast<void*>(raw)) T(std::forward<A>(a)...);
      } catch (...) {
        std::allocator<T>().deallocate(raw, 1);
        throw;
      }
    }
    const outcome o = commit([&]() noexcept {
      value_ = v;
      value_in_buffer_ = in_buffer;
    });
    if (o != outcome::stored) {  // another setter (or cancel) came first
      v->~T();
      if (in_buffer) {
        std::lock_guard lk(lock());
        buffer_busy_ = false;
      } else {
        std::allocator<T>().deallocate(v, 1);
      }
    }
    return settled(o);
  }
  /// After ready() and without error().
  T& value() noexcept { return *value_; }

 private:
  alignas(T) unsigned char buffer_[sizeof(T)];  // the first setter's storage (F2)
  bool buffer_busy_ = false;                    // under lock(): a setter uses buffer_
  T* value_ = nullptr;                          // written by the commit, before ready_
  bool value_in_buffer_ = false;
};

template <>
class state<void> final : public state_base {
 public:
  bool set_value() {
    return settled(commit([]() noexcept {}));
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
///
/// The future may be cancelled (future::cancel()). The producer can look
/// with is_cancelled(), and a set_value() or set_exception() after a cancel
/// does nothing and returns false: a cancel is an expected outcome, not an
/// error.
/// @threadsafe set_value/set_exception/cancel may race: exactly one result is
///             stored; a setter that loses to another setter throws
///             usage_error, one that loses to a cancel returns false, and one
///             whose value constructor throws stores nothing (another may
///             still succeed).
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

  /// Constructs the value from `a...` and stores it; wakes every waiter and
  /// runs the done callbacks (on this thread, after the wake-ups).
  /// @returns true if stored; false if the future was cancelled (the value
  ///          is discarded).
  /// @throws  what T's constructor throws (nothing is stored: the promise
  ///          may still be set); usage_error if a value or exception was set
  ///          already (by another call: racing calls see it only once a
  ///          result is really stored).
  /// @suspends no (unless a done callback parks)
  template <class... A>
  bool set_value(A&&... a) {
    require();
    return state_->set_value(std::forward<A>(a)...);
  }
  /// Stores an exception for get() to rethrow; wakes every waiter and runs
  /// the done callbacks.
  /// @returns true if stored; false if the future was cancelled.
  /// @throws usage_error if a value or exception was set already.
  /// @suspends no (unless a done callback parks)
  bool set_exception(std::exception_ptr e) {
    require();
    return state_->set_exception(std::move(e));
  }
  /// True if the future was cancelled: the result will be discarded, so a
  /// producer may stop early. @threadsafe
  [[nodiscard]] bool is_cancelled() const {
    require();
    return state_->cancelled();
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
  void wait(detail::op_site at = detail::op_site::current()) const {
    (void)require().wait(nullptr, at);
  }
  /// Parks until ready or until `d` has passed.
  /// @returns std::future_status::ready or ::timeout. @suspends yes
  template <class Rep, class Period>
  std::future_status wait_for(const std::chrono::duration<Rep, Period>& d,
                              detail::op_site at = detail::op_site::current()) const {
    auto dl = detail::deadline_after(d);
    return require().wait(&dl, at) ? std::future_status::ready : std::future_status::timeout;
  }
  template <class Clock, class Duration>
  std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& t,
                                detail::op_site at = detail::op_site::current()) const {
    auto dl = detail::to_steady(t);
    return require().wait(&dl, at) ? std::future_status::ready : std::future_status::timeout;
  }

  /// Parks until ready, then returns the value (moved out) or rethrows the
  /// stored exception (taiga::broken_promise if the promise died unset,
  /// taiga::future_cancelled if cancelled). Leaves the future invalid,
  /// unless the wait itself was interrupted (a kill), which propagates and
  /// leaves it valid.
  /// @throws usage_error if !valid(). @suspends yes (a plain thread blocks)
  T get(detail::op_site at = detail::op_site::current()) {
    require().wait(nullptr, at);
    std::shared_ptr<state_type> s = std::move(state_);
    if (s->error()) std::rethrow_exception(s->error());
    if constexpr (!std::is_void_v<T>) return std::move(s->value());
  }

  /// Cancels the future (concurrent.futures' Future.cancel): unless a
  /// result is set already, the state becomes ready holding
  /// taiga::future_cancelled, every waiter wakes (get() throws it), the done
  /// callbacks run (in this caller), and the promise's later set_value or
  /// set_exception does nothing and returns false. Whoever computes the
  /// result is not interrupted: it may look at promise::is_cancelled()
  /// (task_pool skips a call that has not started).
  /// @returns true if this call cancelled it; false if it was ready already
  ///          (set, broken or cancelled before).
  /// @throws usage_error if !valid(). @suspends no (unless a callback parks)
  /// @threadsafe with the promise's calls and with other futures' cancel.
  bool cancel() { return require().cancel(); }
  /// True if the future was cancelled (it is then ready).
  /// @throws usage_error if !valid().
  [[nodiscard]] bool is_cancelled() const { return require().cancelled(); }

  /// Runs `fn()` once the future is ready (set, failed, broken or
  /// cancelled): at once, in this caller, if it is ready already; otherwise
  /// on the thread that makes it ready (set_value, set_exception, cancel or
  /// the promise's destructor), after the waiters were woken. Callbacks run
  /// once each, in the order they were added. `fn` gets no argument: it may
  /// not read this future's value (get() is for the one reader); to read
  /// the result in a callback, use a shared_future.
  ///
  /// A callback should be short and must not park. An exception it throws
  /// never reaches the caller of set_value (or of this function): it is
  /// passed to the runtime's error_handler, when the current runtime has
  /// one (as for a detached tasklet that fails), or else written to stderr,
  /// and ignored; the other callbacks still run.
  /// @throws usage_error if !valid(); std::bad_alloc (then `fn` never runs).
  /// @suspends no (unless `fn` parks)
  template <class F>
  void add_done_callback(F&& fn) {
    static_assert(std::is_invocable_v<std::decay_t<F>&>,
                  "taiga::future::add_done_callback: fn must be callable with no argument");
    require().on_ready(std::forward<F>(fn));
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
  void wait(detail::op_site at = detail::op_site::current()) const {
    (void)require().wait(nullptr, at);
  }
  template <class Rep, class Period>
  std::future_status wait_for(const std::chrono::duration<Rep, Period>& d,
                              detail::op_site at = detail::op_site::current()) const {
    auto dl = detail::deadline_after(d);
    return require().wait(&dl, at) ? std::future_status::ready : std::future_status::timeout;
  }
  template <class Clock, class Duration>
  std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& t,
                                detail::op_site at = detail::op_site::current()) const {
    auto dl = detail::to_steady(t);
    return require().wait(&dl, at) ? std::future_status::ready : std::future_status::timeout;
  }

  /// Parks until ready, then returns a reference to the value (valid while
  /// a copy of this shared_future lives) or rethrows the stored exception.
  /// The future stays valid. @suspends yes (a plain thread blocks)
  std::conditional_t<std::is_void_v<T>, void, const detail::future_impl::value_or_monostate<T>&>
  get(detail::op_site at = detail::op_site::current()) const {
    state_type& s = require();
    s.wait(nullptr, at);
    if (s.error()) std::rethrow_exception(s.error());
    if constexpr (!std::is_void_v<T>) return s.value();
  }

  /// Like future::cancel(): cancels the state shared by every copy.
  bool cancel() const { return require().cancel(); }
  /// Like future::is_cancelled().
  [[nodiscard]] bool is_cancelled() const { return require().cancelled(); }
  /// Like future::add_done_callback(), and `fn` may also take the future:
  /// `fn(const shared_future<T>&)` gets a copy of this one, whose get()
  /// then returns at once.
  template <class F>
  void add_done_callback(F&& fn) const {
    state_type& s = require();
    if constexpr (std::is_invocable_v<std::decay_t<F>&, const shared_future&>) {
      s.on_ready([self = *this, f = std::forward<F>(fn)]() mutable { f(self); });
    } else {
      static_assert(std::is_invocable_v<std::decay_t<F>&>,
                    "taiga::shared_future::add_done_callback: fn must be callable with no "
                    "argument or with the shared_future");
      s.on_ready(std::forward<F>(fn));
    }
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
      : fs_(std::move(fs)), log_(std::make_shared<log>(fs_.size())), left_(fs_.size()) {
    std::vector<std::shared_ptr<detail::future_impl::state_base>> states;
    states.reserve(fs_.size());
    for (auto& f : fs_) states.push_back(detail::future_impl::base_of(f));
    for (std::size_t i = 0; i < states.size(); ++i) {
      // Allocates nothing and cannot fail: one slot per future was made.
      states[i]->on_ready([l = log_, i] {
        {
          std::lock_guard lk(l->lock);
          l->order[l->written++] = i;
        }
        // The n-th release comes after n slots were written (in lock order).
        l->ready.release();
      });
    }
  }

  /// Parks until the next future is ready and returns it; std::nullopt once
  /// every future has been returned.
  /// @suspends yes (a plain thread blocks); a kill point.
  std::optional<future<T>> next(detail::op_site at = detail::op_site::current()) {
    detail::interruption_point();  // also at the end: a loop on it stays killable
    if (left_ == 0) return std::nullopt;
    log_->ready.acquire(at);
    return take();
  }
  /// next() with a time limit: std::nullopt on timeout too (see remaining()).
  template <class Rep, class Period>
  std::optional<future<T>> try_next_for(const std::chrono::duration<Rep, Period>& d,
                                        detail::op_site at = detail::op_site::current()) {
    detail::interruption_point();
    if (left_ == 0) return std::nullopt;
    if (!log_->ready.try_acquire_for(d, at)) return std::nullopt;
    return take();
  }
  /// Futures not returned yet.
  [[nodiscard]] std::size_t remaining() const noexcept { return left_; }

  class iterator {
   public:
    using value_type = future<T>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(as_completed_range* r, detail::op_site at) : r_(r), at_(at), cur_(r->next(at)) {}
    future<T>& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = r_->next(at_);
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !cur_.has_value(); }

   private:
    as_completed_range* r_ = nullptr;
    detail::op_site at_{};
    std::optional<future<T>> cur_;
  };
  /// The range-for's line is where its waits park in dumps and deadlock
  /// reports (the iterator's operators cannot take the caller's site).
  iterator begin(detail::op_site at = detail::op_site::current()) { return iterator(this, at); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  // Indices in completion order, written by the futures' callbacks; `ready`
  // counts the slots written and not yet read.
  struct log {
    explicit log(std::size_t n) : order(n) {}
    detail::spinlock lock;  // guards `written` and the writes to `order`
    std::vector<std::size_t> order;
    std::size_t written = 0;
    semaphore ready{0};  // slots written and not read yet
  };
  // After an acquire of log_->ready: the next index, and its future.
  std::optional<future<T>> take() {
    const std::size_t i = log_->order[read_++];
    --left_;
    return std::move(fs_[i]);
  }

  std::vector<future<T>> fs_;
  std::shared_ptr<log> log_;
  std::size_t read_ = 0;  // the next slot of log_->order to read
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
