// Tasklet life cycle: spawn, join, exceptions, kill, throw_into, handles,
// names, spawn sites, tasklet_local, deadlock reports.
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
// (32-byte granules): a 4-byte result and callable in 96 bytes, a word of
// each, or three captured words and no result, in 128.
TEST(tasklet, small_tasklet_blocks_fit_their_slab_classes) {
  EXPECT_LE(sizeof(taiga::detail::tasklet_core), 88u);
  EXPECT_EQ(sizeof(taiga::detail::tasklet_frame), 96u);  // top of the stack
  // The spawn site is one pointer, whatever the compiler.
  EXPECT_EQ(sizeof(taiga::detail::call_site), sizeof(void*));
  // spawn(fn, int) of a captureless lambda returning int (bench spawn_join).
  auto fn = [](int v) { return v & 1; };
  using body = taiga::detail::bound_call<decltype(fn), int>;
  EXPECT_EQ(sizeof(body), sizeof(int));
  EXPECT_LE((sizeof(taiga::detail::tasklet_block<int, body>)), 96u);
  auto one_word = [p = static_cast<int*>(nullptr)] { return p != nullptr; };
  EXPECT_LE((sizeof(taiga::detail::tasklet_block<long, decltype(one_word)>)), 128u);
  // Three captured words and no result (bench alive_1m).
  auto three_words = [a = std::uint64_t{1}, b = std::uint64_t{2}, c = std::uint64_t{3}] {
    (void)(a + b + c);
  };
  EXPECT_LE((sizeof(taiga::detail::tasklet_block<void, decltype(three_words)>)), 128u);
}

// Blocks come in 32-byte steps, so a block is not always on a cache line:
// an over-aligned callable still gets its alignment, in a small block and
// in one past the slab's classes.
TEST_P(tasklets, over_aligned_callables_get_their_alignment) {
  struct alignas(64) line {
    unsigned char bytes[64];
  };
  struct alignas(128) page_part {
    unsigned char bytes[2048];
  };
  rt().run([] {
    std::vector<taiga::tasklet<std::uintptr_t>> small, big;
    for (int i = 0; i < 50; ++i) {
      line l{};
      small.push_back(taiga::spawn([l] { return reinterpret_cast<std::uintptr_t>(&l); }));
      page_part p{};
      big.push_back(taiga::spawn([p] { return reinterpret_cast<std::uintptr_t>(&p); }));
    }
    for (auto& t : small) EXPECT_EQ(t.join() % 64, 0u);
    for (auto& t : big) EXPECT_EQ(t.join() % 128, 0u);
  });
}

// A fresh tasklet picked as another ends takes over its stack instead of a
// switch (worker::exit_current): it starts clean, a kill before its start
// still skips its body, and a tasklet that asked for a stack size of its
// own never lands on a default one.
TEST(tasklet, a_fresh_tasklet_adopts_the_stack_of_one_that_ended) {
  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  rt.run([] {
    const void* a_frame = nullptr;
    const void* b_frame = nullptr;
    bool c_ran = false;
    std::size_t d_touched = 0;
    taiga::tasklet_id b_saw = 0;
    // One worker, spawns go to the run-next slot: c runs first, then a, b, d.
    auto a = taiga::spawn([&] {
      a_frame = __builtin_frame_address(0);
      taiga::this_tasklet::set_name("a");
      throw std::runtime_error("a failed");
    });
    auto b = taiga::spawn([&] {
      b_frame = __builtin_frame_address(0);
      b_saw = taiga::this_tasklet::get_id();
      EXPECT_EQ(taiga::this_tasklet::name(), "");
      EXPECT_EQ(taiga::this_tasklet::worker(), 0);
      taiga::this_tasklet::yield();  // parks and resumes on the adopted stack
      return 2;
    });
    auto d = taiga::spawn(taiga::spawn_options{.stack_size = 2 << 20}, [&] {
      // Past the default 128 KiB: a default stack would overflow here.
      volatile char big[1 << 20];
      for (std::size_t i = 0; i < sizeof big; i += 4096) big[i] = 1;
      d_touched = sizeof big;
    });
    auto c = taiga::spawn([&] { c_ran = true; });
    c.kill();
    taiga::tasklet_id b_id = b.id();
    EXPECT_THROW(a.join(), std::runtime_error);
    EXPECT_EQ(b.join(), 2);
    d.join();
    EXPECT_THROW(c.join(), taiga::tasklet_killed);
    EXPECT_FALSE(c_ran);
    EXPECT_EQ(b_saw, b_id);
    EXPECT_EQ(d_touched, std::size_t{1} << 20);
    // b ran on the stack a left, at the same depth.
    EXPECT_EQ(a_frame, b_frame);
  });
}

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

