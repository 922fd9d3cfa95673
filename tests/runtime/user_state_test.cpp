// What a tasklet holds of its user's: where its result, the exception it
// ended with and its tasklet_locals die (on a context that may park), and
// the side record they share.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <taiga/runtime.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <thread>
#include <vector>

#include "tasklets_fixture.hpp"

using namespace std::chrono_literals;

// A child that sleeps for 30 s unless killed, and counts its end.
static taiga::tasklet<int> sleeping_child(std::atomic<int>& ended) {
  return taiga::spawn([&ended] {
    struct on_exit {
      std::atomic<int>& n;
      ~on_exit() { n.fetch_add(1); }
    } e{ended};
    taiga::this_tasklet::sleep_for(std::chrono::seconds(30));
    return 1;
  });
}

// A result whose destructor parks: a detached tasklet returns a live handle,
// whose destructor kills and waits for the tasklet it names. Nobody can take
// that result, so it dies in finish(), on the tasklet itself, which can
// park; the runtime's last release (at exit, between tasklets) runs nothing
// that parks (tasklet_vtable::drop_result). Here the next tasklet adopts the
// ended one's stack (worker::exit_current).
TEST(tasklet, a_result_that_parks_in_its_destructor_outlives_stack_adoption) {
  for (bool child_started : {false, true}) {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    std::atomic<int> child_ended{0};
    std::atomic<bool> after_ran{false};
    rt.run([&] {
      taiga::spawn([&, child_started] {
        auto child = sleeping_child(child_ended);
        if (child_started) taiga::this_tasklet::yield();  // the child parks in its sleep
        // Fresh, default stack, next to run: it adopts this one's stack.
        taiga::spawn([&] { after_ran = true; }).detach();
        return child;
      }).detach();
      taiga::this_tasklet::sleep_for(std::chrono::milliseconds(20));
    });
    // Killed in its sleep, or before its body began.
    EXPECT_EQ(child_ended.load(), child_started ? 1 : 0) << "child_started=" << child_started;
    EXPECT_TRUE(after_ran.load());
  }
}

// Runs `body` on a thread of its own: a worker blocked for good fails the
// test in seconds, with a message, instead of stalling the suite.
static void within_seconds(int limit, const char* what, const std::function<void()>& body) {
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  std::thread th([&] {
    body();
    std::lock_guard lk(m);
    finished = true;
    cv.notify_one();
  });
  std::unique_lock lk(m);
  if (!cv.wait_for(lk, std::chrono::seconds(limit), [&] { return finished; })) {
    std::fprintf(stderr, "%s: still running after %d s: a hang\n", what, limit);
    std::_Exit(1);
  }
  lk.unlock();
  th.join();
}

// The same with nothing else ready when the tasklet ends: its worker goes
// back to its loop, with no tasklet current. The child's kill and join once
// ran there, as a plain-thread wait on the one thread that could run the
// child (a hang with one worker, or embedded).
TEST(tasklet, a_result_that_parks_in_its_destructor_with_nothing_else_ready) {
  for (unsigned workers : {1u, 0u}) {
    within_seconds(20, "a parking result, nothing else ready", [workers] {
      taiga::runtime rt(taiga::runtime_config{.workers = workers});
      std::atomic<int> child_ended{0};
      auto parent = [&] {
        auto child = sleeping_child(child_ended);
        taiga::this_tasklet::yield();  // the child parks in its sleep
        return child;
      };
      if (workers == 0) {
        taiga::spawn(rt, parent).detach();
        rt.run_until_idle();
      } else {
        rt.run([&] {
          taiga::spawn(parent).detach();
          while (child_ended.load() == 0) taiga::this_tasklet::sleep_for(1ms);
        });
      }
      EXPECT_EQ(child_ended.load(), 1) << "workers=" << workers;
    });
  }
}

// The same when the next tasklet is one that resumes from a park (not
// fresh): the release once ran inside that one's switch-in, which nested
// the child's join inside the wait it was returning from.
TEST(tasklet, a_result_that_parks_in_its_destructor_before_a_resumed_tasklet) {
  within_seconds(20, "a parking result, a resumed tasklet next", [] {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    std::atomic<int> child_ended{0};
    rt.run([&] {
      for (int i = 0; i < 20; ++i) {
        taiga::detail::wait_point w;
        taiga::detail::prepare_wait(w, "the parent's last act", nullptr);
        taiga::spawn([&] {
          auto child = sleeping_child(child_ended);
          taiga::this_tasklet::yield();  // the child parks in its sleep
          taiga::detail::wake(w);        // this tasklet is next to run
          return child;
        }).detach();
        EXPECT_EQ(taiga::detail::wait(w), taiga::detail::wake_status::signaled);
        while (child_ended.load() == i) taiga::this_tasklet::sleep_for(1ms);
      }
    });
    EXPECT_EQ(child_ended.load(), 20);
  });
}

