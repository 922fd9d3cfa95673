// Runtime instances: several at once, taiga::run, shutdown (kill and
// wait), and embedded mode (zero workers: the caller pumps).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <taiga/runtime.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <thread>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;

TEST(runtime_instances, two_runtimes_at_once_and_restart) {
  for (int round = 0; round < 3; ++round) {
    taiga::runtime a(taiga::runtime_config{.workers = 2});
    taiga::runtime b(taiga::runtime_config{.workers = 1});
    auto x = taiga::spawn(a, [] { return taiga::runtime::current(); });
    auto y = taiga::spawn(b, [] { return taiga::runtime::current(); });
    EXPECT_EQ(x.join(), &a);
    EXPECT_EQ(y.join(), &b);
  }
}

TEST(runtime_instances, spawn_outside_any_runtime_is_a_usage_error) {
  EXPECT_THROW(taiga::spawn([] {}), taiga::usage_error);
}

TEST(runtime_instances, taiga_run_returns_value) {
  EXPECT_EQ(taiga::run([] { return 3; }, taiga::runtime_config{.workers = 2}), 3);
}

TEST(scheduler_extra, shutdown_kill_unwinds_live_tasklets_and_a_new_runtime_starts) {
  std::atomic<int> unwound{0};
  std::atomic<int> started{0};
  {
    taiga::runtime rt(taiga::runtime_config{.workers = 2});
    for (int i = 0; i < 100; ++i)
      taiga::spawn(rt, [&] {
        struct g {
          std::atomic<int>& u;
          ~g() { u.fetch_add(1); }
        } guard{unwound};
        started.fetch_add(1);
        taiga::this_tasklet::sleep_for(1h);
      }).detach();
    // All started (a kill before the start skips the body, guard and all:
    // 20 ms of sleep here were not always enough under TSan).
    while (started.load() < 100) std::this_thread::sleep_for(1ms);
    rt.shutdown(taiga::shutdown_mode::kill);
    EXPECT_EQ(rt.report().live_tasklets, 0u);
    EXPECT_EQ(rt.report().stacks_outstanding, 0u);
  }
  EXPECT_EQ(unwound.load(), 100);
  taiga::runtime again(taiga::runtime_config{.workers = 2});
  EXPECT_EQ(taiga::spawn(again, [] { return 1; }).join(), 1);
}

TEST(scheduler_extra, shutdown_wait_lets_tasklets_finish) {
  std::atomic<int> finished{0};
  taiga::runtime rt(taiga::runtime_config{.workers = 2});
  for (int i = 0; i < 50; ++i)
    taiga::spawn(rt, [&] {
      taiga::this_tasklet::sleep_for(10ms);
      finished.fetch_add(1);
    }).detach();
  rt.shutdown(taiga::shutdown_mode::wait);
  EXPECT_EQ(finished.load(), 50);
  EXPECT_THROW(taiga::spawn(rt, [] {}), taiga::usage_error);
}

TEST(scheduler_extra, shutdown_from_inside_is_a_usage_error) {
  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  rt.run([&] { EXPECT_THROW(rt.shutdown(), taiga::usage_error); });
}

TEST(embedded, run_once_and_run_until_idle_pump_on_the_calling_thread) {
  taiga::runtime rt(taiga::runtime_config{.workers = 0});
  EXPECT_EQ(rt.worker_count(), 0u);
  std::vector<int> log;
  auto a = taiga::spawn(rt, [&] {
    log.push_back(1);
    taiga::this_tasklet::yield();
    log.push_back(3);
  });
  auto b = taiga::spawn(rt, [&] {
    log.push_back(2);
    taiga::this_tasklet::yield();
    log.push_back(4);
  });
  EXPECT_EQ(rt.run_once(), 2u);  // each ready tasklet once
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_GE(rt.run_until_idle(), 2u);
  EXPECT_EQ(log, (std::vector<int>{1, 2, 3, 4}));
  a.join();
  b.join();
  EXPECT_EQ(rt.run_once(), 0u);
}

TEST(embedded, run_drives_sleepers_and_blocking_calls) {
  taiga::runtime rt(taiga::runtime_config{.workers = 0});
  int v = rt.run([] {
    auto t = taiga::spawn([] {
      taiga::this_tasklet::sleep_for(5ms);
      return taiga::blocking([] { return 20; });
    });
    return t.join() + 1;
  });
  EXPECT_EQ(v, 21);
  taiga::test::expect_clean(rt);
}

TEST(embedded, deadlock_in_embedded_mode_is_reported) {
  taiga::runtime_config c;
  c.workers = 0;
  std::string text;
  c.deadlock_handler = [&](const taiga::deadlock_report& r) { text = r.text(); };
  taiga::runtime rt(std::move(c));
  EXPECT_THROW(rt.run([] {
    taiga::detail::wait_point w;
    taiga::detail::prepare_wait(w, "forever", nullptr);
    if (taiga::detail::wait(w) == taiga::detail::wake_status::interrupted)
      taiga::detail::throw_interrupt();
  }),
               taiga::deadlock_error);
  EXPECT_NE(text.find("forever"), std::string::npos);
}