// Each state as a handle reports it. The observer and the tasklet are pinned
// to one worker, so their interleaving is fixed; a third tasklet, pinned to
// another worker, is seen running.
TEST_P(tasklets, a_handle_reports_each_state) {
  rt().run([&] {
    unsigned w = taiga::this_tasklet::worker();
    unsigned other = (w + 1) % rt().worker_count();
    taiga::spawn(taiga::spawn_options{.pinned = true, .worker = static_cast<int>(w)}, [&] {
      std::atomic<int> phase{0};
      std::atomic<bool> go{false};
      auto t = taiga::spawn(here(), [&] {
        phase = 1;
        taiga::this_tasklet::yield();  // ready: queued behind the observer
        phase = 2;
        // Not 1 ms: two pinned tasklets polling in 1 ms steps wake in the same
        // timer tick, and wait_parked below would keep finding this one ready.
        while (!go.load()) taiga::this_tasklet::sleep_for(20ms);
      });
      EXPECT_EQ(t.state(), taiga::tasklet_state::created);  // cannot start before we park
      EXPECT_TRUE(t.alive());
      taiga::this_tasklet::yield();  // t runs until its yield
      EXPECT_EQ(phase.load(), 1);
      EXPECT_EQ(t.state(), taiga::tasklet_state::ready);
      taiga::test::wait_parked(t);
      EXPECT_EQ(phase.load(), 2);
      go = true;
      while (t.state() != taiga::tasklet_state::done) taiga::this_tasklet::sleep_for(1ms);
      EXPECT_FALSE(t.alive());
      t.join();
      EXPECT_EQ(t.state(), taiga::tasklet_state::done);  // an empty handle says done
      EXPECT_FALSE(t.joinable());
      if (other != w) {
        std::atomic<bool> spinning{false}, stop{false};
        auto u = taiga::spawn(
            taiga::spawn_options{.pinned = true, .worker = static_cast<int>(other)}, [&] {
              spinning = true;
              while (!stop.load()) {
              }
            });
        while (!spinning.load()) taiga::this_tasklet::sleep_for(1ms);
        EXPECT_EQ(u.state(), taiga::tasklet_state::running);
        stop = true;
        u.join();
      }
    }).join();
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

// The C++ runtime keeps "the exception being handled" per OS thread. A
// tasklet that parks inside a catch block must find its own exception when
// it resumes, on whatever worker, while others throw and catch meanwhile
// (without the switch saving it: `throw;` terminated, or rethrew another's).
TEST_P(tasklets, a_tasklet_parked_in_a_catch_block_keeps_its_exception) {
  constexpr int n = 64;
  std::atomic<int> ok{0};
  rt().run([&] {
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < n; ++i) {
      ts.push_back(taiga::spawn([i, &ok] {
        bool mine = true;
        try {
          try {
            throw i;
          } catch (int) {
            for (int k = 0; k < 4; ++k) {
              if (k % 2)
                taiga::this_tasklet::yield();
              else
                taiga::this_tasklet::sleep_for(std::chrono::microseconds(50 * (i % 4)));
              try {
                throw;  // still ours, whatever ran meanwhile
              } catch (int v) {
                mine = mine && v == i;
              }
            }
            throw;
          }
        } catch (int v) {
          mine = mine && v == i;
        }
        if (mine && std::current_exception() == nullptr) ok.fetch_add(1);
      }));
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(std::current_exception(), nullptr);
  });
  EXPECT_EQ(ok.load(), n);
}

// std::uncaught_exceptions() is per tasklet too: a destructor that parks
// while its tasklet unwinds sees one exception in flight before and after,
// and tasklets that run meanwhile see none of it.
TEST_P(tasklets, uncaught_exceptions_are_counted_per_tasklet) {
  struct parks_in_dtor {
    int expect;
    std::atomic<int>& ok;
    ~parks_in_dtor() {
      int before = std::uncaught_exceptions();
      taiga::this_tasklet::sleep_for(1ms);
      if (before == expect && std::uncaught_exceptions() == expect) ok.fetch_add(1);
    }
  };
  constexpr int n = 32;
  std::atomic<int> ok{0};
  rt().run([&] {
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < n; ++i) {
      ts.push_back(taiga::spawn([i, &ok] {
        if (i % 2) {
          try {
            parks_in_dtor g{1, ok};
            throw std::runtime_error("unwinding");
          } catch (const std::runtime_error&) {
          }
        } else {
          parks_in_dtor g{0, ok};
        }
      }));
    }
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(ok.load(), n);
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
      "taiga: detached tasklet #[0-9]+ 'doomed' \\(spawned at .*tasklet_test.cpp:[0-9]+.*\\) "
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
      "taiga: tasklet #[0-9]+ \\(spawned at .*tasklet_test.cpp:[0-9]+.*\\) ended with an uncaught "
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

// A wrapper that spawns for its caller passes the caller's site on: the
// tasklet records that one. Sites are interned: one record per distinct site.
TEST_P(tasklets, a_site_passed_on_by_a_wrapper_is_recorded) {
  auto caller = taiga::source_location::current("caller.cpp", "serve", 42, 7);
  auto check = [](const taiga::source_location& s) {
    EXPECT_STREQ(s.file_name(), "caller.cpp");
    EXPECT_STREQ(s.function_name(), "serve");
    EXPECT_EQ(s.line(), 42u);
    EXPECT_EQ(s.column(), 7u);
  };
  rt().run(
      [&] {
        check(taiga::this_tasklet::spawn_site());
        std::atomic<bool> ran{false};
        taiga::call_soon(
            [&] {
              check(taiga::this_tasklet::spawn_site());
              ran = true;
            },
            caller);
        while (!ran.load()) taiga::this_tasklet::sleep_for(1ms);
      },
      caller);
  EXPECT_EQ(taiga::detail::intern_site(caller), taiga::detail::intern_site(caller));
  auto other = taiga::source_location::current("caller.cpp", "serve", 43, 7);
  EXPECT_NE(taiga::detail::intern_site(caller), taiga::detail::intern_site(other));
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
  EXPECT_NE(report.find("stuck-two"), std::string::npos) << report;
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