// The same on two workers when the next tasklet is fresh but cannot adopt
// the stack (the ended one had a stack size of its own): it starts through
// detail_tasklet_entry, whose switch-in once ran the destructor, parked,
// resumed on the other worker and then read that worker's current tasklet.
TEST(tasklet, a_result_that_parks_in_its_destructor_before_a_fresh_tasklet_on_two_workers) {
  within_seconds(30, "a parking result, a fresh tasklet next, two workers", [] {
    taiga::runtime rt(taiga::runtime_config{.workers = 2});
    rt.run([&] {
      for (int i = 0; i < 20; ++i) {
        std::atomic<bool> after_ran{false};
        taiga::spawn_options own_stack{.stack_size = 512 << 10, .pinned = true, .worker = 0};
        taiga::spawn(own_stack, [&] {
          auto child = taiga::spawn(taiga::spawn_options{.pinned = true, .worker = 1}, [] {
            taiga::this_tasklet::sleep_for(std::chrono::seconds(30));
            return 1;
          });
          while (child.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
          taiga::spawn([&] { after_ran = true; }).detach();  // fresh, next to run
          return child;
        }).detach();
        while (!after_ran.load()) taiga::this_tasklet::sleep_for(1ms);
      }
    });
  });
}

// An exception that holds a live handle: its destructor kills and joins
// the child. It dies where nobody can take it any more, on a context that
// can park: the thrower itself when it was detached (here with nothing else
// ready: it once died on the worker's loop, a plain-thread wait that hung),
// the joiner after its catch block, or whoever dropped the handle.
TEST(tasklet, an_exception_whose_destructor_parks_dies_where_it_became_unreachable) {
  struct holder {
    std::shared_ptr<taiga::tasklet<int>> child;
  };
  within_seconds(30, "an exception holding a live handle", [] {
    std::atomic<int> reports{0};
    taiga::runtime_config cfg{.workers = 1};
    cfg.error_handler = [&](const taiga::tasklet_info&, std::exception_ptr) { ++reports; };
    taiga::runtime rt(std::move(cfg));
    std::atomic<int> child_ended{0};
    auto thrower = [&]() -> int {
      auto child = std::make_shared<taiga::tasklet<int>>(sleeping_child(child_ended));
      taiga::this_tasklet::yield();  // the child parks in its sleep
      throw holder{std::move(child)};
    };
    rt.run([&] {
      taiga::spawn(thrower).detach();
      while (child_ended.load() == 0) taiga::this_tasklet::sleep_for(1ms);
      EXPECT_EQ(reports.load(), 1);

      auto joined = taiga::spawn(thrower);
      try {
        joined.join();
        ADD_FAILURE() << "join() returned";
      } catch (const holder&) {
        EXPECT_EQ(child_ended.load(), 1);  // alive while the joiner holds it
      }
      EXPECT_EQ(child_ended.load(), 2);

      std::optional<taiga::tasklet<int>> dropped{taiga::spawn(thrower)};
      while (dropped->state() != taiga::tasklet_state::done) taiga::this_tasklet::sleep_for(1ms);
      dropped.reset();
      EXPECT_EQ(child_ended.load(), 3);
      EXPECT_EQ(reports.load(), 2);
    });
  });
}

// Locals that code after the body makes (here a result's destructor, run
// on the detached tasklet as it ends) die on that tasklet too, even when
// their destructors park, not on the worker's loop after it.
TEST(tasklet, locals_made_after_the_body_die_on_the_tasklet) {
  struct parking_local {
    std::atomic<taiga::tasklet_id>* died_on = nullptr;
    ~parking_local() {
      if (died_on == nullptr) return;
      taiga::this_tasklet::sleep_for(1ms);
      died_on->store(taiga::this_tasklet::get_id());
    }
  };
  static taiga::tasklet_local<parking_local> local;
  struct result {
    std::atomic<taiga::tasklet_id>* died_on;
    explicit result(std::atomic<taiga::tasklet_id>* d) : died_on(d) {}
    result(result&& o) noexcept : died_on(std::exchange(o.died_on, nullptr)) {}
    ~result() {
      if (died_on != nullptr) local.get().died_on = died_on;
    }
  };
  within_seconds(20, "a local made after the body", [] {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    std::atomic<taiga::tasklet_id> died_on{0};
    rt.run([&] {
      auto t = taiga::spawn([&] { return result(&died_on); });
      const taiga::tasklet_id id = t.id();
      t.detach();
      while (died_on.load() == 0) taiga::this_tasklet::sleep_for(1ms);
      EXPECT_EQ(died_on.load(), id);
    });
  });
}

// A local whose destructor makes another local (tasklet_local::get on a key
// not set yet): that one dies on the tasklet too, in finish(), not in the
// runtime's last release of a joined tasklet, off the tasklet.
TEST(tasklet, a_local_made_by_a_local_s_destructor_dies_on_the_tasklet) {
  struct second {
    std::atomic<taiga::tasklet_id>* died_on = nullptr;
    ~second() {
      if (died_on == nullptr) return;
      taiga::this_tasklet::sleep_for(1ms);  // parks: needs a tasklet
      died_on->store(taiga::this_tasklet::get_id());
    }
  };
  static taiga::tasklet_local<second> later;
  struct first {
    std::atomic<taiga::tasklet_id>* died_on = nullptr;
    ~first() {
      if (died_on != nullptr) later.get().died_on = died_on;
    }
  };
  static taiga::tasklet_local<first> local;
  within_seconds(20, "a local made by a local's destructor", [] {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    rt.run([] {
      std::atomic<taiga::tasklet_id> died_on{0};
      auto t = taiga::spawn([&] { local.get().died_on = &died_on; });
      const taiga::tasklet_id id = t.id();
      t.join();
      EXPECT_EQ(died_on.load(), id);
    });
  });
}

// Destructors that keep making locals stop after four rounds (as POSIX
// thread keys do) with a line on stderr, instead of hanging the tasklet.
namespace remaking {
std::atomic<int> destroyed{0};
struct again {
  bool armed = false;
  ~again();
};
taiga::tasklet_local<again> local;
again::~again() {
  if (!armed) return;
  destroyed.fetch_add(1);
  local.get().armed = true;  // a new value, in a new set of locals
}
}  // namespace remaking

TEST(tasklet, locals_that_keep_remaking_themselves_stop_after_four_rounds) {
  remaking::destroyed = 0;
  testing::internal::CaptureStderr();
  within_seconds(20, "locals that keep remaking themselves", [] {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    rt.run([] { taiga::spawn([] { remaking::local.get().armed = true; }).join(); });
  });
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(remaking::destroyed.load(), 4);
  EXPECT_NE(err.find("tasklet_local destructors still made new locals after 4 rounds"),
            std::string::npos)
      << err;
}

// Where a result that was never taken dies: on a context that may park.
// Detached before it ended: on the tasklet itself. Detached or dropped after
// it ended: in the caller of detach() or of the handle's destructor. Joined:
// the moved-from value dies in the joiner, before join() returns.
TEST_P(tasklets, a_result_dies_where_it_became_unreachable) {
  struct probe {
    std::atomic<int>* deaths;
    std::atomic<taiga::tasklet_id>* died_on;
    probe(std::atomic<int>* d, std::atomic<taiga::tasklet_id>* o) : deaths(d), died_on(o) {}
    probe(probe&& o) noexcept : deaths(o.deaths), died_on(o.died_on) {}
    ~probe() {
      died_on->store(taiga::this_tasklet::get_id());
      deaths->fetch_add(1);
    }
  };
  rt().run([] {
    std::atomic<int> deaths{0};
    std::atomic<taiga::tasklet_id> died_on{0};
    const taiga::tasklet_id self = taiga::this_tasklet::get_id();
    auto make = [&](std::atomic<bool>* gate) {
      return taiga::spawn([&deaths, &died_on, gate] {
        while (gate != nullptr && !gate->load()) taiga::this_tasklet::sleep_for(1ms);
        return probe(&deaths, &died_on);
      });
    };
    auto wait_done = [](auto& t) {
      while (t.state() != taiga::tasklet_state::done) taiga::this_tasklet::sleep_for(1ms);
    };

    std::atomic<bool> gate{false};
    auto a = make(&gate);
    const taiga::tasklet_id a_id = a.id();
    a.detach();
    gate = true;
    while (deaths.load() == 0) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(died_on.load(), a_id);

    auto b = make(nullptr);
    wait_done(b);
    EXPECT_EQ(deaths.load(), 1);
    b.detach();
    EXPECT_EQ(deaths.load(), 2);
    EXPECT_EQ(died_on.load(), self);

    std::optional<taiga::tasklet<probe>> c{make(nullptr)};
    wait_done(*c);
    c.reset();
    EXPECT_EQ(deaths.load(), 3);
    EXPECT_EQ(died_on.load(), self);

    auto d = make(nullptr);
    {
      probe got = d.join();
      EXPECT_EQ(deaths.load(), 4);  // the moved-from one, in the joiner
      EXPECT_EQ(died_on.load(), self);
    }
    EXPECT_EQ(deaths.load(), 5);
  });
}

// The side record (name, locals, throw_into, exception, timeout_scope) is
// allocated on first use by whichever needs it: all of them share one.
TEST_P(tasklets, rarely_used_state_shares_one_side_record) {
  rt().run([] {
    taiga::tasklet_local<int> local;
    auto t = taiga::spawn(taiga::spawn_options{.name = "side"}, [&local] {
      local.get() = 7;
      taiga::timeout_scope scope(std::chrono::hours(1));
      taiga::this_tasklet::set_name("renamed");
      try {
        taiga::this_tasklet::sleep_for(std::chrono::hours(1));
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "poke");
      }
      EXPECT_EQ(local.get(), 7);
      EXPECT_EQ(taiga::this_tasklet::name(), "renamed");
      throw std::logic_error("done");
    });
    taiga::test::wait_parked(t);
    EXPECT_EQ(t.name(), "renamed");
    EXPECT_TRUE(t.throw_into(std::make_exception_ptr(std::runtime_error("poke"))));
    EXPECT_THROW(t.join(), std::logic_error);
  });
}

