// sysmon's jobs (runtime/src/sysmon.cpp): deadlock reports, the watchdog,
// and waking an idle worker for a busy worker's overdue timers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <taiga/runtime.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <thread>

#include "tasklets_fixture.hpp"

using namespace std::chrono_literals;

TEST_P(tasklets, deadlock_is_reported_with_parked_tasklets_and_spawn_sites) {
  rt_.reset();
  std::string report;
  taiga::runtime_config c;
  c.workers = GetParam();
  c.deadlock_handler = [&](const taiga::deadlock_report& r) { report = r.text(); };
  rt_.emplace(std::move(c));
  static const int gate = 0;  // what the two stuck tasklets wait on
  EXPECT_THROW(rt().run([] {
    auto stuck_on_gate = [] {
      // Waits on something nobody will ever signal.
      taiga::detail::wait_point w;
      taiga::detail::prepare_wait(w, "nothing", &gate);
      if (taiga::detail::wait(w) == taiga::detail::wake_status::interrupted)
        taiga::detail::throw_interrupt();
    };
    auto stuck = taiga::spawn(taiga::spawn_options{.name = "stuck-one"}, stuck_on_gate);
    auto other = taiga::spawn(taiga::spawn_options{.name = "stuck-two"}, stuck_on_gate);
    stuck.join();
  }),
               taiga::deadlock_error);
  EXPECT_NE(report.find("deadlock"), std::string::npos) << report;
  EXPECT_NE(report.find("stuck-one"), std::string::npos) << report;
  EXPECT_NE(report.find("stuck-two"), std::string::npos) << report;
  EXPECT_NE(report.find("sysmon_test.cpp"), std::string::npos) << report;
  EXPECT_NE(report.find("join"), std::string::npos) << report;
  // Both wait on the same object, and the report says so.
  std::ostringstream on_gate;
  on_gate << "parked on nothing (" << static_cast<const void*>(&gate) << ")";
  std::size_t first = report.find(on_gate.str());
  ASSERT_NE(first, std::string::npos) << report;
  EXPECT_NE(report.find(on_gate.str(), first + 1), std::string::npos) << report;
}

TEST_P(tasklets, no_deadlock_report_while_a_keep_alive_guard_is_held) {
  std::atomic<bool> done{false};
  auto guard = std::make_unique<taiga::runtime::keep_alive_guard>(rt());
  auto t = taiga::spawn(rt(), [&] {
    taiga::detail::wait_point w;
    taiga::detail::prepare_wait(w, "outside thread", nullptr);
    auto s = taiga::detail::wait(w);
    if (s == taiga::detail::wake_status::interrupted) taiga::detail::throw_interrupt();
    done = true;
  });
  std::this_thread::sleep_for(300ms);  // several sysmon checks
  EXPECT_FALSE(done.load());
  EXPECT_TRUE(t.alive());
  t.kill();
  EXPECT_THROW(t.join(), taiga::tasklet_killed);
}

TEST(scheduler_extra, watchdog_reports_a_tasklet_that_never_parks) {
  std::atomic<int> reports{0};
  std::string who;
  std::mutex mu;
  taiga::runtime_config c;
  c.workers = 2;
  c.watchdog_threshold = 50ms;
  c.watchdog_handler = [&](const taiga::tasklet_info& info, std::chrono::milliseconds ran) {
    std::lock_guard lk(mu);
    who = info.name;
    EXPECT_GE(ran.count(), 50);
    reports.fetch_add(1);
  };
  taiga::runtime rt(std::move(c));
  auto hog = taiga::spawn(rt, taiga::spawn_options{.name = "hog"}, [] {
    auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
    }
  });
  hog.join();
  EXPECT_GE(reports.load(), 1);
  std::lock_guard lk(mu);
  EXPECT_EQ(who, "hog");
}

TEST(scheduler_extra, timers_of_a_busy_worker_still_fire) {
  // Worker A hogs the CPU; a sleeper whose timer lives on A must still wake
  // on time, because idle workers run other workers' overdue timers.
  taiga::runtime rt(taiga::runtime_config{.workers = 2, .watchdog_threshold = 0ms});
  auto late = rt.run([] {
    auto sleeper = taiga::spawn([] {
      auto t0 = std::chrono::steady_clock::now();
      taiga::this_tasklet::sleep_for(20ms);
      return std::chrono::steady_clock::now() - t0;
    });
    taiga::test::wait_parked(sleeper);
    auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
    }
    return sleeper.join();
  });
  EXPECT_LT(late, 250ms);
}
