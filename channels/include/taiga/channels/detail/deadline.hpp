// Installed because channel and sync templates use it; users must not name
// taiga::detail. Deadlines: every timed operation of the channels module
// takes a duration or any clock's time point and waits on the steady clock.
#pragma once

#include <chrono>
#include <type_traits>

namespace taiga::detail {

using sync_clock = std::chrono::steady_clock;

/// now + d on the steady clock, saturated: a deadline too far to represent
/// becomes time_point::max() (waits forever).
template <class Rep, class Period>
sync_clock::time_point deadline_after(const std::chrono::duration<Rep, Period>& d) {
  const auto now = sync_clock::now();
  if (d <= d.zero()) return now;
  using ld_ns = std::chrono::duration<long double, std::nano>;
  if (ld_ns(d) >= ld_ns(sync_clock::time_point::max() - now)) return sync_clock::time_point::max();
  return now + std::chrono::ceil<sync_clock::duration>(d);
}

/// A deadline of any clock, as a steady_clock deadline.
template <class Clock, class Duration>
sync_clock::time_point to_steady(const std::chrono::time_point<Clock, Duration>& t) {
  if constexpr (std::is_same_v<Clock, sync_clock>) {
    using ld_ns = std::chrono::duration<long double, std::nano>;
    if (ld_ns(t.time_since_epoch()) >= ld_ns(sync_clock::duration::max()))
      return sync_clock::time_point::max();
    return std::chrono::ceil<sync_clock::duration>(t);
  } else {
    return deadline_after(t - Clock::now());
  }
}

}  // namespace taiga::detail