// Whoever needs a tasklet's side record first installs it: the tasklet
// itself (a local, a timeout scope), set_name from a plain thread, throw_into
// from the main tasklet, all racing. Every name and every exception lands,
// before the start or at the park point.
TEST_P(tasklets, racing_side_record_installs_lose_nothing) {
  rt().run([] {
    const long n = taiga::test::scaled(4000);
    taiga::tasklet_local<long> local;
    std::vector<taiga::tasklet<long>> ts;
    for (long i = 0; i < n; ++i)
      ts.push_back(taiga::spawn([&local, i]() -> long {
        local.get() = i;
        taiga::timeout_scope scope(std::chrono::hours(1));
        taiga::this_tasklet::sleep_for(std::chrono::hours(1));  // only throw_into ends it
        return -1;
      }));
    std::thread namer([&ts, n] {
      for (long i = 0; i < n; ++i) ts[static_cast<std::size_t>(i)].set_name(std::to_string(i));
    });
    for (long i = 0; i < n; ++i)
      EXPECT_TRUE(
          ts[static_cast<std::size_t>(i)].throw_into(std::runtime_error(std::to_string(i))));
    namer.join();
    for (long i = 0; i < n; ++i) {
      auto& t = ts[static_cast<std::size_t>(i)];
      EXPECT_EQ(t.name(), std::to_string(i));  // join() gives the handle up
      try {
        t.join();
        ADD_FAILURE() << "tasklet " << i << " was not interrupted";
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(e.what(), std::to_string(i));
      }
    }
  });
}

TEST_P(tasklets, tasklet_local_is_per_tasklet_and_destroyed_at_end) {
  static std::atomic<int> destroyed{0};
  destroyed = 0;
  struct counted {
    int v = 0;
    ~counted() { destroyed.fetch_add(1); }
  };
  static taiga::tasklet_local<counted> local;
  rt().run([] {
    std::vector<taiga::tasklet<int>> ts;
    for (int i = 0; i < 20; ++i)
      ts.push_back(taiga::spawn([i] {
        local->v = i;
        taiga::this_tasklet::yield();
        taiga::this_tasklet::sleep_for(1ms);
        return local->v;
      }));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(ts[static_cast<std::size_t>(i)].join(), i);
  });
  EXPECT_EQ(destroyed.load(), 20);
  EXPECT_THROW(local.get(), taiga::usage_error);
}
