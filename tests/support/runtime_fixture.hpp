// Test support: a runtime per test at 1, 2, 4 and 8 workers (oversubscribed
// on our 2-core machines on purpose), and a teardown that checks nothing
// leaked (goleak's idea; libuv's MAKE_VALGRIND_HAPPY).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <taiga/runtime.hpp>

namespace taiga::test {

/// Work scale: sanitizer builds run smaller loops.
inline long scaled(long n) {
#if defined(TAIGA_TEST_SANITIZED)
  return n / 20 > 0 ? n / 20 : 1;
#else
  return n;
#endif
}

/// Waits (parking) until `t` is parked: sleeps of a few milliseconds are not
/// enough on a loaded CI machine or under a sanitizer.
template <class R>
void wait_parked(const tasklet<R>& t) {
  while (t.state() != tasklet_state::parked) this_tasklet::sleep_for(std::chrono::milliseconds(1));
}

inline void expect_clean(runtime& rt) {
  // Tasklets that finished may still be returning their stacks on their
  // worker; give them a moment.
  for (int i = 0; i < 500 && (rt.report().live_tasklets || rt.report().stacks_outstanding ||
                              rt.report().blocking_in_flight);
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto r = rt.report();
  EXPECT_EQ(r.live_tasklets, 0u);
  EXPECT_EQ(r.stacks_outstanding, 0u);
  EXPECT_EQ(r.timers_pending, 0u);
  EXPECT_EQ(r.blocking_in_flight, 0u);
}

class with_workers : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override {
    runtime_config c;
    c.workers = GetParam();
    c.name = "test";
    rt_.emplace(std::move(c));
  }
  void TearDown() override {
    expect_clean(*rt_);
    rt_.reset();
  }
  runtime& rt() { return *rt_; }
  std::optional<runtime> rt_;
};

inline std::string worker_name(const ::testing::TestParamInfo<unsigned>& p) {
  return std::to_string(p.param) + "w";
}

#define TAIGA_WORKER_COUNTS(suite)                                            \
  INSTANTIATE_TEST_SUITE_P(workers, suite, ::testing::Values(1u, 2u, 4u, 8u), \
                           taiga::test::worker_name)

}  // namespace taiga::test
