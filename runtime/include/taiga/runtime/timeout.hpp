#pragma once

#include <chrono>
#include <cstdint>

namespace taiga {

/// A scoped deadline (evergreen's Timeout): while it lives, every parking
/// call of the calling tasklet (or plain thread) that would still be waiting
/// at the deadline fails with taiga::timeout_error instead: channel
/// operations, joins, sleeps, locks, blocking() waits. Scopes nest; the
/// earliest deadline wins. Calls with their own timeout (try_x_for) keep
/// returning their timeout status when theirs comes first.
///
///     try {
///       taiga::timeout_scope t(100ms);
///       auto v = ch.receive();   // throws taiga::timeout_error after 100 ms
///     } catch (const taiga::timeout_error&) { ... }
///
/// The first scope a tasklet opens allocates a small record for it (kept for
/// the tasklet's life), so the constructor can throw std::bad_alloc; the
/// destructor never allocates.
class timeout_scope {
 public:
  explicit timeout_scope(std::chrono::steady_clock::time_point deadline);
  template <class Rep, class Period>
  explicit timeout_scope(std::chrono::duration<Rep, Period> d)
      : timeout_scope(std::chrono::steady_clock::now() +
                      std::chrono::ceil<std::chrono::steady_clock::duration>(d)) {}
  ~timeout_scope();
  timeout_scope(const timeout_scope&) = delete;
  timeout_scope& operator=(const timeout_scope&) = delete;

  /// The deadline of this scope has passed.
  bool expired() const noexcept;

 private:
  std::int64_t deadline_;
  std::int64_t saved_;
};

}  // namespace taiga
