#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <taiga/runtime/detail/park.hpp>
#include <type_traits>

namespace taiga {
namespace detail {
/// Runs `job` on the runtime's blocking pool (or a plain thread outside any
/// runtime). The job must not throw.
void submit_blocking(std::function<void()> job);

struct blocking_state_base {
  spinlock lock;
  wait_point* waiter = nullptr;
  bool done = false;
  std::exception_ptr error;
};
}  // namespace detail

/// Runs `fn()` on a separate pool of threads (never a worker), parks the
/// calling tasklet meanwhile, and returns fn's result or rethrows its
/// exception (evergreen's thread-pool executor, tokio's spawn_blocking). Use
/// it for calls that block the OS thread: file I/O, DNS, sleeping C
/// libraries. The pool is bounded (runtime_config::blocking_threads); extra
/// calls queue. If the calling tasklet is killed while it waits, it unwinds
/// at once; fn still runs to completion on its thread and its result is
/// dropped. Called from a plain thread, it simply runs fn.
template <class F>
auto blocking(F&& fn) -> std::invoke_result_t<std::decay_t<F>> {
  using R = std::invoke_result_t<std::decay_t<F>>;
  if (detail::current_tasklet() == nullptr) return std::forward<F>(fn)();
  struct state : detail::blocking_state_base {
    std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> value;
  };
  auto st = std::make_shared<state>();
  detail::wait_point w;
  detail::prepare_wait(w, park_reason::blocking_call, st.get());
  st->waiter = &w;
  auto job = [st, f = std::forward<F>(fn)]() mutable {
    try {
      if constexpr (std::is_void_v<R>) {
        std::move(f)();
        st->value.emplace(true);
      } else {
        st->value.emplace(std::move(f)());
      }
    } catch (...) {
      st->error = std::current_exception();
    }
    std::lock_guard lk(st->lock);
    st->done = true;
    if (st->waiter != nullptr && detail::claim(*st->waiter)) detail::complete(*st->waiter);
    st->waiter = nullptr;
  };
  try {
    detail::submit_blocking(std::move(job));
  } catch (...) {
    detail::cancel_wait(w);
    throw;
  }
  detail::wake_status s = detail::wait(w);
  if (s != detail::wake_status::signaled) {
    std::lock_guard lk(st->lock);
    st->waiter = nullptr;
  }
  if (s == detail::wake_status::interrupted) detail::throw_interrupt();
  if (st->error) std::rethrow_exception(st->error);
  if constexpr (!std::is_void_v<R>) return std::move(*st->value);
}

}  // namespace taiga
