// Tasklet life cycle: spawn, join, exceptions, kill, throw_into, handles,
// names, spawn sites, tasklet_local, deadlock reports.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <taiga/runtime.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <thread>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::with_workers;

class tasklets : public with_workers {};

// Options that keep a new tasklet on the spawner's worker, unstolen, so it
// cannot start before the spawner parks.
static taiga::spawn_options here() {
  return taiga::spawn_options{.pinned = true, .worker = taiga::this_tasklet::worker()};
}
TAIGA_WORKER_COUNTS(tasklets);

// A million queued tasklets are a million blocks of fresh memory
// (spawn_join): the common shapes must stay in the slab's smallest classes
// (64-byte granules): a 4-byte result and callable in 128 bytes, a word of
// each, or three captured words and no result, in 192.
TEST(tasklet, small_tasklet_blocks_fit_their_slab_classes) {
  EXPECT_LE(sizeof(taiga::detail::tasklet_core), 120u);
  EXPECT_EQ(sizeof(taiga::detail::tasklet_frame), 64u);  // top of the stack
  // spawn(fn, int) of a captureless lambda returning int (bench spawn_join).
  auto fn = [](int v) { return v & 1; };
  using body = taiga::detail::bound_call<decltype(fn), int>;
  EXPECT_EQ(sizeof(body), sizeof(int));
  EXPECT_LE((sizeof(taiga::detail::tasklet_block<int, body>)), 128u);
  auto one_word = [p = static_cast<int*>(nullptr)] { return p != nullptr; };
  EXPECT_LE((sizeof(taiga::detail::tasklet_block<long, decltype(one_word)>)), 192u);
  // Three captured words and no result (bench alive_1m).
  auto three_words = [a = std::uint64_t{1}, b = std::uint64_t{2}, c = std::uint64_t{3}] {
    (void)(a + b + c);
  };
  EXPECT_LE((sizeof(taiga::detail::tasklet_block<void, decltype(three_words)>)), 192u);
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

// Reports read what a parked tasklet waits on from its frame, which lives on
// the tasklet's stack and goes away with it: a dump racing with tasklets that
// park, wake, exit and hand their stacks to the next ones must only read
// frames of registered tasklets (TSan and ASan check the reads).
TEST_P(tasklets, dump_while_tasklets_park_and_exit_reads_only_live_frames) {
  std::atomic<bool> stop{false};
  std::atomic<long> dumps{0};
  std::thread dumper([&] {
    while (!stop.load()) {
      std::ostringstream os;
      rt().dump(os);
      EXPECT_NE(os.str().find("live tasklets"), std::string::npos);
      dumps.fetch_add(1);
    }
  });
  rt().run([] {
    const long rounds = taiga::test::scaled(150), n = 200;
    for (long r = 0; r < rounds; ++r) {
      std::vector<taiga::tasklet<long>> ts;
      for (long i = 0; i < n; ++i)
        ts.push_back(taiga::spawn([i] {
          for (int k = 0; k < 3; ++k) taiga::this_tasklet::sleep_for(std::chrono::microseconds(50));
          return i;
        }));
      long sum = 0;
      for (auto& t : ts) sum += t.join();
      EXPECT_EQ(sum, n * (n - 1) / 2);
    }
  });
  while (dumps.load() < 3) std::this_thread::yield();
  stop = true;
  dumper.join();
}

TEST_P(tasklets, join_returns_result_and_moves_arguments) {
  int v = rt().run([] {
    auto t = taiga::spawn([](std::unique_ptr<int> p, int k) { return *p * k; },
                          std::make_unique<int>(6), 7);
    return t.join();
  });
  EXPECT_EQ(v, 42);
}

TEST_P(tasklets, exception_propagates_through_join) {
  EXPECT_THROW(rt().run([] {
    auto t = taiga::spawn([]() -> int { throw std::runtime_error("boom"); });
    return t.join();
  }),
               std::runtime_error);
}

TEST_P(tasklets, spawn_from_outside_thread_and_join_there) {
  auto t = taiga::spawn(rt(), [] {
    taiga::this_tasklet::yield();
    return std::string("outside");
  });
  EXPECT_EQ(t.join(), "outside");
  EXPECT_FALSE(t.joinable());
}

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
    taiga::test::wait_parked(t);
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
    if (rt().worker_count() > 1) {
      while (!started.load()) taiga::this_tasklet::sleep_for(1ms);
      t.kill();
      go = true;
      EXPECT_THROW(t.join(), taiga::tasklet_killed);
      EXPECT_EQ(after.load(), 1);
    } else {
      go = true;
      t.kill();
      EXPECT_THROW(t.join(), taiga::tasklet_killed);
    }
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
    taiga::test::wait_parked(t);
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
    taiga::test::wait_parked(t);
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
      taiga::test::wait_parked(t);
    }  // like std::jthread: stop (kill) and join
    EXPECT_EQ(unwound.load(), 1);
  });
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

TEST_P(tasklets, ids_names_sites_and_states) {
  rt().run([] {
    std::atomic<bool> renamed{false}, go{false};
    unsigned line = __LINE__ + 1;
    auto t = taiga::spawn(taiga::spawn_options{.name = "worker-a"}, [&] {
      EXPECT_EQ(taiga::this_tasklet::name(), "worker-a");
      taiga::this_tasklet::set_name("renamed");
      renamed = true;
      while (!go.load()) taiga::this_tasklet::sleep_for(1ms);
      return taiga::this_tasklet::get_id();
    });
    EXPECT_NE(t.id(), 0u);
    EXPECT_NE(t.id(), taiga::this_tasklet::get_id());
    // The call spans several lines; compilers name its first or its last.
    EXPECT_GE(t.spawn_site().line(), line);
    EXPECT_LE(t.spawn_site().line(), line + 10);
    EXPECT_NE(std::string(t.spawn_site().file_name()).find("tasklet_test.cpp"), std::string::npos);
    while (!renamed.load()) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(t.name(), "renamed");
    go = true;
    auto id = t.id();
    EXPECT_EQ(t.join(), id);
  });
  EXPECT_EQ(taiga::this_tasklet::get_id(), 0u);
  EXPECT_FALSE(taiga::this_tasklet::in_tasklet());
  EXPECT_THROW(taiga::this_tasklet::yield(), taiga::usage_error);
}

TEST_P(tasklets, join_self_is_a_usage_error) {
  rt().run([] {
    auto self = std::make_shared<taiga::tasklet<void>>();
    auto gate = std::make_shared<std::atomic<bool>>(false);
    *self = taiga::spawn([self, gate] {
      while (!gate->load()) taiga::this_tasklet::yield();
      EXPECT_THROW(self->join(), taiga::usage_error);
    });
    gate->store(true);
    // The handle lives in a shared_ptr the tasklet also holds: wait, then drop it.
    while (self->alive()) taiga::this_tasklet::sleep_for(1ms);
    self->join();
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
  EXPECT_NE(report.find("tasklet_test.cpp"), std::string::npos) << report;
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
