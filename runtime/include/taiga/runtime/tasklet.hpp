#pragma once

#include <functional>
#include <stop_token>
#include <string>
#include <taiga/runtime/detail/tasklet_core.hpp>
#include <taiga/runtime/source_location.hpp>
#include <tuple>
#include <type_traits>
#include <utility>

namespace taiga {

using detail::tasklet_state;
const char* to_string(tasklet_state s) noexcept;

/// A tasklet's process-wide unique id (never reused). 0 means "none".
using tasklet_id = std::uint64_t;

/// Owning handle to a tasklet, shaped like std::jthread.
///
/// A handle that is destroyed (or assigned over) while still joinable
/// requests a stop (when the tasklet has a stop state: request_stop), then
/// kills its tasklet and joins it. std::jthread requests a stop and joins;
/// a tasklet is not trusted to look at its token, so the kill follows at
/// once (it is raised at the tasklet's next park point, so its destructors
/// run, and they see stop_requested()). Call detach() to let it run on.
///
/// That wait cannot be cut short: a kill, throw_into or timeout_scope that
/// reaches the tasklet running the destructor stays pending and is raised
/// at its next park point, after the wait. Only a shutdown or a deadlock
/// report, when the wait could never end (two tasklets dropping handles to
/// each other), makes the destructor give up: it then detaches. An exception the tasklet ended
/// with, which no join() will ever see, goes to the runtime's error handler,
/// as a detached tasklet's does (with std::thread an escaping exception
/// terminates the process; the default handler prints it and terminates).
/// A tasklet that drops the handle to itself cannot wait for itself: the
/// handle detaches.
template <class R>
class tasklet {
 public:
  using result_type = R;

