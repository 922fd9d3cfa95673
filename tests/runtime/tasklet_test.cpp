// Tasklet basics: control block and stack reuse, spawn, join, exceptions,
// states, ids, names, spawn sites, per-tasklet exception state. Kills and
// throw_into are in kill_test.cpp, error handlers in error_handler_test.cpp,
// where results and locals die in user_state_test.cpp, deadlock reports in
// sysmon_test.cpp, sleeps in timer_test.cpp, runtime instances in
// runtime_test.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

#include "tasklets_fixture.hpp"

using namespace std::chrono_literals;

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
