// taiga::promise / future / shared_future, when_all / when_any /
// as_completed, and the task_pool executor: waits from tasklets and plain
// threads, broken promises, exceptions, racing setters, cancel, done
// callbacks, kills, the concurrency cap, map order and its bounded window,
// shutdown.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <string>
#include <taiga/channels/executor.hpp>
#include <taiga/channels/future.hpp>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime.hpp>
#include <thread>
#include <tuple>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::scaled;
using taiga::test::wait_parked;
using taiga::test::with_workers;

namespace {
// A value whose constructor parks on `gate` (when given), then throws if
// `fail`: a slow or failing set_value.
struct slow_value {
  slow_value(int x, taiga::event* gate, bool fail) : v(x) {
    if (gate != nullptr) gate->wait();
    if (fail) throw std::runtime_error("slow_value: constructor failed");
  }
  int v;
};
}  // namespace

class future_test : public with_workers {};
TAIGA_WORKER_COUNTS(future_test);
class task_pool_test : public with_workers {};
TAIGA_WORKER_COUNTS(task_pool_test);

// ---- promise / future --------------------------------------------------------

TEST(promise_plain, value_exception_and_usage_errors_without_a_runtime) {
  taiga::promise<int> p;
  auto f = p.get_future();
  EXPECT_THROW((void)p.get_future(), taiga::usage_error);
  EXPECT_TRUE(f.valid());
  EXPECT_FALSE(f.is_ready());
  EXPECT_EQ(f.wait_for(1ms), std::future_status::timeout);
  p.set_value(5);
  EXPECT_THROW(p.set_value(6), taiga::usage_error);
  EXPECT_THROW(p.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               taiga::usage_error);
  EXPECT_TRUE(f.is_ready());
  EXPECT_EQ(f.wait_for(0ms), std::future_status::ready);
  EXPECT_EQ(f.get(), 5);
  EXPECT_FALSE(f.valid());
  EXPECT_THROW(f.get(), taiga::usage_error);
  EXPECT_THROW(f.wait(), taiga::usage_error);

  taiga::promise<void> pv;
  auto fv = pv.get_future();
  pv.set_exception(std::make_exception_ptr(std::runtime_error("boom")));
  EXPECT_THROW(pv.set_value(), taiga::usage_error);
  EXPECT_THROW(fv.get(), std::runtime_error);
}

TEST(promise_plain, a_destroyed_promise_is_broken) {
  taiga::future<std::string> f;
  {
    taiga::promise<std::string> p;
    f = p.get_future();
  }
  EXPECT_TRUE(f.is_ready());
  EXPECT_THROW(f.get(), taiga::broken_promise);

  // Move-assigning over a promise breaks the old one too.
  taiga::promise<int> a, b;
  auto fa = a.get_future();
  a = std::move(b);
  EXPECT_THROW(fa.get(), taiga::broken_promise);
  // A satisfied promise that dies is not broken.
  taiga::future<int> g;
  {
    taiga::promise<int> p;
    g = p.get_future();
    p.set_value(1);
  }
  EXPECT_EQ(g.get(), 1);
}

