// Timers: sleep_for / sleep_until, call_soon / call_later / call_at and
// cancellation from any thread, timeout_scope.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

#include "runtime_fixture.hpp"
#include "tasklets_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::with_workers;

class timers : public with_workers {};
TAIGA_WORKER_COUNTS(timers);

TEST_P(timers, call_soon_runs_as_a_tasklet) {
  std::atomic<bool> in_tasklet{false};
  rt().run([&] {
    auto h = taiga::call_soon([&] { in_tasklet = taiga::this_tasklet::in_tasklet(); });
    while (!in_tasklet.load()) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_TRUE(h.fired());
    EXPECT_FALSE(h.cancel());
  });
}

TEST_P(timers, call_later_fires_after_the_delay) {
  std::atomic<std::int64_t> waited_ms{-1};
  rt().run([&] {
    auto t0 = std::chrono::steady_clock::now();
    taiga::call_later(15ms, [&, t0] {
      waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
    });
    while (waited_ms.load() < 0) taiga::this_tasklet::sleep_for(1ms);
  });
  EXPECT_GE(waited_ms.load(), 15);
}

TEST_P(timers, cancel_prevents_the_call_even_from_another_thread) {
  std::atomic<int> calls{0};
  rt().run([&] {
    auto h = taiga::call_at(std::chrono::steady_clock::now() + 30ms, [&] { calls.fetch_add(1); });
    bool cancelled = false;
    std::thread other([&] { cancelled = h.cancel(); });
    other.join();
    EXPECT_TRUE(cancelled);
    EXPECT_FALSE(h.cancel());
    taiga::this_tasklet::sleep_for(60ms);
  });
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(timers, many_cancelled_timeouts_leave_nothing_behind) {
  rt().run([&] {
    std::vector<taiga::timer_handle> hs;
    for (int i = 0; i < 1000; ++i) hs.push_back(taiga::call_later(1h, [] {}));
    for (auto& h : hs) EXPECT_TRUE(h.cancel());
    taiga::this_tasklet::sleep_for(2ms);
  });
}

TEST_P(timers, call_later_from_an_outside_thread) {
  std::atomic<bool> ran{false};
  auto guard = rt().keep_alive();
  std::thread outside([&] {
    auto rt_ptr = &rt();
    // outside threads schedule on a runtime through a tasklet spawned there
    taiga::spawn(*rt_ptr, [&] { taiga::call_later(5ms, [&] { ran = true; }); }).join();
  });
  outside.join();
  for (int i = 0; i < 500 && !ran.load(); ++i) std::this_thread::sleep_for(2ms);
  EXPECT_TRUE(ran.load());
}

// Regression: a call_later still pending at shutdown is scheduled only by its
// timer; shutdown used to wait for it forever.
TEST(timers_shutdown, pending_call_later_does_not_hold_up_shutdown_and_never_runs) {
  std::atomic<int> calls{0};
  {
    taiga::runtime rt(taiga::runtime_config{.workers = 2});
    taiga::spawn(rt, [&] { taiga::call_later(1h, [&] { calls.fetch_add(1); }); }).join();
    auto t0 = std::chrono::steady_clock::now();
    rt.shutdown();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(rt.report().live_tasklets, 0u);
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(timers, timeout_scope_makes_parking_calls_fail_with_timeout_error) {
  rt().run([] {
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(
        {
          taiga::timeout_scope scope(10ms);
          taiga::this_tasklet::sleep_for(1h);
        },
        taiga::timeout_error);
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(took, 10ms);
    EXPECT_LT(took, 5s);
    // A join inside a scope times out too; the joined tasklet is untouched.
    auto slow = taiga::spawn([] {
      taiga::this_tasklet::sleep_for(50ms);
      return 1;
    });
    {
      taiga::timeout_scope scope(5ms);
      EXPECT_THROW(slow.join(), taiga::timeout_error);
      EXPECT_TRUE(scope.expired());
    }
    EXPECT_EQ(slow.join(), 1);  // outside the scope: waits normally
  });
}

TEST_P(timers, nested_timeout_scopes_use_the_earliest_deadline_and_restore) {
  rt().run([] {
    taiga::timeout_scope outer(1h);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(
        {
          taiga::timeout_scope inner(5ms);
          taiga::this_tasklet::sleep_for(1h);
        },
        taiga::timeout_error);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    // Back under the outer scope only: a short sleep completes.
    taiga::this_tasklet::sleep_for(1ms);
    // An expired scope fails the next parking call at once.
    taiga::timeout_scope past(std::chrono::steady_clock::now() - 1ms);
    EXPECT_THROW(taiga::this_tasklet::sleep_for(1ms), taiga::timeout_error);
  });
}

TEST_P(tasklets, sleep_for_waits_at_least_the_duration) {
  rt().run([] {
    auto t0 = std::chrono::steady_clock::now();
    taiga::this_tasklet::sleep_for(20ms);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  });
}

TEST_P(tasklets, many_sleepers_wake_in_deadline_order) {
  // One worker's timers fire in deadline order. Across workers the order is
  // only as good as the OS scheduling of the worker threads, so there the
  // test checks only that nobody woke early.
  struct wake {
    int index;
    std::chrono::steady_clock::time_point at, due;
  };
  auto woke = rt().run([] {
    std::vector<taiga::tasklet<void>> ts;
    auto seen = std::make_shared<std::vector<wake>>();
    auto mu = std::make_shared<std::mutex>();
    auto base = std::chrono::steady_clock::now() + 20ms;
    for (int i = 9; i >= 0; --i)
      ts.push_back(taiga::spawn([=] {
        auto due = base + std::chrono::milliseconds(3 * i);
        taiga::this_tasklet::sleep_until(due);
        auto now = std::chrono::steady_clock::now();
        std::lock_guard lk(*mu);
        seen->push_back({i, now, due});
      }));
    for (auto& t : ts) t.join();
    return *seen;
  });
  ASSERT_EQ(woke.size(), 10u);
  for (auto& w : woke) EXPECT_GE(w.at, w.due) << "tasklet " << w.index << " woke early";
  if (GetParam() == 1) {
    for (int i = 0; i < 10; ++i) EXPECT_EQ(woke[static_cast<std::size_t>(i)].index, i);
  }
}
