// Interruption: kill, throw_into, tasklet_exit, and a handle's destructor
// (kill and join, masked against what reaches its own tasklet meanwhile).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <taiga/runtime.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <thread>

#include "tasklets_fixture.hpp"

using namespace std::chrono_literals;

TEST_P(tasklets, kill_parked_tasklet_runs_destructors) {
  auto destroyed = std::make_shared<std::atomic<int>>(0);
  rt().run([destroyed] {
    struct guard {
      std::shared_ptr<std::atomic<int>> d;
      ~guard() { d->fetch_add(1); }
    };
    auto t = taiga::spawn([destroyed] {
      guard g{destroyed};
      taiga::this_tasklet::sleep_for(1h);
    });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(t.state(), taiga::tasklet_state::parked);
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
  });
  EXPECT_EQ(destroyed->load(), 1);
}

TEST_P(tasklets, kill_before_start_means_body_never_runs) {
  std::atomic<bool> ran{false};
  rt().run([&] {
    // Pinned to our own worker: it cannot start before we park.
    auto t = taiga::spawn(here(), [&] { ran = true; });
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
  });
  EXPECT_FALSE(ran.load());
}

TEST_P(tasklets, kill_finished_is_noop_and_join_still_returns) {
  rt().run([] {
    auto t = taiga::spawn([] { return 5; });
    while (t.alive()) taiga::this_tasklet::yield();
    t.kill();
    EXPECT_EQ(t.join(), 5);
  });
}

// The kill comes from a plain thread while the tasklet runs (busy, on its
// worker; at 1 worker the joining tasklet is parked meanwhile), so at every
// worker count it lands on a running tasklet and waits for its next park.
TEST_P(tasklets, kill_running_tasklet_is_delivered_at_next_park_point) {
  std::atomic<bool> started{false}, go{false};
  std::atomic<int> after{0};
  rt().run([&] {
    auto t = taiga::spawn([&] {
      started = true;
      while (!go.load()) {
        // busy: not parked; the kill must wait for the next park point
      }
      try {
        taiga::this_tasklet::yield();
      } catch (const taiga::tasklet_exit&) {
        after = 1;
        throw;
      }
      after = 2;
    });
    std::thread killer([&] {
      while (!started.load()) std::this_thread::sleep_for(100us);
      EXPECT_EQ(t.state(), taiga::tasklet_state::running);
      t.kill();
      std::this_thread::sleep_for(2ms);
      EXPECT_EQ(after.load(), 0);  // not raised while it runs
      go = true;
    });
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
    EXPECT_EQ(after.load(), 1);
    killer.join();
  });
}

TEST_P(tasklets, tasklet_exit_can_be_caught_and_the_tasklet_continue) {
  int v = rt().run([] {
    auto t = taiga::spawn([] {
      try {
        taiga::this_tasklet::sleep_for(1h);
      } catch (const taiga::tasklet_exit&) {
        return 7;  // swallowed: the tasklet decides to end normally
      }
      return 0;
    });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    t.kill();
    return t.join();
  });
  EXPECT_EQ(v, 7);
}

TEST_P(tasklets, throw_into_raises_at_park_point) {
  std::string seen = rt().run([] {
    auto t = taiga::spawn([] {
      try {
        taiga::this_tasklet::sleep_for(1h);
      } catch (const std::logic_error& e) {
        return std::string(e.what());
      }
      return std::string("not thrown");
    });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_TRUE(t.throw_into(std::logic_error("wake up")));
    return t.join();
  });
  EXPECT_EQ(seen, "wake up");
}

TEST_P(tasklets, throw_into_not_started_becomes_its_result) {
  rt().run([] {
    std::atomic<bool> ran{false};
    auto t = taiga::spawn(here(), [&] { ran = true; });
    EXPECT_TRUE(t.throw_into(std::out_of_range("early")));
    EXPECT_THROW(t.join(), std::out_of_range);
    EXPECT_FALSE(ran.load());
  });
}

TEST_P(tasklets, throw_into_finished_returns_false) {
  rt().run([] {
    auto t = taiga::spawn([] {});
    while (t.alive()) taiga::this_tasklet::yield();
    EXPECT_FALSE(t.throw_into(std::runtime_error("late")));
    t.join();
  });
}