  tasklet() noexcept = default;
  explicit tasklet(detail::tasklet_core* core) noexcept : core_(core) {}
  tasklet(tasklet&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  tasklet& operator=(tasklet&& o) noexcept {
    if (this != &o) {
      reset();
      core_ = std::exchange(o.core_, nullptr);
    }
    return *this;
  }
  tasklet(const tasklet&) = delete;
  tasklet& operator=(const tasklet&) = delete;
  ~tasklet() { reset(); }

  /// Waits until the tasklet finishes; returns its result or rethrows its
  /// exception (taiga::tasklet_killed if it was killed). Leaves the handle
  /// empty. @suspends yes (a plain thread blocks). The caller's site is
  /// what a deadlock report names as where the caller parked.
  R join(detail::call_site site = detail::call_site::current()) {
    require("join");
    detail::wait_done(core_, site);
    struct drop {
      detail::tasklet_core*& c;
      ~drop() { detail::release(std::exchange(c, nullptr)); }
    } d{core_};
    detail::rethrow_if_failed(core_);
    return static_cast<detail::result_core<R>*>(core_)->take();
  }

  /// Lets the tasklet run on without a handle. An uncaught exception then
  /// goes to the runtime's error handler.
  void detach() {
    require("detach");
    detail::detach(std::exchange(core_, nullptr));
  }

  /// Raises taiga::tasklet_exit in the tasklet at its current or next park
  /// point (its body never runs if it has not started). Returns at once; use
  /// join() to wait. No-op on a finished tasklet.
  void kill() {
    require("kill");
    detail::kill(core_);
  }

  /// Raises `e` in the tasklet at its current or next park point. Returns
  /// false when the tasklet has already finished or has an exception pending.
  bool throw_into(std::exception_ptr e) {
    require("throw_into");
    return detail::throw_into(core_, std::move(e));
  }
  template <class E>
  bool throw_into(E e) {
    return throw_into(std::make_exception_ptr(std::move(e)));
  }

  /// Cooperative cancellation, as std::jthread's: the tasklet's stop state,
  /// made on first use (by any of these, by this_tasklet::get_stop_token,
  /// or at the first run of a callable that takes a std::stop_token). A
  /// stop request only sets the token and runs its std::stop_callbacks, on
  /// the caller; the tasklet decides when to return. kill() is the forced
  /// form. Returns true if this call made the request (as
  /// std::stop_source::request_stop); false on an empty handle.
  bool request_stop() { return core_ != nullptr && detail::request_stop(core_); }
  /// The tasklet's stop source (no stop state for an empty handle).
  std::stop_source get_stop_source() const {
    return core_ ? detail::stop_source_of(core_) : std::stop_source(std::nostopstate);
  }
  std::stop_token get_stop_token() const { return get_stop_source().get_token(); }

  bool joinable() const noexcept { return core_ != nullptr; }
  bool alive() const noexcept { return core_ != nullptr && state() != tasklet_state::done; }
  tasklet_state state() const noexcept {
    return core_ ? core_->state.load(std::memory_order_acquire) : tasklet_state::done;
  }
  tasklet_id id() const noexcept { return core_ ? core_->id : 0; }
  std::string name() const { return core_ ? detail::name_of(core_) : std::string(); }
  void set_name(std::string n) {
    require("set_name");
    detail::set_name(core_, std::move(n));
  }
  taiga::source_location spawn_site() const noexcept {
    return core_ ? detail::to_location(core_->site) : taiga::source_location();
  }

 private:
  void require(const char* what) const {
    if (core_ == nullptr)
      throw usage_error(std::string("taiga::tasklet::") + what + " on an empty handle");
  }
  void reset() noexcept {
    if (core_ != nullptr) detail::drop_handle(std::exchange(core_, nullptr));
  }
  detail::tasklet_core* core_ = nullptr;
};

namespace detail {
/// True when `fn(args...)` is spawned as `fn(token, args...)`: as with
/// std::jthread, a callable that accepts a std::stop_token first gets the
/// tasklet's (tasklet::request_stop).
template <class F, class... A>
inline constexpr bool takes_stop_token_v =
    std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<A>...>;

template <class F, class... A>
struct spawn_result : std::invoke_result<std::decay_t<F>, std::decay_t<A>...> {};
template <class F, class... A>
requires takes_stop_token_v<F, A...>
struct spawn_result<F, A...>
    : std::invoke_result<std::decay_t<F>, std::stop_token, std::decay_t<A>...> {
};
/// What a spawned `fn(args...)` returns (no type when it cannot be called:
/// the spawn overloads drop out).
template <class F, class... A>
using spawn_result_t = typename spawn_result<F, A...>::type;

/// The calling tasklet's stop token (this_tasklet::get_stop_token).
std::stop_token current_stop_token();

/// A spawn's callable and arguments, stored in the tasklet block. Not a
/// lambda capture: a captureless lambda captured by a lambda still takes a
/// byte (and its alignment's padding), which took spawn(fn, int)'s block
/// past its slab class.
template <class F, class... A>
struct bound_call {
  [[no_unique_address]] F fn;
  [[no_unique_address]] std::tuple<A...> args;
  spawn_result_t<F, A...> operator()() {
    return std::apply(
        [this](A&... a) -> spawn_result_t<F, A...> {
          if constexpr (takes_stop_token_v<F, A...>) {
            // The stop state is made on first use, here or by the first
            // request_stop: a stop requested before the first run is seen.
            return std::invoke(std::move(fn), current_stop_token(), std::move(a)...);
          } else {
            return std::invoke(std::move(fn), std::move(a)...);
          }
        },
        args);
  }
};

template <class F, class... A>
tasklet_core* make_tasklet(call_site site, F&& f, A&&... a) {
  using R = spawn_result_t<F, A...>;
  using body = bound_call<std::decay_t<F>, std::decay_t<A>...>;
  using B = tasklet_block<R, body>;
  B* b = B::make(body{std::forward<F>(f), std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)});
  b->site = site.record();
  return b;
}

/// Every spawn overload's body.
template <class F, class... A>
tasklet<spawn_result_t<F, A...>> spawn_at(runtime* rt, const spawn_options* o, call_site site,
                                          F&& f, A&&... a) {
  tasklet_core* c = make_tasklet(site, std::forward<F>(f), std::forward<A>(a)...);
  c->refs.store(2, std::memory_order_relaxed);  // the handle's and the runtime's
  submit(c, rt, o);
  return tasklet<spawn_result_t<F, A...>>(c);
}
}  // namespace detail

/// Spawns a tasklet running `fn(args...)` on the current runtime (the one
/// whose tasklet or worker calls it) and returns its handle, a
/// taiga::tasklet<R>. The arguments are moved into the tasklet. The call site
/// is recorded (reports and error messages name it); a wrapper may pass its
/// own caller's taiga::source_location after the arguments.
///
///     auto t = taiga::spawn([](int x) { return x * 2; }, 21);
///     int v = t.join();
///     auto u = taiga::spawn(taiga::spawn_options{.name = "reader"}, read_loop, fd);
///     t = taiga::spawn([] { return 7; });  // the old handle's tasklet is killed and joined
///
/// A callable that accepts a std::stop_token before its arguments gets the
/// tasklet's (as std::jthread does): `spawn([](std::stop_token st) { while
/// (!st.stop_requested()) ...; })`, stopped by tasklet::request_stop().
///
/// Also `spawn(options, fn, args...)`, `spawn(rt, fn, args...)` and
/// `spawn(rt, options, fn, args...)` (`rt`: a taiga::runtime, from any thread).
///
/// `spawn` is a set of function templates, one per argument count (up to
/// 10 arguments): the caller's site is a defaulted parameter after the
/// arguments, which a parameter pack would not leave room for.
#define TAIGA_SPAWN_LIST(...) __VA_ARGS__
#define TAIGA_SPAWN_OVERLOADS(TPARAMS, PARAMS, TYPES, ARGS)                                      \
  template <class F TAIGA_SPAWN_LIST TPARAMS>                                                    \
  tasklet<detail::spawn_result_t<F TAIGA_SPAWN_LIST TYPES>> spawn(                               \
      F&& f TAIGA_SPAWN_LIST PARAMS, detail::call_site site = detail::call_site::current()) {    \
    return detail::spawn_at<F TAIGA_SPAWN_LIST TYPES>(nullptr, nullptr, site,                    \
                                                      std::forward<F>(f) TAIGA_SPAWN_LIST ARGS); \
  }                                                                                              \
  template <class F TAIGA_SPAWN_LIST TPARAMS>                                                    \
  tasklet<detail::spawn_result_t<F TAIGA_SPAWN_LIST TYPES>> spawn(                               \
      const spawn_options& o, F&& f TAIGA_SPAWN_LIST PARAMS,                                     \
      detail::call_site site = detail::call_site::current()) {                                   \
    return detail::spawn_at<F TAIGA_SPAWN_LIST TYPES>(nullptr, &o, site,                         \
                                                      std::forward<F>(f) TAIGA_SPAWN_LIST ARGS); \
  }                                                                                              \
  template <class F TAIGA_SPAWN_LIST TPARAMS>                                                    \
  tasklet<detail::spawn_result_t<F TAIGA_SPAWN_LIST TYPES>> spawn(                               \
      runtime& rt, F&& f TAIGA_SPAWN_LIST PARAMS,                                                \
      detail::call_site site = detail::call_site::current()) {                                   \
    return detail::spawn_at<F TAIGA_SPAWN_LIST TYPES>(&rt, nullptr, site,                        \
                                                      std::forward<F>(f) TAIGA_SPAWN_LIST ARGS); \
  }                                                                                              \
  template <class F TAIGA_SPAWN_LIST TPARAMS>                                                    \
  tasklet<detail::spawn_result_t<F TAIGA_SPAWN_LIST TYPES>> spawn(                               \
      runtime& rt, const spawn_options& o, F&& f TAIGA_SPAWN_LIST PARAMS,                        \
      detail::call_site site = detail::call_site::current()) {                                   \
    return detail::spawn_at<F TAIGA_SPAWN_LIST TYPES>(&rt, &o, site,                             \
                                                      std::forward<F>(f) TAIGA_SPAWN_LIST ARGS); \
  }
TAIGA_SPAWN_OVERLOADS((), (), (), ())
TAIGA_SPAWN_OVERLOADS((, class A1), (, A1&& a1), (, A1), (, std::forward<A1>(a1)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2), (, A1&& a1, A2&& a2), (, A1, A2),
                      (, std::forward<A1>(a1), std::forward<A2>(a2)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3), (, A1&& a1, A2&& a2, A3&& a3),
                      (, A1, A2, A3),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3, class A4),
                      (, A1&& a1, A2&& a2, A3&& a3, A4&& a4), (, A1, A2, A3, A4),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3),
                       std::forward<A4>(a4)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3, class A4, class A5),
                      (, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5), (, A1, A2, A3, A4, A5),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3),
                       std::forward<A4>(a4), std::forward<A5>(a5)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3, class A4, class A5, class A6),
                      (, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6),
                      (, A1, A2, A3, A4, A5, A6),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3),
                       std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3, class A4, class A5, class A6, class A7),
                      (, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7),
                      (, A1, A2, A3, A4, A5, A6, A7),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3),
                       std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6),
                       std::forward<A7>(a7)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3, class A4, class A5, class A6, class A7,
                       class A8),
                      (, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, A8&& a8),
                      (, A1, A2, A3, A4, A5, A6, A7, A8),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3),
                       std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6),
                       std::forward<A7>(a7), std::forward<A8>(a8)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3, class A4, class A5, class A6, class A7,
                       class A8, class A9),
                      (, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, A8&& a8,
                       A9&& a9),
                      (, A1, A2, A3, A4, A5, A6, A7, A8, A9),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3),
                       std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6),
                       std::forward<A7>(a7), std::forward<A8>(a8), std::forward<A9>(a9)))
TAIGA_SPAWN_OVERLOADS((, class A1, class A2, class A3, class A4, class A5, class A6, class A7,
                       class A8, class A9, class A10),
                      (, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, A8&& a8,
                       A9&& a9, A10&& a10),
                      (, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10),
                      (, std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3),
                       std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6),
                       std::forward<A7>(a7), std::forward<A8>(a8), std::forward<A9>(a9),
                       std::forward<A10>(a10)))
#undef TAIGA_SPAWN_LIST
#undef TAIGA_SPAWN_OVERLOADS

/// spawn on a given worker of the current runtime (spawn_options::worker).
template <class F, class... A>
tasklet<detail::spawn_result_t<F, A...>> spawn_on(unsigned worker, F&& f, A&&... a) {
  spawn_options o;
  o.worker = static_cast<int>(worker);
  return detail::spawn_at(nullptr, &o, detail::call_site::current(), std::forward<F>(f),
                          std::forward<A>(a)...);
}

}  // namespace taiga
