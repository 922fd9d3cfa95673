// spawn's shape (issue 18): a plain tasklet<R> from every form, handles
// that can be assigned over, and std::stop_token cancellation.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <taiga/runtime.hpp>
#include <type_traits>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::with_workers;

namespace {

class spawning : public with_workers {};
TAIGA_WORKER_COUNTS(spawning);

// Options that keep a new tasklet on the spawner's worker, unstolen, so it
// cannot start before the spawner parks.
taiga::spawn_options here() {
  return taiga::spawn_options{.pinned = true, .worker = taiga::this_tasklet::worker()};
}

int twice(int x) {
  return 2 * x;
}

// Every form of spawn yields a plain tasklet<R>, not a type of its own.
[[maybe_unused]] void spawn_forms_are_tasklets(taiga::runtime& rt) {
  auto f = [] { return 1; };
  static_assert(std::is_same_v<decltype(taiga::spawn(f)), taiga::tasklet<int>>);
  static_assert(std::is_same_v<decltype(taiga::spawn(twice, 1)), taiga::tasklet<int>>);
  static_assert(
      std::is_same_v<decltype(taiga::spawn(taiga::spawn_options{}, f)), taiga::tasklet<int>>);
  taiga::spawn_options named{.name = "n"};
  static_assert(std::is_same_v<decltype(taiga::spawn(named, twice, 2)), taiga::tasklet<int>>);
  static_assert(std::is_same_v<decltype(taiga::spawn(rt, f)), taiga::tasklet<int>>);
  static_assert(std::is_same_v<decltype(taiga::spawn(rt, named, f)), taiga::tasklet<int>>);
  static_assert(std::is_same_v<decltype(taiga::spawn([] {})), taiga::tasklet<void>>);
  static_assert(std::is_same_v<decltype(taiga::spawn(f, taiga::source_location::current())),
                               taiga::tasklet<int>>);
  static_assert(std::is_same_v<decltype(rt.spawn(f)), taiga::tasklet<int>>);
  static_assert(std::is_same_v<decltype(taiga::spawn_on(0, f)), taiga::tasklet<int>>);
  static_assert(std::is_same_v<decltype(taiga::spawn([](std::stop_token, int x) { return x; }, 1)),
                               taiga::tasklet<int>>);
}

TEST_P(spawning, a_handle_is_assigned_a_new_spawn) {
  rt().run([] {
    auto gone = std::make_shared<std::atomic<bool>>(false);
    auto t = taiga::spawn(here(), [gone] {
      struct mark {
        std::atomic<bool>& g;
        ~mark() { g = true; }
      } m{*gone};
      for (;;) taiga::this_tasklet::sleep_for(1h);
      return 1;
    });
    auto first = t.id();
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    // The old tasklet is killed and joined, as when its handle is destroyed.
    t = taiga::spawn([](int x) { return x + 1; }, 41);
    EXPECT_TRUE(gone->load());
    EXPECT_NE(t.id(), first);
    EXPECT_EQ(t.join(), 42);
    EXPECT_FALSE(t.joinable());
    // An empty handle takes a spawn too; so does one whose tasklet ended.
    t = taiga::spawn(twice, 5);
    EXPECT_EQ(t.join(), 10);
    t = taiga::spawn(twice, 6);
    while (t.alive()) taiga::this_tasklet::yield();
    t = taiga::spawn(taiga::spawn_options{.name = "third"}, twice, 7);
    EXPECT_EQ(t.name(), "third");
    EXPECT_EQ(t.join(), 14);
  });
}

TEST_P(spawning, every_form_spawns_with_arguments_and_a_site) {
  int ten = rt().run([] {
    auto t = taiga::spawn(
        [](int a, long b, short c, char d, unsigned e, int f, int g, int h, int i,
           const std::string& j) {
          return a + static_cast<int>(b) + c + d + static_cast<int>(e) + f + g + h + i +
                 static_cast<int>(j.size());
        },
        1, 1L, short{1}, char{1}, 1u, 1, 1, 1, 1, std::string("x"));
    return t.join();
  });
  EXPECT_EQ(ten, 10);
  unsigned line = __LINE__ + 1;
  auto t = taiga::spawn(rt(), taiga::spawn_options{.name = "outside"}, twice, 4);
  EXPECT_EQ(t.spawn_site().line(), line);
  EXPECT_EQ(t.name(), "outside");
  EXPECT_EQ(t.join(), 8);
  auto caller = taiga::source_location::current("caller.cpp", "serve", 42, 7);
  auto u = taiga::spawn(rt(), twice, 3, caller);
  EXPECT_STREQ(u.spawn_site().file_name(), "caller.cpp");
  EXPECT_EQ(u.spawn_site().line(), 42u);
  EXPECT_EQ(u.join(), 6);
  EXPECT_EQ(rt().spawn(twice, 2).join(), 4);
}

// ---- std::stop_token ------------------------------------------------------

TEST_P(spawning, a_stop_request_ends_a_yield_loop) {
  rt().run([] {
    auto t = taiga::spawn([](std::stop_token st) {
      long rounds = 0;
      while (!st.stop_requested()) {
        ++rounds;
        taiga::this_tasklet::yield();
      }
      return rounds;
    });
    while (t.state() == taiga::tasklet_state::created) taiga::this_tasklet::yield();
    EXPECT_TRUE(t.get_stop_token().stop_possible());
    EXPECT_FALSE(t.get_stop_token().stop_requested());
    EXPECT_TRUE(t.request_stop());
    EXPECT_FALSE(t.request_stop());  // already requested
    EXPECT_GE(t.join(), 0);
  });
}

TEST_P(spawning, a_stop_request_from_a_plain_thread_ends_a_yield_loop) {
  auto t = taiga::spawn(
      rt(),
      [](std::stop_token st, int step) {
        int n = 0;
        while (!taiga::this_tasklet::stop_requested()) {
          n += step;
          taiga::this_tasklet::yield();
        }
        EXPECT_TRUE(st.stop_requested());
        return n >= 0;
      },
      1);
  std::this_thread::sleep_for(5ms);
  t.request_stop();
  EXPECT_TRUE(t.join());
}

TEST_P(spawning, stop_callbacks_run_on_the_requester) {
  rt().run([] {
    std::atomic<int> inside{0}, outside{0};
    std::atomic<bool> registered{false};
    auto t = taiga::spawn([&](std::stop_token st) {
      std::stop_callback cb(st, [&] { inside.fetch_add(1); });
      registered = true;
      while (!st.stop_requested()) taiga::this_tasklet::sleep_for(1ms);
      return inside.load();
    });
    std::stop_callback from_here(t.get_stop_token(), [&] { outside.fetch_add(1); });
    while (!registered.load()) taiga::this_tasklet::sleep_for(1ms);
    t.request_stop();
    // Both callbacks ran inside request_stop, before it returned.
    EXPECT_EQ(inside.load(), 1);
    EXPECT_EQ(outside.load(), 1);
    EXPECT_EQ(t.join(), 1);
  });
}

TEST_P(spawning, a_stop_requested_before_the_first_run_is_seen) {
  rt().run([] {
    auto t = taiga::spawn(here(), [](std::stop_token st) { return st.stop_requested(); });
    ASSERT_EQ(t.state(), taiga::tasklet_state::created);
    EXPECT_TRUE(t.request_stop());
    EXPECT_TRUE(t.join());
    // The same for a tasklet that asks for its token itself.
    auto u = taiga::spawn(here(), [] {
      return taiga::this_tasklet::stop_requested() &&
             taiga::this_tasklet::get_stop_token().stop_requested();
    });
    ASSERT_EQ(u.state(), taiga::tasklet_state::created);
    EXPECT_TRUE(u.get_stop_source().request_stop());
    EXPECT_TRUE(u.join());
  });
}

TEST_P(spawning, a_tasklet_s_token_is_its_handle_s) {
  rt().run([] {
    std::atomic<bool> go{false}, started{false};
    auto t = taiga::spawn([&] {
      std::stop_token st = taiga::this_tasklet::get_stop_token();
      EXPECT_FALSE(taiga::this_tasklet::stop_requested());
      started = true;
      while (!go.load()) taiga::this_tasklet::sleep_for(1ms);
      return st.stop_requested();
    });
    while (!started.load()) taiga::this_tasklet::sleep_for(1ms);
    std::stop_source src = t.get_stop_source();
    EXPECT_TRUE(src.stop_possible());
    EXPECT_EQ(src.get_token(), t.get_stop_token());
    src.request_stop();
    go = true;
    EXPECT_TRUE(t.join());
    // The stop state outlives the join (as a std::jthread's).
    EXPECT_TRUE(src.stop_requested());
  });
  taiga::tasklet<int> empty;
  EXPECT_FALSE(empty.request_stop());
  EXPECT_FALSE(empty.get_stop_source().stop_possible());
  EXPECT_FALSE(empty.get_stop_token().stop_possible());
  EXPECT_FALSE(taiga::this_tasklet::stop_requested());
  EXPECT_THROW(taiga::this_tasklet::get_stop_token(), taiga::usage_error);
}

// The handle's destructor requests a stop, then kills and joins: the stop
// callbacks run, and the tasklet's destructors see the request.
TEST_P(spawning, a_dropped_handle_requests_a_stop_before_its_kill) {
  rt().run([] {
    std::atomic<int> callbacks{0};
    std::atomic<bool> seen_in_destructor{false}, parked{false};
    {
      auto t = taiga::spawn([&](std::stop_token st) {
        std::stop_callback cb(st, [&] { callbacks.fetch_add(1); });
        struct look {
          std::stop_token& st;
          std::atomic<bool>& seen;
          ~look() { seen = st.stop_requested(); }
        } l{st, seen_in_destructor};
        parked = true;
        for (;;) taiga::this_tasklet::sleep_for(1h);  // never looks: killed
      });
      while (!parked.load() || t.state() != taiga::tasklet_state::parked)
        taiga::this_tasklet::sleep_for(1ms);
    }
    EXPECT_EQ(callbacks.load(), 1);
    EXPECT_TRUE(seen_in_destructor.load());
  });
}

}  // namespace
