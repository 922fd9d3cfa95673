// Errors no join() will see: detached tasklets and dropped handles, the
// runtime's error handler (which may park) and the default one.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <taiga/runtime.hpp>
#include <thread>

#include "tasklets_fixture.hpp"

using namespace std::chrono_literals;

// An error no join() will see goes to the error handler, as a detached
// tasklet's does; a tasklet killed by the handle's destructor is silent.
TEST_P(tasklets, a_dropped_handle_sends_the_error_to_the_error_handler) {
  rt_.reset();
  std::atomic<int> calls{0};
  std::string seen;
  taiga::runtime_config c;
  c.workers = GetParam();
  c.error_handler = [&](const taiga::tasklet_info& info, std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      seen = info.name + ": " + ex.what();
    }
    calls.fetch_add(1);
  };
  rt_.emplace(std::move(c));
  rt().run([&] {
    {
      auto t = taiga::spawn(taiga::spawn_options{.name = "dropped"},
                            [] { throw std::runtime_error("unjoined"); });
      while (t.state() != taiga::tasklet_state::done) taiga::this_tasklet::sleep_for(1ms);
    }
    EXPECT_EQ(calls.load(), 1);
    {
      auto quiet = taiga::spawn([] { taiga::this_tasklet::sleep_for(1h); });
    }  // killed
    {  // threw while being killed: reported
      auto t = taiga::spawn([] {
        try {
          taiga::this_tasklet::sleep_for(1h);
        } catch (const taiga::tasklet_exit&) {
          throw std::logic_error("from the unwind");
        }
      });
      taiga::test::wait_parked(t);
    }
  });
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(seen, ": from the unwind");
}

// The default error handler: the tasklet (name, spawn site) and the
// exception (type demangled, message), then std::terminate with the
// exception active, as for one escaping a std::thread.
TEST(tasklet, the_default_error_handler_names_the_tasklet_and_terminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        taiga::run(
            [] {
              taiga::spawn(taiga::spawn_options{.name = "doomed"}, [] {
                throw std::runtime_error("oops");
              }).detach();
              taiga::this_tasklet::sleep_for(10s);
            },
            taiga::runtime_config{.workers = 1});
      },
      "taiga: detached tasklet #[0-9]+ 'doomed' \\(spawned at .*error_handler_test.cpp:[0-9]+.*\\) "
      "ended with an uncaught exception: std::runtime_error: oops");
  EXPECT_DEATH(
      {
        taiga::run(
            [] {
              auto t = taiga::spawn([] { throw std::logic_error("never joined"); });
              while (t.state() != taiga::tasklet_state::done) taiga::this_tasklet::sleep_for(1ms);
            },  // ~t
            taiga::runtime_config{.workers = 1});
      },
      "taiga: tasklet #[0-9]+ \\(spawned at .*error_handler_test.cpp:[0-9]+.*\\) ended with an "
      "uncaught "
      "exception, and its "
      "handle was destroyed without join\\(\\): std::logic_error: never joined");
}

// A handle may outlive its runtime: join() still returns what the tasklet
// left, and an error nobody joins is still reported (by the default
// handler: the runtime's own went with it), not read from a dead runtime.
TEST(tasklet, a_handle_that_outlives_its_runtime_still_joins_and_reports) {
  taiga::tasklet<int> ok;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    ok = taiga::spawn(rt, [] { return 42; });
    while (ok.state() != taiga::tasklet_state::done) std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(ok.join(), 42);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        taiga::tasklet<void> orphan;
        {
          taiga::runtime_config c{.workers = 1};
          c.error_handler = [](const taiga::tasklet_info&, std::exception_ptr) {
            std::fputs("the dead runtime's handler ran\n", stderr);
          };
          taiga::runtime rt(std::move(c));
          orphan = taiga::spawn(rt, [] { throw std::runtime_error("orphan"); });
          while (orphan.state() != taiga::tasklet_state::done) std::this_thread::sleep_for(1ms);
        }
      },  // ~orphan, after ~rt
      "handle was destroyed without join\\(\\): std::runtime_error: orphan");
}