TEST_P(tasklets, handle_destroyed_while_joinable_kills_and_joins) {
  std::atomic<int> unwound{0};
  rt().run([&] {
    {
      auto t = taiga::spawn([&] {
        struct g {
          std::atomic<int>& u;
          ~g() { u.fetch_add(1); }
        } guard{unwound};
        taiga::this_tasklet::sleep_for(1h);
      });
      while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }  // like std::jthread: stop (kill) and join
    EXPECT_EQ(unwound.load(), 1);
  });
}

// The destructor's wait cannot be cut short: a kill of the tasklet running
// it waits until the joined tasklet is done, then is raised at the next park
// point (the destructor returned first, with its tasklet finished).
TEST_P(tasklets, a_kill_during_a_handle_destructor_is_raised_after_the_join) {
  std::atomic<bool> in_dtor{false}, release_b{false}, b_done{false};
  std::atomic<bool> b_done_at_return{false}, reached_next_park{false}, past_it{false};
  rt().run([&] {
    auto a = taiga::spawn([&] {
      {
        auto b = taiga::spawn([&] {
          try {
            taiga::this_tasklet::sleep_for(1h);
          } catch (const taiga::tasklet_exit&) {
            // Unwinds slowly: until the test has killed `a` meanwhile.
            while (!release_b.load()) taiga::this_tasklet::sleep_for(1ms);
            b_done = true;
            throw;
          }
        });
        taiga::test::wait_parked(b);
        in_dtor = true;
      }  // ~b: kills b, waits
      b_done_at_return = b_done.load();
      reached_next_park = true;
      taiga::this_tasklet::sleep_for(1h);  // the kill that came during ~b
      past_it = true;
    });
    while (!in_dtor.load()) taiga::this_tasklet::sleep_for(1ms);
    taiga::test::wait_parked(a);  // in ~b's wait
    a.kill();
    taiga::this_tasklet::sleep_for(5ms);  // let a kill that escaped show
    EXPECT_FALSE(reached_next_park.load());
    release_b = true;
    EXPECT_THROW(a.join(), taiga::tasklet_killed);
  });
  EXPECT_TRUE(b_done_at_return.load());
  EXPECT_TRUE(reached_next_park.load());
  EXPECT_FALSE(past_it.load());
}

// The same for a throw_into and a timeout_scope: kept, raised after the wait.
TEST_P(tasklets, a_throw_or_timeout_during_a_handle_destructor_is_raised_after_the_join) {
  std::atomic<bool> release_b{false}, in_dtor{false};
  std::atomic<int> b_done{0};
  rt().run([&] {
    auto slow_to_die = [&] {
      try {
        taiga::this_tasklet::sleep_for(1h);
      } catch (const taiga::tasklet_exit&) {
        while (!release_b.load()) taiga::this_tasklet::sleep_for(1ms);
        b_done.fetch_add(1);
        throw;
      }
    };
    auto a = taiga::spawn([&] {
      std::string caught;
      try {
        {
          auto b = taiga::spawn(slow_to_die);
          taiga::test::wait_parked(b);
          in_dtor = true;
        }
        EXPECT_EQ(b_done.load(), 1);
        taiga::this_tasklet::sleep_for(1h);
      } catch (const std::runtime_error& e) {
        caught = e.what();
      }
      EXPECT_EQ(caught, "poke");
      release_b = false;
      try {
        std::optional<taiga::timeout_scope> scope;
        {
          auto b = taiga::spawn(slow_to_die);
          taiga::test::wait_parked(b);
          scope.emplace(20ms);
          in_dtor = true;
        }  // ~b waits past the scope's deadline
        EXPECT_EQ(b_done.load(), 2);
        taiga::this_tasklet::sleep_for(1h);
        return std::string("no timeout");
      } catch (const taiga::timeout_error&) {
        return std::string("timeout");
      }
    });
    while (!in_dtor.load()) taiga::this_tasklet::sleep_for(1ms);
    taiga::test::wait_parked(a);
    EXPECT_TRUE(a.throw_into(std::runtime_error("poke")));
    taiga::this_tasklet::sleep_for(5ms);
    EXPECT_FALSE(a.throw_into(std::runtime_error("second")));  // the first is still pending
    EXPECT_EQ(b_done.load(), 0);
    in_dtor = false;
    release_b = true;
    while (!in_dtor.load()) taiga::this_tasklet::sleep_for(1ms);
    taiga::this_tasklet::sleep_for(40ms);  // past the scope's deadline, in ~b
    EXPECT_EQ(b_done.load(), 1);
    release_b = true;
    EXPECT_EQ(a.join(), "timeout");
  });
}

