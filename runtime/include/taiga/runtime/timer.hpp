#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <taiga/runtime/source_location.hpp>
#include <taiga/runtime/tasklet.hpp>

namespace taiga {

namespace detail {
struct scheduled_call;
}

/// A callback scheduled with call_soon/call_later/call_at. The callback runs
/// as a tasklet of its own. Destroying the handle does not cancel it.
class timer_handle {
 public:
  timer_handle() = default;
  explicit timer_handle(std::shared_ptr<detail::scheduled_call> s) : s_(std::move(s)) {}
  /// Cancels the call if it has not started: returns true if this call
  /// prevented it. Safe from any thread.
  bool cancel();
  /// True once the callback's tasklet has been started (or cancelled).
  bool fired() const;

 private:
  std::shared_ptr<detail::scheduled_call> s_;
};

namespace detail {
timer_handle schedule_call(std::function<void()> fn, std::chrono::steady_clock::time_point when,
                           call_site site, runtime* rt);
}

/// Runs `fn` as a new tasklet as soon as possible (after the ones ready now).
inline timer_handle call_soon(std::function<void()> fn,
                              detail::call_site site = detail::call_site::current()) {
  return detail::schedule_call(std::move(fn), std::chrono::steady_clock::time_point::min(), site,
                               nullptr);
}
/// Runs `fn` as a new tasklet at `when`.
inline timer_handle call_at(std::chrono::steady_clock::time_point when, std::function<void()> fn,
                            detail::call_site site = detail::call_site::current()) {
  return detail::schedule_call(std::move(fn), when, site, nullptr);
}
/// Runs `fn` as a new tasklet after `delay`.
template <class Rep, class Period>
timer_handle call_later(std::chrono::duration<Rep, Period> delay, std::function<void()> fn,
                        detail::call_site site = detail::call_site::current()) {
  return detail::schedule_call(std::move(fn),
                               std::chrono::steady_clock::now() +
                                   std::chrono::ceil<std::chrono::steady_clock::duration>(delay),
                               site, nullptr);
}

}  // namespace taiga