TEST_P(tasklets, detached_uncaught_exception_goes_to_error_handler) {
  rt_.reset();
  std::atomic<int> calls{0};
  std::string seen_name, seen_what;
  unsigned seen_line = 0;
  taiga::runtime_config c;
  c.workers = GetParam();
  c.error_handler = [&](const taiga::tasklet_info& info, std::exception_ptr e) {
    seen_name = info.name;
    seen_line = info.spawn_site.line();
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      seen_what = ex.what();
    }
    calls.fetch_add(1);
  };
  rt_.emplace(std::move(c));
  unsigned line = 0;
  rt().run([&] {
    line = __LINE__ + 1;
    taiga::spawn(taiga::spawn_options{.name = "doomed"}, [] {
      throw std::runtime_error("oops");
    }).detach();
    while (calls.load() == 0) taiga::this_tasklet::sleep_for(1ms);
  });
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(seen_name, "doomed");
  EXPECT_EQ(seen_what, "oops");
  EXPECT_GE(seen_line, line);  // the call spans a few lines
  EXPECT_LE(seen_line, line + 4);
}

// The error handler runs on the dying tasklet and may park (to log through a
// channel, say). Reports taken meanwhile see it parked and read its frame
// safely; afterwards it ends like any other tasklet.
TEST_P(tasklets, an_error_handler_may_park) {
  rt_.reset();
  std::atomic<int> calls{0};
  taiga::runtime_config c;
  c.workers = GetParam();
  c.error_handler = [&](const taiga::tasklet_info&, std::exception_ptr) {
    taiga::this_tasklet::sleep_for(2ms);
    calls.fetch_add(1);
  };
  rt_.emplace(std::move(c));
  std::atomic<bool> stop{false};
  std::thread dumper([&] {
    while (!stop.load()) {
      std::ostringstream os;
      rt().dump(os);
    }
  });
  constexpr int n = 20;
  rt().run([&] {
    for (int i = 0; i < n; ++i) taiga::spawn([] { throw std::runtime_error("logged"); }).detach();
    while (calls.load() < n) taiga::this_tasklet::sleep_for(1ms);
  });
  stop = true;
  dumper.join();
  EXPECT_EQ(calls.load(), n);
  for (int i = 0; i < 2000 && rt().report().live_tasklets != 0; ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(rt().report().live_tasklets, 0u);
}

// A shutdown kills a tasklet whose error handler is parked: the handler ends
// early and quietly, not with tasklet_exit escaping the dying tasklet.
TEST_P(tasklets, a_shutdown_cuts_a_parked_error_handler_short) {
  rt_.reset();
  std::atomic<int> started{0}, finished{0};
  taiga::runtime_config c;
  c.workers = GetParam();
  c.error_handler = [&](const taiga::tasklet_info&, std::exception_ptr) {
    started.fetch_add(1);
    taiga::this_tasklet::sleep_for(1h);
    finished.fetch_add(1);
  };
  rt_.emplace(std::move(c));
  rt().run([&] {
    // It must end after detach(), or the handler runs in detach(), on this
    // tasklet.
    std::atomic<bool> detached{false};
    auto t = taiga::spawn([&] {
      while (!detached.load()) taiga::this_tasklet::sleep_for(100us);
      throw std::runtime_error("logged");
    });
    t.detach();
    detached = true;
    while (started.load() == 0) taiga::this_tasklet::sleep_for(1ms);
  });
  rt().shutdown();
  EXPECT_EQ(started.load(), 1);
  EXPECT_EQ(finished.load(), 0);
  EXPECT_EQ(rt().report().live_tasklets, 0u);
}

TEST_P(tasklets, killed_detached_tasklet_is_silent) {
  rt_.reset();
  std::atomic<int> calls{0};
  taiga::runtime_config c;
  c.workers = GetParam();
  c.error_handler = [&](const taiga::tasklet_info&, std::exception_ptr) { calls.fetch_add(1); };
  rt_.emplace(std::move(c));
  rt().run([&] {
    auto t = taiga::spawn([] { taiga::this_tasklet::sleep_for(1h); });
    taiga::test::wait_parked(t);
    t.kill();
    t.detach();
    taiga::this_tasklet::sleep_for(5ms);
  });
  EXPECT_EQ(calls.load(), 0);
}