// A tasklet that ends up holding its own handle and drops it cannot wait for
// itself: the handle detaches and the tasklet runs on.
TEST_P(tasklets, a_tasklet_dropping_its_own_handle_runs_on_detached) {
  std::atomic<bool> finished{false};
  rt().run([&] {
    auto slot = std::make_shared<std::optional<taiga::tasklet<void>>>();
    std::atomic<bool> handed{false};
    *slot = taiga::spawn([&finished, &handed, slot] {
      while (!handed.load()) taiga::this_tasklet::sleep_for(1ms);
      slot->reset();  // our own handle
      taiga::this_tasklet::sleep_for(1ms);
      finished = true;
    });
    handed = true;
    while (!finished.load()) taiga::this_tasklet::sleep_for(1ms);
  });
  EXPECT_TRUE(finished.load());
}

// Two tasklets that each hold the other's handle and drop it wait for each
// other: nothing can end that but a deadlock report or a shutdown, and
// either one must (each destructor gives up and detaches).
namespace {
struct handle_cycle {
  std::shared_ptr<std::optional<taiga::tasklet<void>>> a_handle =
      std::make_shared<std::optional<taiga::tasklet<void>>>();
  std::shared_ptr<std::optional<taiga::tasklet<void>>> b_handle =
      std::make_shared<std::optional<taiga::tasklet<void>>>();
  std::atomic<bool> ready{false}, b_holds_a{false};
  std::atomic<int> ended{0};
  struct counts_end {
    std::atomic<int>& n;
    ~counts_end() { n.fetch_add(1); }
  };

  // b takes a's handle, then sleeps; a drops b's handle (kill b, wait for b);
  // b, unwinding, drops a's (kill a, wait for a).
  void start() {
    auto b = taiga::spawn([this] {
      counts_end e{ended};
      while (!ready.load()) taiga::this_tasklet::sleep_for(1ms);
      taiga::tasklet<void> mine = std::move(**a_handle);
      b_holds_a = true;
      taiga::this_tasklet::sleep_for(1h);
    });
    auto a = taiga::spawn([this] {
      counts_end e{ended};
      while (!b_holds_a.load()) taiga::this_tasklet::sleep_for(1ms);
      b_handle->reset();
      taiga::this_tasklet::sleep_for(1h);  // raises what came meanwhile
    });
    *a_handle = std::move(a);
    *b_handle = std::move(b);
    ready = true;
  }
};
}  // namespace

TEST(tasklet, handles_that_own_each_other_end_at_shutdown) {
  handle_cycle c;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = 2, .detect_deadlock = false});
    rt.run([&] {
      c.start();
      while (!c.b_holds_a.load()) taiga::this_tasklet::sleep_for(1ms);
      taiga::this_tasklet::sleep_for(20ms);  // both in their destructors' waits
      EXPECT_EQ(c.ended.load(), 0);
    });
  }  // ~runtime: the shutdown's kills end both waits
  EXPECT_EQ(c.ended.load(), 2);
}

TEST(tasklet, handles_that_own_each_other_end_at_a_deadlock_report) {
  handle_cycle c;
  std::atomic<int> reports{0};
  taiga::runtime_config cfg{.workers = 1};
  cfg.deadlock_handler = [&](const taiga::deadlock_report&) { reports.fetch_add(1); };
  taiga::runtime rt(std::move(cfg));
  rt.run([&] {
    c.start();
    while (!c.b_holds_a.load()) taiga::this_tasklet::sleep_for(1ms);
    // Park with no timer, so that every tasklet is parked for good.
    taiga::detail::wait_point w;
    taiga::detail::prepare_wait(w, "test", nullptr);
    EXPECT_EQ(taiga::detail::wait(w), taiga::detail::wake_status::interrupted);
    EXPECT_THROW(taiga::detail::throw_interrupt(), taiga::deadlock_error);
    while (c.ended.load() != 2) taiga::this_tasklet::sleep_for(1ms);
  });
  EXPECT_GE(reports.load(), 1);
  EXPECT_EQ(c.ended.load(), 2);
}