TEST(promise_plain, plain_threads_wait_for_a_plain_thread) {
  taiga::promise<std::unique_ptr<int>> p;
  taiga::shared_future<std::unique_ptr<int>> sf = p.get_future();
  std::atomic<int> seen{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.emplace_back([&, sf] {
      if (*sf.get() == 9) seen.fetch_add(1);
    });
  std::this_thread::sleep_for(2ms);
  p.set_value(std::make_unique<int>(9));
  for (auto& t : waiters) t.join();
  EXPECT_EQ(seen.load(), 4);
  EXPECT_EQ(*sf.get(), 9) << "a shared_future stays valid";
}

TEST_P(future_test, tasklets_park_until_a_tasklet_sets_the_value) {
  rt().run([] {
    taiga::promise<int> p;
    taiga::shared_future<int> sf = p.get_future().share();
    std::vector<taiga::tasklet<int>> ts;
    for (int i = 0; i < 8; ++i) {
      ts.push_back(taiga::spawn([sf] { return sf.get(); }));
    }
    for (auto& t : ts) wait_parked(t);
    auto setter = taiga::spawn([&] { p.set_value(11); });
    setter.join();
    for (auto& t : ts) EXPECT_EQ(t.join(), 11);
  });
}

TEST_P(future_test, plain_threads_wait_for_a_tasklet) {
  taiga::promise<int> p;
  taiga::shared_future<int> sf = p.get_future();
  std::atomic<int> sum{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) waiters.emplace_back([&, sf] { sum.fetch_add(sf.get()); });
  rt().run([&] {
    taiga::this_tasklet::sleep_for(1ms);
    p.set_value(7);
  });
  for (auto& t : waiters) t.join();
  EXPECT_EQ(sum.load(), 21);
}

TEST_P(future_test, a_tasklet_waits_for_a_plain_thread) {
  auto guard = rt().keep_alive();  // only the plain thread can wake it
  taiga::promise<std::string> p;
  auto f = p.get_future();
  std::thread setter;
  std::string got = rt().run([&] {
    setter = std::thread([&] {
      std::this_thread::sleep_for(2ms);
      p.set_value("hello");
    });
    return f.get();
  });
  setter.join();
  EXPECT_EQ(got, "hello");
}

TEST_P(future_test, exceptions_and_broken_promises_reach_tasklets) {
  rt().run([] {
    taiga::promise<int> p;
    auto f = p.get_future();
    auto t = taiga::spawn([&] { return f.get(); });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    p.set_exception(std::make_exception_ptr(std::invalid_argument("bad")));
    EXPECT_THROW(t.join(), std::invalid_argument);

    auto q = std::make_unique<taiga::promise<void>>();
    auto g = q->get_future();
    auto u = taiga::spawn([&] { g.get(); });
    while (u.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    q.reset();
    EXPECT_THROW(u.join(), taiga::broken_promise);
  });
}

TEST_P(future_test, wait_for_times_out_then_sees_the_value) {
  rt().run([] {
    taiga::promise<int> p;
    auto f = p.get_future();
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(f.wait_for(5ms), std::future_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    EXPECT_EQ(f.wait_until(std::chrono::system_clock::now() + 1ms), std::future_status::timeout);
    auto setter = taiga::spawn([&] {
      taiga::this_tasklet::sleep_for(1ms);
      p.set_value(3);
    });
    EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(f.get(), 3);
    setter.join();
  });
}

TEST_P(future_test, a_killed_waiter_unwinds_and_the_future_stays_usable) {
  rt().run([] {
    taiga::promise<int> p;
    taiga::shared_future<int> sf = p.get_future();
    auto victim = taiga::spawn([sf] { return sf.get(); });
    while (victim.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    victim.kill();
    EXPECT_THROW(victim.join(), taiga::tasklet_killed);
    auto other = taiga::spawn([sf] { return sf.get(); });
    while (other.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    p.set_value(4);
    EXPECT_EQ(other.join(), 4);
  });
}

TEST_P(future_test, many_waiters_many_timeouts_one_setter) {
  rt().run([] {
    const int n = static_cast<int>(scaled(200));
    for (int round = 0; round < 5; ++round) {
      taiga::promise<int> p;
      taiga::shared_future<int> sf = p.get_future();
      std::atomic<int> got{0}, timed_out{0};
      std::vector<taiga::tasklet<void>> ts;
      for (int i = 0; i < n; ++i)
        ts.push_back(taiga::spawn([&, sf, i] {
          if (i % 3 == 0 &&
              sf.wait_for(std::chrono::microseconds(i)) == std::future_status::timeout) {
            timed_out.fetch_add(1);
            return;
          }
          if (sf.get() == round) got.fetch_add(1);
        }));
      taiga::this_tasklet::sleep_for(100us);
      p.set_value(round);
      for (auto& t : ts) t.join();
      EXPECT_EQ(got.load() + timed_out.load(), n);
    }
  });
}

// Regression: set_value marked the promise satisfied before it constructed
// the value. A second setter that came while the first one's constructor ran
// was told "already set"; then that constructor threw, the first setter
// unmarked the promise, and nothing had been stored: the future stayed unset
// forever. Now the second setter stores its value, and the first one's
// exception reaches only its own caller.
TEST_P(future_test, a_setter_racing_a_throwing_constructor_still_sets_the_value) {
  rt().run([] {
    taiga::event gate;
    taiga::promise<slow_value> p;
    auto f = p.get_future();
    auto first = taiga::spawn([&] { p.set_value(1, &gate, true); });
    while (first.state() != taiga::tasklet_state::parked)
      taiga::this_tasklet::sleep_for(1ms);  // in the constructor
    EXPECT_NO_THROW(p.set_value(2, nullptr, false));
    EXPECT_TRUE(f.is_ready());
    gate.set();
    EXPECT_THROW(first.join(), std::runtime_error);
    EXPECT_EQ(f.get().v, 2);
  });
}

TEST_P(future_test, setters_see_already_set_only_once_a_result_is_stored) {
  rt().run([] {
    // A constructor that fails alone leaves the promise settable.
    taiga::promise<slow_value> p;
    auto f = p.get_future();
    EXPECT_THROW(p.set_value(1, nullptr, true), std::runtime_error);
    EXPECT_FALSE(f.is_ready());
    EXPECT_TRUE(p.set_value(2, nullptr, false));
    EXPECT_EQ(f.get().v, 2);

    // A slow constructor that succeeds after another setter stored a value:
    // its own value is dropped and it gets usage_error.
    taiga::event gate;
    taiga::promise<slow_value> q;
    auto g = q.get_future();
    auto slow = taiga::spawn([&] { return q.set_value(3, &gate, false); });
    while (slow.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_TRUE(q.set_value(4, nullptr, false));
    gate.set();
    EXPECT_THROW(slow.join(), taiga::usage_error);
    EXPECT_EQ(g.get().v, 4);

    // set_exception while a constructor runs wins; the constructor's own
    // failure is what its caller sees.
    taiga::event gate2;
    taiga::promise<slow_value> r;
    auto h = r.get_future();
    auto failing = taiga::spawn([&] { return r.set_value(5, &gate2, true); });
    while (failing.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_TRUE(r.set_exception(std::make_exception_ptr(std::out_of_range("set"))));
    gate2.set();
    EXPECT_THROW(failing.join(), std::runtime_error);
    EXPECT_THROW(h.get(), std::out_of_range);
  });
}

// Racing setters, half of whose constructors throw: exactly one stores.
TEST_P(future_test, racing_setters_store_exactly_one_result) {
  rt().run([] {
    const long rounds = scaled(200);
    const int setters = 6;
    for (long round = 0; round < rounds; ++round) {
      taiga::promise<slow_value> p;
      auto f = p.get_future();
      std::atomic<int> stored{0}, already{0}, failed{0};
      std::vector<taiga::tasklet<void>> ts;
      for (int i = 0; i < setters; ++i)
        ts.push_back(taiga::spawn([&, i] {
          try {
            if (p.set_value(i, nullptr, i % 2 == 0)) stored.fetch_add(1);
          } catch (const taiga::usage_error&) {
            already.fetch_add(1);
          } catch (const std::runtime_error&) {
            failed.fetch_add(1);
          }
        }));
      for (auto& t : ts) t.join();
      ASSERT_EQ(stored.load(), 1) << "round " << round;
      EXPECT_EQ(stored.load() + already.load() + failed.load(), setters);
      EXPECT_EQ(f.get().v % 2, 1);
    }
  });
}

// ---- cancel and done callbacks -----------------------------------------------

TEST_P(future_test, cancel_wakes_every_waiter_and_later_sets_do_nothing) {
  rt().run([] {
    taiga::promise<int> p;
    taiga::shared_future<int> sf = p.get_future();
    std::vector<taiga::tasklet<int>> ts;
    for (int i = 0; i < 4; ++i) ts.push_back(taiga::spawn([sf] { return sf.get(); }));
    auto timed = taiga::spawn([sf] { return sf.wait_for(10s) == std::future_status::ready; });
    for (auto& t : ts) wait_parked(t);
    while (timed.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    int callbacks = 0;
    sf.add_done_callback([&] { ++callbacks; });
    EXPECT_FALSE(p.is_cancelled());
    EXPECT_FALSE(sf.is_cancelled());
    EXPECT_TRUE(sf.cancel());
    EXPECT_EQ(callbacks, 1) << "the canceller runs the callbacks";
    for (auto& t : ts) EXPECT_THROW(t.join(), taiga::future_cancelled);
    EXPECT_TRUE(timed.join());
    EXPECT_TRUE(sf.is_ready());
    EXPECT_TRUE(sf.is_cancelled());
    EXPECT_TRUE(p.is_cancelled());
    EXPECT_FALSE(sf.cancel()) << "cancelled already";
    EXPECT_FALSE(p.set_value(1)) << "a set after a cancel is a no-op";
    EXPECT_FALSE(p.set_exception(std::make_exception_ptr(std::runtime_error("late"))));
    EXPECT_THROW(sf.get(), taiga::future_cancelled);
    sf.add_done_callback([&] { ++callbacks; });  // ready: runs at once
    EXPECT_EQ(callbacks, 2);

    // Completed futures (a value, an exception, a broken promise) refuse.
    taiga::promise<int> q;
    auto g = q.get_future();
    EXPECT_TRUE(q.set_value(7));
    EXPECT_FALSE(g.cancel());
    EXPECT_FALSE(g.is_cancelled());
    EXPECT_EQ(g.get(), 7);
    EXPECT_THROW((void)g.cancel(), taiga::usage_error) << "invalid after get()";
    auto h = taiga::make_exceptional_future<int>(std::make_exception_ptr(std::domain_error("e")));
    EXPECT_FALSE(h.cancel());
    EXPECT_THROW(h.get(), std::domain_error);
    taiga::future<void> broken;
    {
      taiga::promise<void> r;
      broken = r.get_future();
    }
    EXPECT_FALSE(broken.cancel());
    EXPECT_THROW(broken.get(), taiga::broken_promise);

    // A promise destroyed after a cancel leaves it cancelled.
    taiga::future<std::string> c;
    {
      taiga::promise<std::string> r;
      c = r.get_future();
      EXPECT_TRUE(c.cancel());
    }
    EXPECT_THROW(c.get(), taiga::future_cancelled);
  });
}

TEST_P(future_test, cancel_wakes_a_plain_thread_and_races_set_value_once) {
  {
    taiga::promise<int> p;
    taiga::shared_future<int> sf = p.get_future();
    std::atomic<bool> cancelled_seen{false};
    std::thread waiter([&, sf] {
      try {
        (void)sf.get();
      } catch (const taiga::future_cancelled&) {
        cancelled_seen = true;
      }
    });
    rt().run([&] {
      taiga::this_tasklet::sleep_for(1ms);
      EXPECT_TRUE(sf.cancel());
    });
    waiter.join();
    EXPECT_TRUE(cancelled_seen.load());
  }
  rt().run([] {
    for (long round = 0; round < scaled(300); ++round) {
      taiga::promise<int> p;
      auto f = p.get_future();
      auto setter = taiga::spawn([&] { return p.set_value(1); });
      const bool cancelled = f.cancel();
      const bool set = setter.join();
      ASSERT_NE(cancelled, set) << "exactly one of cancel and set_value wins";
      if (set) {
        EXPECT_EQ(f.get(), 1);
      } else {
        EXPECT_THROW(f.get(), taiga::future_cancelled);
      }
    }
  });
}

TEST_P(future_test, done_callbacks_run_once_in_order_on_the_setter_after_the_result) {
  rt().run([] {
    taiga::promise<int> p;
    taiga::shared_future<int> sf = p.get_future();
    std::vector<int> seen;  // written by the setter's tasklet only
    std::atomic<taiga::tasklet_id> ran_on{0};
    sf.add_done_callback([&] {
      ran_on = taiga::this_tasklet::get_id();
      seen.push_back(-1);
    });
    sf.add_done_callback([&](const taiga::shared_future<int>& f) {
      EXPECT_TRUE(f.is_ready()) << "the result is published before callbacks run";
      seen.push_back(f.get());
    });
    auto waiter = taiga::spawn([sf] { return sf.get(); });
    while (waiter.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_TRUE(seen.empty());
    auto setter = taiga::spawn([&] {
      p.set_value(42);
      return seen.size();  // the callbacks ran inside set_value
    });
    const taiga::tasklet_id setter_id = setter.id();
    EXPECT_EQ(setter.join(), 2u);
    EXPECT_EQ(ran_on.load(), setter_id);
    EXPECT_EQ(seen, (std::vector<int>{-1, 42}));
    EXPECT_EQ(waiter.join(), 42);
    // Ready already: runs at once, in the caller.
    taiga::tasklet_id here = 0;
    sf.add_done_callback([&] { here = taiga::this_tasklet::get_id(); });
    EXPECT_EQ(here, taiga::this_tasklet::get_id());

    // future<T>: the callback runs, then the one reader gets the value.
    taiga::promise<std::unique_ptr<int>> q;
    auto f = q.get_future();
    int calls = 0;
    f.add_done_callback([&] { ++calls; });
    q.set_value(std::make_unique<int>(5));
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(*f.get(), 5);
    // A broken promise runs them too.
    taiga::future<void> g;
    {
      taiga::promise<void> r;
      g = r.get_future();
      g.add_done_callback([&] { ++calls; });
    }
    EXPECT_EQ(calls, 2);
  });
}

// A done callback's exception never reaches set_value's caller (or
// add_done_callback's): it goes to the runtime's error_handler, and the
// other callbacks still run.
TEST_P(future_test, a_throwing_done_callback_goes_to_the_error_handler) {
  std::atomic<int> reported{0};
  std::vector<std::string> whats;
  std::mutex mu;
  taiga::runtime_config c;
  c.workers = GetParam();
  c.name = "callbacks";
  c.error_handler = [&](const taiga::tasklet_info& info, std::exception_ptr e) {
    std::lock_guard lk(mu);
    EXPECT_EQ(info.state, "running a future's done callback");
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      whats.emplace_back(x.what());
    }
    reported.fetch_add(1);
  };
  {
    taiga::runtime other(std::move(c));
    other.run([] {
      taiga::promise<int> p;
      auto f = p.get_future();
      int later = 0;
      f.add_done_callback([] { throw std::runtime_error("callback failed"); });
      f.add_done_callback([&] { ++later; });
      EXPECT_NO_THROW(p.set_value(1));
      EXPECT_EQ(later, 1);
      EXPECT_EQ(f.get(), 1);
      auto g = taiga::make_ready_future(2);
      EXPECT_NO_THROW(g.add_done_callback([] { throw std::logic_error("at once"); }));
      EXPECT_EQ(g.get(), 2);
    });
    taiga::test::expect_clean(other);
  }
  EXPECT_EQ(reported.load(), 2);
  EXPECT_EQ(whats, (std::vector<std::string>{"callback failed", "at once"}));
}

// ---- combinators -------------------------------------------------------------

TEST_P(future_test, when_all_collects_in_order) {
  rt().run([] {
    std::vector<taiga::promise<int>> ps(5);
    std::vector<taiga::future<int>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    auto all = taiga::when_all(std::move(fs));
    EXPECT_FALSE(all.is_ready());
    auto setter = taiga::spawn([&] {
      for (int i = 4; i >= 0; --i) {
        ps[static_cast<std::size_t>(i)].set_value(i * 10);
        taiga::this_tasklet::yield();
      }
    });
    EXPECT_EQ(all.get(), (std::vector<int>{0, 10, 20, 30, 40}));
    setter.join();

    EXPECT_TRUE(taiga::when_all(std::vector<taiga::future<int>>{}).get().empty());
    std::vector<taiga::future<void>> vs;
    vs.push_back(taiga::make_ready_future());
    taiga::when_all(std::move(vs)).get();
    std::vector<taiga::future<int>> bad(1);
    EXPECT_THROW((void)taiga::when_all(std::move(bad)), taiga::usage_error);
  });
}

TEST_P(future_test, when_all_of_a_tuple_mixes_types) {
  rt().run([] {
    taiga::promise<std::string> ps;
    taiga::promise<void> pv;
    auto all = taiga::when_all(taiga::make_ready_future(1), ps.get_future(), pv.get_future());
    auto t = taiga::spawn([&] {
      ps.set_value("two");
      pv.set_value();
    });
    auto [a, b, c] = all.get();
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, "two");
    (void)c;  // std::monostate
    t.join();
  });
}

TEST_P(future_test, when_all_reports_the_first_failure_by_position) {
  rt().run([] {
    std::vector<taiga::promise<int>> ps(3);
    std::vector<taiga::future<int>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    auto all = taiga::when_all(std::move(fs));
    ps[2].set_exception(std::make_exception_ptr(std::out_of_range("two")));
    ps[1].set_exception(std::make_exception_ptr(std::invalid_argument("one")));
    EXPECT_FALSE(all.is_ready()) << "ready before every child";
    ps[0].set_value(0);
    EXPECT_THROW(all.get(), std::invalid_argument);
  });
}

TEST_P(future_test, when_any_gives_the_first_index_and_the_futures_back) {
  rt().run([] {
    std::vector<taiga::promise<int>> ps(4);
    std::vector<taiga::future<int>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    auto any = taiga::when_any(std::move(fs));
    auto t = taiga::spawn([&] { ps[2].set_value(22); });
    auto r = any.get();
    t.join();
    EXPECT_EQ(r.index, 2u);
    ASSERT_EQ(r.futures.size(), 4u);
    EXPECT_EQ(r.futures[2].get(), 22);
    EXPECT_FALSE(r.futures[0].is_ready());
    ps[0].set_value(0);
    EXPECT_EQ(r.futures[0].get(), 0);
    EXPECT_THROW((void)taiga::when_any(std::vector<taiga::future<int>>{}), taiga::usage_error);
  });
}

TEST_P(future_test, as_completed_yields_in_completion_order) {
  rt().run([] {
    std::vector<taiga::promise<int>> ps(5);
    std::vector<taiga::future<int>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    const std::vector<int> order{3, 0, 4, 1, 2};
    // Futures already ready when as_completed starts come first, by position;
    // so start it before any is set.
    auto range = taiga::as_completed(std::move(fs));
    auto setter = taiga::spawn([&] {
      for (int i : order) {
        taiga::this_tasklet::sleep_for(200us);
        ps[static_cast<std::size_t>(i)].set_value(i);
      }
    });
    std::vector<int> got;
    for (auto& f : range) got.push_back(f.get());
    setter.join();
    EXPECT_EQ(got, order);
  });
}

TEST_P(future_test, as_completed_of_ready_and_failed_futures) {
  rt().run([] {
    std::vector<taiga::future<int>> fs;
    fs.push_back(taiga::make_ready_future(1));
    fs.push_back(
        taiga::make_exceptional_future<int>(std::make_exception_ptr(std::runtime_error("x"))));
    taiga::promise<int> late;
    fs.push_back(late.get_future());
    auto r = taiga::as_completed(std::move(fs));
    EXPECT_EQ(r.remaining(), 3u);
    EXPECT_EQ(r.next()->get(), 1);
    EXPECT_THROW(r.next()->get(), std::runtime_error);
    EXPECT_FALSE(r.try_next_for(1ms).has_value());
    late.set_value(3);
    EXPECT_EQ(r.next()->get(), 3);
    EXPECT_FALSE(r.next().has_value());
  });
}

// ---- task_pool ---------------------------------------------------------------

TEST_P(task_pool_test, never_runs_more_than_max_at_once) {
  std::atomic<int> now{0}, peak{0};
  rt().run([&] {
    taiga::task_pool pool(3);
    EXPECT_EQ(pool.max_tasklets(), 3u);
    std::vector<taiga::future<int>> fs;
    const int n = static_cast<int>(scaled(60));
    for (int i = 0; i < n; ++i)
      fs.push_back(pool.submit(
          [&](int x) {
            int c = now.fetch_add(1) + 1;
            int p = peak.load();
            while (c > p && !peak.compare_exchange_weak(p, c)) {
            }
            taiga::this_tasklet::sleep_for(100us);
            now.fetch_sub(1);
            return x * x;
          },
          i));
    EXPECT_LE(pool.running(), 3u);
    for (int i = 0; i < n; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].get(), i * i);
  });
  EXPECT_LE(peak.load(), 3);
  EXPECT_GE(peak.load(), 1);
}

TEST_P(task_pool_test, map_returns_results_in_input_order) {
  rt().run([] {
    taiga::task_pool pool(4);
    std::vector<int> in(static_cast<std::size_t>(scaled(40)));
    std::iota(in.begin(), in.end(), 0);
    std::vector<std::string> out;
    for (auto& r : pool.map(
             [](int x) {
               // Later inputs finish first.
               taiga::this_tasklet::sleep_for(std::chrono::microseconds(50 * (40 - x % 40)));
               return std::to_string(x);
             },
             in))
      out.push_back(std::move(r));
    ASSERT_EQ(out.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], std::to_string(in[i]));
    std::atomic<int> calls{0};
    pool.map([&](int) { calls.fetch_add(1); }, in);
    EXPECT_EQ(calls.load(), static_cast<int>(in.size()));
  });
}

TEST_P(task_pool_test, exceptions_go_to_the_future) {
  rt().run([] {
    taiga::task_pool pool(2);
    auto f = pool.submit([]() -> int { throw std::domain_error("no"); });
    auto g = pool.submit([] { return 1; });
    EXPECT_THROW(f.get(), std::domain_error);
    EXPECT_EQ(g.get(), 1);
    auto results = pool.map([](int x) { return x > 2 ? throw std::range_error("r"), x : x; },
                            std::vector<int>{1, 2, 3, 4});
    std::vector<int> got;
    EXPECT_THROW(
        {
          for (int r : results) got.push_back(r);
        },
        std::range_error);
    EXPECT_EQ(got, (std::vector<int>{1, 2}));
    EXPECT_THROW(pool.map([](int x) { x > 2 ? throw std::range_error("r") : void(); },
                          std::vector<int>{1, 2, 3, 4}),
                 std::range_error);
  });
}

TEST_P(task_pool_test, shutdown_waits_and_refuses_new_calls) {
  rt().run([] {
    std::atomic<int> done{0};
    taiga::task_pool pool(2);
    for (int i = 0; i < 10; ++i)
      (void)pool.submit([&] {
        taiga::this_tasklet::sleep_for(200us);
        done.fetch_add(1);
      });
    pool.shutdown(true);
    EXPECT_EQ(done.load(), 10);
    EXPECT_EQ(pool.running(), 0u);
    EXPECT_THROW((void)pool.submit([] {}), taiga::usage_error);
    pool.shutdown();  // idempotent
  });
}

TEST_P(task_pool_test, shutdown_without_wait_lets_queued_calls_finish) {
  rt().run([] {
    std::atomic<int> done{0};
    std::vector<taiga::future<void>> fs;
    taiga::promise<void> gate;
    taiga::shared_future<void> open = gate.get_future();
    {
      taiga::task_pool pool(1);
      for (int i = 0; i < 5; ++i)
        fs.push_back(pool.submit([&, open] {
          open.get();
          done.fetch_add(1);
        }));
      pool.shutdown(false);  // returns at once
      EXPECT_EQ(done.load(), 0);
      EXPECT_EQ(pool.pending(), 4u);
      EXPECT_THROW((void)pool.submit([] {}), taiga::usage_error);
      gate.set_value();
    }  // the destructor waits
    EXPECT_EQ(done.load(), 5);
    for (auto& f : fs) EXPECT_NO_THROW(f.get());
  });
}

// The destructor cannot raise: a kill that cuts its wait short stays
// pending and ends the tasklet at its next park point, instead of being
// swallowed.
TEST_P(task_pool_test, a_kill_during_the_destructors_wait_is_kept_for_the_next_park_point) {
  rt().run([] {
    taiga::promise<void> gate;
    taiga::shared_future<void> open = gate.get_future();
    std::atomic<bool> after_destructor{false}, after_park{false};
    std::optional<taiga::task_pool> pool;
    pool.emplace(1);
    auto call = pool->submit([open] { open.get(); });
    auto owner = taiga::spawn([&] {
      pool.reset();  // parks: the call runs until the gate opens
      after_destructor = true;
      taiga::this_tasklet::sleep_for(1s);  // the kill is raised here
      after_park = true;
    });
    taiga::test::wait_parked(owner);
    owner.kill();
    EXPECT_THROW(owner.join(), taiga::tasklet_killed);
    EXPECT_TRUE(after_destructor.load()) << "the destructor returned once the kill cut its wait";
    EXPECT_FALSE(after_park.load()) << "the kill was swallowed by the destructor";
    gate.set_value();
    EXPECT_NO_THROW(call.get());  // the call ran on, on its own
  });
}

// A kill already pending when the destructor starts: no wait, still raised.
TEST_P(task_pool_test, a_kill_pending_before_the_destructor_is_not_swallowed) {
  rt().run([] {
    taiga::promise<void> gate;
    taiga::shared_future<void> open = gate.get_future();
    std::atomic<bool> after_park{false}, started{false}, kill_sent{false};
    auto owner = taiga::spawn([&] {
      {
        taiga::task_pool pool(1);
        (void)pool.submit([open] { open.get(); });
        started = true;
        while (!kill_sent.load()) {
        }  // no park point: the kill waits, pending
      }    // must not wait for the call, must not take the kill
      taiga::this_tasklet::sleep_for(1s);
      after_park = true;
    });
    // A plain thread kills: on one worker this tasklet cannot run meanwhile.
    std::thread killer([&] {
      while (!started.load()) std::this_thread::yield();
      owner.kill();
      kill_sent = true;
    });
    EXPECT_THROW(owner.join(), taiga::tasklet_killed);
    killer.join();
    EXPECT_FALSE(after_park.load());
    gate.set_value();
  });
}

TEST_P(task_pool_test, shutdown_from_its_own_call_is_a_usage_error) {
  rt().run([] {
    taiga::task_pool pool(1);
    auto f = pool.submit([&] { pool.shutdown(true); });
    EXPECT_THROW(f.get(), taiga::usage_error);
  });
}

TEST_P(task_pool_test, a_pool_on_a_runtime_serves_plain_threads) {
  EXPECT_THROW(taiga::task_pool(2), taiga::usage_error) << "no current runtime here";
  taiga::task_pool pool(rt(), 2);
  std::vector<std::thread> threads;
  std::atomic<long> sum{0};
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i)
        sum.fetch_add(pool.submit([](int x) { return x; }, t * 10 + i).get());
    });
  for (auto& th : threads) th.join();
  pool.shutdown();
  EXPECT_EQ(sum.load(), 29 * 30 / 2);
}

TEST_P(task_pool_test, calls_may_park_on_each_other) {
  rt().run([] {
    taiga::task_pool pool(4);
    taiga::promise<int> gate;
    taiga::shared_future<int> open = gate.get_future();
    std::vector<taiga::future<int>> fs;
    for (int i = 0; i < 3; ++i) fs.push_back(pool.submit([open, i] { return open.get() + i; }));
    fs.push_back(pool.submit([&] {
      gate.set_value(100);
      return 0;
    }));
    auto all = taiga::when_all(std::move(fs)).get();
    EXPECT_EQ(all, (std::vector<int>{100, 101, 102, 0}));
  });
}

TEST_P(task_pool_test, a_cancelled_queued_call_never_runs) {
  rt().run([] {
    taiga::task_pool pool(1);
    taiga::event gate;
    std::atomic<int> ran{0};
    auto blocker = pool.submit([&] { gate.wait(); });
    auto f = pool.submit([&] {
      ran.fetch_add(1);
      return 1;
    });
    EXPECT_EQ(pool.pending(), 1u);
    EXPECT_TRUE(f.cancel());
    gate.set();
    pool.shutdown(true);
    blocker.get();
    EXPECT_EQ(ran.load(), 0);
    EXPECT_THROW(f.get(), taiga::future_cancelled);
  });
}

// Regression: map submitted every item at once and returned only when all of
// them had run. Now it is a lazy range that keeps at most twice the pool's
// size in flight, submitting the next item as each result is consumed.
TEST_P(task_pool_test, map_is_lazy_and_keeps_at_most_twice_the_pool_in_flight) {
  rt().run([] {
    taiga::task_pool pool(2);
    std::atomic<int> started{0};
    std::vector<int> in(static_cast<std::size_t>(scaled(100)));
    std::iota(in.begin(), in.end(), 0);
    auto results = pool.map(
        [&](int x) {
          started.fetch_add(1);
          taiga::this_tasklet::yield();
          return 2 * x;
        },
        in);
    static_assert(std::ranges::input_range<decltype(results)>);
    ASSERT_EQ(results.window(), 4u);
    taiga::this_tasklet::sleep_for(1ms);  // let the pool run ahead if it can
    EXPECT_LE(started.load(), 4);
    std::size_t i = 0;
    for (int& r : results) {
      EXPECT_EQ(r, 2 * in[i]);
      EXPECT_LE(started.load(), static_cast<int>(i) + 4) << "more calls in flight than the window";
      ++i;
    }
    EXPECT_EQ(i, in.size());
    EXPECT_EQ(started.load(), static_cast<int>(in.size()));
  });
}

TEST_P(task_pool_test, map_rethrows_the_first_failure_where_consumed_and_stops) {
  rt().run([] {
    taiga::task_pool pool(2);
    std::atomic<int> ran{0};
    std::vector<int> in(100);
    std::iota(in.begin(), in.end(), 0);
    std::vector<int> got;
    {
      auto results = pool.map(
          [&](int x) {
            ran.fetch_add(1);
            if (x == 5 || x == 7) throw std::range_error(std::to_string(x));
            return x;
          },
          in);
      try {
        for (int r : results) got.push_back(r);
        ADD_FAILURE() << "no exception";
      } catch (const std::range_error& e) {
        EXPECT_STREQ(e.what(), "5");
      }
      EXPECT_TRUE(results.begin() == results.end()) << "nothing after the failure";
    }
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
    pool.shutdown(true);  // the calls that were running finish
    // Items 0..8 were submitted when item 5 was consumed (5 consumed + 4).
    EXPECT_LE(ran.load(), 9);
  });
}

TEST_P(task_pool_test, destroying_a_map_range_early_cancels_what_is_in_flight) {
  rt().run([] {
    taiga::task_pool pool(1);  // window 2
    taiga::event gate;
    std::atomic<int> ran{0};
    std::atomic<int> highest{-1};
    {
      // An rvalue range is moved into the map_range: iterating later is fine.
      auto results = pool.map(
          [&](std::unique_ptr<int> p) {
            ran.fetch_add(1);
            int v = *p;
            int h = highest.load();
            while (v > h && !highest.compare_exchange_weak(h, v)) {
            }
            if (v == 1) gate.wait();
            return v;
          },
          [] {
            std::vector<std::unique_ptr<int>> v;
            for (int i = 0; i < 50; ++i) v.push_back(std::make_unique<int>(i));
            return v;
          }());
      auto it = results.begin();
      EXPECT_EQ(*it, 0);
      ++it;  // submits item 2; items 1 (running or queued) and 2 are in flight
    }        // cancels them
    gate.set();
    pool.shutdown(true);
    EXPECT_LE(highest.load(), 1) << "a cancelled queued call ran";
    EXPECT_LE(ran.load(), 2);
  });
}

// A runtime shutdown kills the runners: the running call and the queued ones
// end with broken promises, and the pool's books balance (its destructor
// returns), whether the runner had started or not.
TEST_P(task_pool_test, runtime_shutdown_breaks_running_and_queued_calls) {
  for (bool let_it_start : {true, false}) {
    taiga::runtime_config c;
    c.workers = GetParam();
    c.name = "pool-shutdown";
    std::vector<taiga::future<int>> fs;
    std::atomic<bool> started{false};
    {
      taiga::runtime other(std::move(c));
      taiga::task_pool pool(other, 1);
      fs.push_back(pool.submit([&] {
        started = true;
        taiga::this_tasklet::sleep_for(10s);
        return 1;
      }));
      fs.push_back(pool.submit([] { return 2; }));
      while (let_it_start && !started) std::this_thread::sleep_for(100us);
      other.shutdown(taiga::shutdown_mode::kill);
      EXPECT_EQ(pool.running(), 0u);
      EXPECT_EQ(pool.pending(), 0u);
    }
    for (auto& f : fs) EXPECT_THROW(f.get(), taiga::broken_promise) << let_it_start;
  }
}
