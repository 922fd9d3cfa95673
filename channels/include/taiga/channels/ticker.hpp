#pragma once

#include <chrono>
#include <memory>
#include <taiga/channels/channel.hpp>

namespace taiga {

/// A channel that receives the time every `period` (Go's time.Ticker). The
/// channel buffers one tick: a reader slower than the period gets the
/// ticks it can take, the others are dropped, and the next tick stays on
/// the original grid (no drift). Destroying the ticker, or stop(), ends the
/// ticks; the channel is not closed (as in Go), so a select on it simply
/// no longer wakes. Made inside a runtime (a tasklet, or a thread inside
/// runtime::run). For one deadline in a select, `after(d)` costs less.
class ticker {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  /// Starts ticking: the first tick comes `period` from now.
  /// @throws usage_error if `period` is not positive, or outside a runtime.
  explicit ticker(std::chrono::nanoseconds period);
  ~ticker();
  ticker(const ticker&) = delete;
  ticker& operator=(const ticker&) = delete;

  /// The channel the ticks arrive on (receive, select on_receive).
  const taiga::channel<time_point>& ticks() const noexcept;
  /// No more ticks after this returns (a tick already buffered stays).
  void stop() noexcept;
  /// Ticks every `period` again, the first `period` from now.
  void reset(std::chrono::nanoseconds period);

  struct state;

 private:
  std::shared_ptr<state> s_;
};

}  // namespace taiga
