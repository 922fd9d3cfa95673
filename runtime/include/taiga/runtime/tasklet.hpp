#pragma once

#include <functional>
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
/// A handle that is destroyed (or assigned over) while still joinable kills
/// its tasklet and then joins it: std::jthread requests a stop and joins, and
/// a kill is the tasklet's stop request (it is raised at the tasklet's next
/// park point, so its destructors run). Call detach() to let it run on.
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
  /// empty. @suspends yes (a plain thread blocks).
  R join() {
    require("join");
    detail::wait_done(core_);
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
template <class F, class... A>
using spawn_result_t = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;

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
          return std::invoke(std::move(fn), std::move(a)...);
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
}  // namespace detail

/// Spawns a tasklet running `fn(args...)` on the current runtime (the one
/// whose tasklet or worker calls it) and returns its handle, a
/// taiga::tasklet<R>. The arguments are moved into the tasklet. The call site
/// is recorded (reports and error messages name it).
///
///     auto t = taiga::spawn([](int x) { return x * 2; }, 21);
///     int v = t.join();
///     auto u = taiga::spawn(taiga::spawn_options{.name = "reader"}, read_loop, fd);
///
/// `spawn` is a class template so that it can take a trailing
/// taiga::source_location after the argument pack; it converts to (and is a)
/// tasklet<R>.
template <class F, class... A>
class spawn : public tasklet<detail::spawn_result_t<F, A...>> {
  using base = tasklet<detail::spawn_result_t<F, A...>>;

 public:
  spawn(F&& f, A&&... a, detail::call_site site = detail::call_site::current())
      : base(start(nullptr, nullptr, site, std::forward<F>(f), std::forward<A>(a)...)) {}
  spawn(const spawn_options& o, F&& f, A&&... a,
        detail::call_site site = detail::call_site::current())
      : base(start(nullptr, &o, site, std::forward<F>(f), std::forward<A>(a)...)) {}
  spawn(runtime& rt, F&& f, A&&... a, detail::call_site site = detail::call_site::current())
      : base(start(&rt, nullptr, site, std::forward<F>(f), std::forward<A>(a)...)) {}
  spawn(runtime& rt, const spawn_options& o, F&& f, A&&... a,
        detail::call_site site = detail::call_site::current())
      : base(start(&rt, &o, site, std::forward<F>(f), std::forward<A>(a)...)) {}

 private:
  static detail::tasklet_core* start(runtime* rt, const spawn_options* o, detail::call_site site,
                                     F&& f, A&&... a) {
    detail::tasklet_core* c = detail::make_tasklet(site, std::forward<F>(f), std::forward<A>(a)...);
    c->refs.store(2, std::memory_order_relaxed);  // the handle's and the runtime's
    detail::submit(c, rt, o);
    return c;
  }
};

template <class F, class... A>
spawn(F&&, A&&...) -> spawn<F, A...>;
template <class F, class... A>
spawn(const spawn_options&, F&&, A&&...) -> spawn<F, A...>;
template <class F, class... A>
spawn(spawn_options&, F&&, A&&...) -> spawn<F, A...>;
template <class F, class... A>
spawn(spawn_options&&, F&&, A&&...) -> spawn<F, A...>;
template <class F, class... A>
spawn(runtime&, F&&, A&&...) -> spawn<F, A...>;
template <class F, class... A>
spawn(runtime&, const spawn_options&, F&&, A&&...) -> spawn<F, A...>;
template <class F, class... A>
spawn(runtime&, spawn_options&, F&&, A&&...) -> spawn<F, A...>;
template <class F, class... A>
spawn(runtime&, spawn_options&&, F&&, A&&...) -> spawn<F, A...>;

/// spawn on a given worker of the current runtime (spawn_options::worker).
template <class F, class... A>
auto spawn_on(unsigned worker, F&& f, A&&... a) {
  spawn_options o;
  o.worker = static_cast<int>(worker);
  return tasklet<detail::spawn_result_t<F, A...>>(
      spawn<F, A...>(o, std::forward<F>(f), std::forward<A>(a)...));
}

}  // namespace taiga
