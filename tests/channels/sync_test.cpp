// The synchronization toolkit (taiga/channels/sync.hpp): mutexes, shared
// mutexes, condition variables, events, semaphores, latches, barriers and
// wait groups, at 1, 2, 4 and 8 workers. Each primitive is checked for its
// rules, for FIFO wake order, under contention, with timeouts, with a waiter
// killed while parked (nothing may be lost), and shared with plain threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::scaled;
using taiga::test::wait_parked;
using taiga::test::with_workers;

namespace {

class mutexes : public with_workers {};
class recursive_mutexes : public with_workers {};
class shared_mutexes : public with_workers {};
class condition_variables : public with_workers {};
class events : public with_workers {};
class semaphores : public with_workers {};
class latches : public with_workers {};
class barriers : public with_workers {};
class wait_groups : public with_workers {};

// Kills a tasklet and joins it; it must end killed.
template <class R>
void kill_and_join(taiga::tasklet<R>& t) {
  t.kill();
  EXPECT_THROW(t.join(), taiga::tasklet_killed);
}

// Kills a tasklet and joins it, whether the kill or the tasklet's own end
// came first (for races on purpose).
template <class R>
void kill_and_join_any(taiga::tasklet<R>& t) {
  t.kill();
  try {
    t.join();
  } catch (const taiga::tasklet_killed&) {
  }
}

// Parks (sleeping) until `pred()` holds.
template <class P>
void wait_until_true(P pred) {
  while (!pred()) taiga::this_tasklet::sleep_for(1ms);
}

}  // namespace

TAIGA_WORKER_COUNTS(mutexes);
TAIGA_WORKER_COUNTS(recursive_mutexes);
TAIGA_WORKER_COUNTS(shared_mutexes);
TAIGA_WORKER_COUNTS(condition_variables);
TAIGA_WORKER_COUNTS(events);
TAIGA_WORKER_COUNTS(semaphores);
TAIGA_WORKER_COUNTS(latches);
TAIGA_WORKER_COUNTS(barriers);
TAIGA_WORKER_COUNTS(wait_groups);

// ---- mutex ---------------------------------------------------------------

TEST_P(mutexes, contended_counter_is_exact) {
  const long n = 2000;
  long counter = 0;  // guarded by m: a plain long, so TSan checks the lock
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  rt().run([&] {
    taiga::mutex m;
    std::vector<taiga::tasklet<void>> ts;
    for (int t = 0; t < 8; ++t)
      ts.push_back(taiga::spawn([&] {
        for (long i = 0; i < n; ++i) {
          std::lock_guard g(m);
          if (inside.fetch_add(1) != 0) overlap = true;
          ++counter;
          if (i % 128 == 0) taiga::this_tasklet::yield();  // hold it across a switch
          inside.fetch_sub(1);
        }
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(counter, 8 * n);
  EXPECT_FALSE(overlap.load());
}

TEST_P(mutexes, works_with_std_lock_types) {
  rt().run([] {
    taiga::mutex a, b;
    {
      std::unique_lock lk(a, std::try_to_lock);
      EXPECT_TRUE(lk.owns_lock());
      std::unique_lock lk2(b, std::defer_lock);
      EXPECT_TRUE(lk2.try_lock_for(1ms));
    }
    // Opposite orders through std::scoped_lock (std::lock's back-off) never
    // deadlock.
    long both = 0;
    const long n = scaled(2000);
    auto t1 = taiga::spawn([&] {
      for (long i = 0; i < n; ++i) {
        std::scoped_lock lk(a, b);
        ++both;
      }
    });
    auto t2 = taiga::spawn([&] {
      for (long i = 0; i < n; ++i) {
        std::scoped_lock lk(b, a);
        ++both;
      }
    });
    t1.join();
    t2.join();
    EXPECT_EQ(both, 2 * n);
    EXPECT_TRUE(a.try_lock());
    a.unlock();
  });
}

TEST_P(mutexes, try_and_timed_locks_fail_while_another_holds_it) {
  rt().run([] {
    taiga::mutex m;
    m.lock();
    taiga::spawn([&] {
      EXPECT_FALSE(m.try_lock());
      EXPECT_FALSE(m.try_lock_for(0ms));
      auto t0 = std::chrono::steady_clock::now();
      EXPECT_FALSE(m.try_lock_for(20ms));
      EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
      EXPECT_FALSE(m.try_lock_until(std::chrono::steady_clock::now() + 5ms));
      EXPECT_FALSE(m.try_lock_until(std::chrono::system_clock::now() + 5ms));
    }).join();
    // The timed-out waiters left the list: unlock leaves it free.
    m.unlock();
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
}

TEST_P(mutexes, timed_lock_succeeds_when_released_in_time) {
  rt().run([] {
    taiga::mutex m;
    m.lock();
    auto t = taiga::spawn([&] {
      bool got = m.try_lock_for(10s);
      if (got) m.unlock();
      return got;
    });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    m.unlock();
    EXPECT_TRUE(t.join());
  });
}

TEST_P(mutexes, misuse_throws_usage_error) {
  rt().run([] {
    taiga::mutex m;
    EXPECT_THROW(m.unlock(), taiga::usage_error);  // not locked
    m.lock();
    EXPECT_THROW(m.lock(), taiga::usage_error);  // would deadlock
    EXPECT_FALSE(m.try_lock());
    taiga::spawn([&] { EXPECT_THROW(m.unlock(), taiga::usage_error); }).join();  // not the owner
    m.unlock();
  });
}

TEST_P(mutexes, unlock_hands_off_in_fifo_order_without_barging) {
  rt().run([] {
    taiga::mutex m;
    std::vector<int> order;
    taiga::event release_first;
    m.lock();
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 6; ++i) {
      ts.push_back(taiga::spawn([&, i] {
        std::lock_guard g(m);
        order.push_back(i);
        if (i == 0) release_first.wait();
      }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    m.unlock();
    // Waiter 0 owns it from the unlock on, even before it runs: a newcomer
    // cannot barge in.
    EXPECT_FALSE(m.try_lock());
    EXPECT_FALSE(m.try_lock_for(1ms));
    release_first.set();
    for (auto& t : ts) t.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  });
}

TEST_P(mutexes, killed_waiter_leaves_and_the_next_one_gets_the_lock) {
  rt().run([] {
    taiga::mutex m;
    std::atomic<bool> a_got{false}, b_got{false};
    m.lock();
    auto a = taiga::spawn([&] {
      std::lock_guard g(m);
      a_got = true;
    });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto b = taiga::spawn([&] {
      std::lock_guard g(m);
      b_got = true;
    });
    while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    a.kill();
    EXPECT_THROW(a.join(), taiga::tasklet_killed);
    m.unlock();
    b.join();
    EXPECT_FALSE(a_got.load());
    EXPECT_TRUE(b_got.load());
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
}

TEST_P(mutexes, throw_into_a_waiter_leaves_the_mutex_usable) {
  rt().run([] {
    taiga::mutex m;
    m.lock();
    auto a = taiga::spawn([&] { std::lock_guard g(m); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_TRUE(a.throw_into(std::runtime_error("go away")));
    EXPECT_THROW(a.join(), std::runtime_error);
    m.unlock();
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
}

TEST_P(mutexes, a_kill_racing_the_hand_off_never_loses_the_lock) {
  rt().run([] {
    taiga::mutex m;
    for (long round = 0; round < scaled(200); ++round) {
      std::atomic<bool> b_got{false};
      m.lock();
      auto a = taiga::spawn([&] {
        std::lock_guard g(m);
        taiga::this_tasklet::yield();  // a kill point while holding it
      });
      while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
      auto b = taiga::spawn([&] {
        std::lock_guard g(m);
        b_got = true;
      });
      while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
      m.unlock();  // hands the lock to `a`, which the kill may or may not beat
      kill_and_join_any(a);
      b.join();
      ASSERT_TRUE(b_got.load());
      ASSERT_TRUE(m.try_lock());
      m.unlock();
    }
  });
}

TEST_P(mutexes, plain_threads_and_tasklets_share_one_mutex) {
  const long n = scaled(5000);
  long counter = 0;
  taiga::mutex m;
  auto guard = rt().keep_alive();
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] {
      for (long k = 0; k < n; ++k) {
        std::lock_guard g(m);
        ++counter;
      }
    });
  rt().run([&] {
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 4; ++i)
      ts.push_back(taiga::spawn([&] {
        for (long k = 0; k < n; ++k) {
          std::lock_guard g(m);
          ++counter;
          if (k % 64 == 0) taiga::this_tasklet::yield();
        }
      }));
    for (auto& t : ts) t.join();
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 6 * n);
  // A thread's ownership is its own: a tasklet cannot unlock it.
  m.lock();
  rt().run([&] { EXPECT_THROW(m.unlock(), taiga::usage_error); });
  m.unlock();
}

// ---- recursive_mutex -----------------------------------------------------

TEST_P(recursive_mutexes, the_owner_relocks_and_others_wait_for_the_last_unlock) {
  rt().run([] {
    taiga::recursive_mutex m;
    std::atomic<bool> got{false};
    m.lock();
    EXPECT_TRUE(m.try_lock());
    EXPECT_TRUE(m.try_lock_for(1ms));
    taiga::event tried;
    auto other = taiga::spawn([&] {
      EXPECT_FALSE(m.try_lock());
      EXPECT_FALSE(m.try_lock_for(5ms));
      tried.set();
      std::lock_guard g(m);
      got = true;
    });
    tried.wait();
    while (other.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    m.unlock();
    m.unlock();
    taiga::this_tasklet::sleep_for(2ms);
    EXPECT_FALSE(got.load());  // one level still held
    m.unlock();
    other.join();
    EXPECT_TRUE(got.load());
    EXPECT_THROW(m.unlock(), taiga::usage_error);
  });
}

TEST_P(recursive_mutexes, contended_nested_counter_is_exact) {
  const long n = scaled(3000);
  long counter = 0;
  rt().run([&] {
    taiga::recursive_mutex m;
    std::vector<taiga::tasklet<void>> ts;
    for (int t = 0; t < 6; ++t)
      ts.push_back(taiga::spawn([&] {
        for (long i = 0; i < n; ++i) {
          std::lock_guard g1(m);
          std::lock_guard g2(m);
          ++counter;
          if (i % 100 == 0) taiga::this_tasklet::yield();
        }
      }));
    for (auto& t : ts) t.join();
    m.lock();
    taiga::spawn([&] { EXPECT_THROW(m.unlock(), taiga::usage_error); }).join();
    m.unlock();
  });
  EXPECT_EQ(counter, 6 * n);
}

TEST_P(recursive_mutexes, killed_waiter_leaves_and_the_next_one_gets_the_lock) {
  rt().run([] {
    taiga::recursive_mutex m;
    m.lock();
    auto a = taiga::spawn([&] { std::lock_guard g(m); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto b = taiga::spawn([&] {
      std::lock_guard g(m);
      return true;
    });
    while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    a.kill();
    EXPECT_THROW(a.join(), taiga::tasklet_killed);
    m.unlock();
    EXPECT_TRUE(b.join());
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
}

// ---- shared_mutex --------------------------------------------------------

TEST_P(shared_mutexes, readers_hold_it_together) {
  rt().run([] {
    taiga::shared_mutex m;
    taiga::latch all_in(4);
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 4; ++i)
      ts.push_back(taiga::spawn([&] {
        std::shared_lock lk(m);
        all_in.arrive_and_wait();  // only returns if all four hold it at once
      }));
    for (auto& t : ts) t.join();
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
}

TEST_P(shared_mutexes, writers_exclude_everyone_under_contention) {
  const long n = scaled(2000);
  long value = 0;
  std::atomic<int> readers_in{0}, writers_in{0};
  std::atomic<bool> violated{false};
  rt().run([&] {
    taiga::shared_mutex m;
    std::vector<taiga::tasklet<void>> ts;
    for (int w = 0; w < 3; ++w)
      ts.push_back(taiga::spawn([&] {
        for (long i = 0; i < n; ++i) {
          std::unique_lock lk(m);
          if (writers_in.fetch_add(1) != 0 || readers_in.load() != 0) violated = true;
          ++value;
          if (i % 64 == 0) taiga::this_tasklet::yield();
          writers_in.fetch_sub(1);
        }
      }));
    for (int r = 0; r < 5; ++r)
      ts.push_back(taiga::spawn([&] {
        for (long i = 0; i < n; ++i) {
          std::shared_lock lk(m);
          readers_in.fetch_add(1);
          if (writers_in.load() != 0) violated = true;
          volatile long seen = value;
          (void)seen;
          if (i % 64 == 0) taiga::this_tasklet::yield();
          readers_in.fetch_sub(1);
        }
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(value, 3 * n);
  EXPECT_FALSE(violated.load());
}

TEST_P(shared_mutexes, a_waiting_writer_goes_before_later_readers) {
  rt().run([] {
    taiga::shared_mutex m;
    std::vector<char> order;
    taiga::mutex order_mu;
    auto note = [&](char c) {
      std::lock_guard g(order_mu);
      order.push_back(c);
    };
    m.lock_shared();
    auto w = taiga::spawn([&] {
      std::unique_lock lk(m);
      note('W');
    });
    while (w.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    taiga::spawn([&] {
      EXPECT_FALSE(m.try_lock_shared());  // a writer waits: readers queue
      EXPECT_FALSE(m.try_lock_shared_for(2ms));
    }).join();
    auto r = taiga::spawn([&] {
      std::shared_lock lk(m);
      note('R');
    });
    while (r.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    m.unlock_shared();
    w.join();
    r.join();
    EXPECT_EQ(order, (std::vector<char>{'W', 'R'}));
  });
}

TEST_P(shared_mutexes, a_killed_waiting_writer_lets_the_readers_behind_it_in) {
  rt().run([] {
    taiga::shared_mutex m;
    m.lock_shared();
    auto w = taiga::spawn([&] { std::unique_lock lk(m); });
    while (w.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto r = taiga::spawn([&] {
      std::shared_lock lk(m);
      return true;
    });
    while (r.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    kill_and_join(w);
    EXPECT_TRUE(r.join());  // entered while this tasklet still reads
    m.unlock_shared();
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
}

TEST_P(shared_mutexes, timed_variants_time_out_and_misuse_throws) {
  rt().run([] {
    taiga::shared_mutex m;
    EXPECT_THROW(m.unlock(), taiga::usage_error);
    EXPECT_THROW(m.unlock_shared(), taiga::usage_error);
    m.lock();
    EXPECT_THROW(m.lock(), taiga::usage_error);
    EXPECT_THROW(m.lock_shared(), taiga::usage_error);
    taiga::spawn([&] {
      EXPECT_FALSE(m.try_lock_for(5ms));
      EXPECT_FALSE(m.try_lock_shared_for(5ms));
      EXPECT_FALSE(m.try_lock_shared_until(std::chrono::system_clock::now() + 2ms));
      EXPECT_THROW(m.unlock(), taiga::usage_error);  // not the writer
    }).join();
    m.unlock();
    m.lock_shared();
    taiga::spawn([&] {
      EXPECT_FALSE(m.try_lock_until(std::chrono::steady_clock::now() + 5ms));
      EXPECT_TRUE(m.try_lock_shared_for(5ms));  // the timed-out writer left
      m.unlock_shared();
    }).join();
    m.unlock_shared();
  });
}

// ---- condition_variable --------------------------------------------------

TEST_P(condition_variables, producers_and_consumers_pass_every_item) {
  const long n = scaled(2000);
  long sum = 0;
  rt().run([&] {
    taiga::mutex m;
    taiga::condition_variable not_empty;
    std::deque<long> q;
    int producers_left = 3;
    std::vector<taiga::tasklet<void>> ts;
    for (int p = 0; p < 3; ++p)
      ts.push_back(taiga::spawn([&] {
        for (long i = 1; i <= n; ++i) {
          std::lock_guard g(m);
          q.push_back(i);
          not_empty.notify_one();
        }
        std::lock_guard g(m);
        if (--producers_left == 0) not_empty.notify_all();
      }));
    for (int c = 0; c < 3; ++c)
      ts.push_back(taiga::spawn([&] {
        for (;;) {
          std::unique_lock lk(m);
          not_empty.wait(lk, [&] { return !q.empty() || producers_left == 0; });
          if (q.empty()) return;
          sum += q.front();
          q.pop_front();
        }
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(sum, 3 * n * (n + 1) / 2);
}

TEST_P(condition_variables, notify_one_wakes_waiters_in_fifo_order) {
  rt().run([] {
    taiga::mutex m;
    taiga::condition_variable cv;
    std::vector<int> order;
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 5; ++i) {
      ts.push_back(taiga::spawn([&, i] {
        std::unique_lock lk(m);
        cv.wait(lk);
        order.push_back(i);
      }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    for (std::size_t i = 0; i < ts.size(); ++i) {
      cv.notify_one();
      wait_until_true([&] {
        std::lock_guard g(m);
        return order.size() == i + 1;
      });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  });
}

TEST_P(condition_variables, notify_all_wakes_every_waiter) {
  rt().run([] {
    taiga::mutex m;
    taiga::condition_variable cv;
    bool go = false;
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 6; ++i) {
      ts.push_back(taiga::spawn([&] {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return go; });
      }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    {
      std::lock_guard g(m);
      go = true;
    }
    cv.notify_all();
    for (auto& t : ts) t.join();
  });
}

TEST_P(condition_variables, timed_waits_time_out_holding_the_lock) {
  rt().run([] {
    taiga::mutex m;
    taiga::condition_variable cv;
    std::unique_lock lk(m);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(cv.wait_for(lk, 10ms), std::cv_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
    EXPECT_TRUE(lk.owns_lock());
    taiga::spawn([&] { EXPECT_FALSE(m.try_lock()); }).join();
    EXPECT_EQ(cv.wait_until(lk, std::chrono::system_clock::now() + 2ms), std::cv_status::timeout);
    EXPECT_FALSE(cv.wait_for(lk, 2ms, [] { return false; }));
    EXPECT_TRUE(cv.wait_for(lk, 2ms, [] { return true; }));
    bool flag = false;
    auto setter = taiga::spawn([&] {
      std::lock_guard g(m);
      flag = true;
      cv.notify_one();
    });
    EXPECT_TRUE(cv.wait_until(lk, std::chrono::steady_clock::now() + 10s, [&] { return flag; }));
    lk.unlock();
    setter.join();
  });
}

TEST_P(condition_variables, wait_without_the_lock_is_a_usage_error) {
  rt().run([] {
    taiga::mutex m;
    taiga::condition_variable cv;
    std::unique_lock lk(m, std::defer_lock);
    EXPECT_THROW(cv.wait(lk), taiga::usage_error);
  });
}

TEST_P(condition_variables, a_killed_waiter_holds_the_lock_while_unwinding_and_loses_no_notify) {
  rt().run([] {
    taiga::mutex m;
    taiga::condition_variable cv;
    std::atomic<bool> relocked{false}, b_woke{false};
    auto a = taiga::spawn([&] {
      std::unique_lock lk(m);
      try {
        cv.wait(lk);
      } catch (...) {
        relocked = lk.owns_lock();
        lk.unlock();  // throws usage_error if the mutex were not ours
        lk.lock();
        throw;
      }
    });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto b = taiga::spawn([&] {
      std::unique_lock lk(m);
      cv.wait(lk);
      b_woke = true;
    });
    while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    {
      // Hold the mutex while killing: `a` must wait for it before unwinding.
      std::lock_guard g(m);
      a.kill();
      taiga::this_tasklet::sleep_for(2ms);
    }
    EXPECT_THROW(a.join(), taiga::tasklet_killed);
    EXPECT_TRUE(relocked.load());
    cv.notify_one();  // `a` left: this must reach `b`
    b.join();
    EXPECT_TRUE(b_woke.load());
  });
}

TEST_P(condition_variables, a_plain_thread_waits_for_a_tasklet) {
  taiga::mutex m;
  taiga::condition_variable cv;
  bool ready = false;
  auto guard = rt().keep_alive();
  std::thread th([&] {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return ready; });
  });
  rt().run([&] {
    taiga::this_tasklet::sleep_for(2ms);
    std::lock_guard g(m);
    ready = true;
    cv.notify_all();
  });
  th.join();
}

// ---- event ---------------------------------------------------------------

TEST_P(events, set_wakes_every_waiter_and_clear_rearms) {
  rt().run([] {
    taiga::event e;
    EXPECT_FALSE(e.is_set());
    std::atomic<int> woke{0};
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 6; ++i) {
      ts.push_back(taiga::spawn([&] {
        e.wait();
        woke.fetch_add(1);
      }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    EXPECT_EQ(woke.load(), 0);
    e.set();
    for (auto& t : ts) t.join();
    EXPECT_EQ(woke.load(), 6);
    EXPECT_TRUE(e.is_set());
    e.wait();  // passes at once
    EXPECT_TRUE(e.wait_for(0ms));
    e.clear();
    EXPECT_FALSE(e.is_set());
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(e.wait_for(10ms));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
    EXPECT_FALSE(e.wait_until(std::chrono::system_clock::now() + 2ms));
  });
}

TEST_P(events, waiters_wake_in_fifo_order) {
  if (GetParam() != 1) GTEST_SKIP() << "run order is a one-worker question";
  rt().run([] {
    taiga::event e;
    std::vector<int> order;
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 5; ++i) {
      ts.push_back(taiga::spawn([&, i] {
        e.wait();
        order.push_back(i);
      }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    e.set();
    for (auto& t : ts) t.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  });
}

TEST_P(events, a_killed_waiter_leaves_and_others_still_wake) {
  rt().run([] {
    taiga::event e;
    auto a = taiga::spawn([&] { e.wait(); });
    auto b = taiga::spawn([&] { return e.wait_for(10s); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    kill_and_join(a);
    e.set();
    EXPECT_TRUE(b.join());
  });
}

TEST_P(events, plain_threads_and_tasklets_wait_for_each_other) {
  taiga::event to_thread, to_tasklet, done;
  auto guard = rt().keep_alive();
  std::atomic<bool> thread_timed_out{false};
  std::thread th([&] {
    thread_timed_out = !done.wait_for(5ms);  // nobody sets it yet
    to_thread.wait();
    to_tasklet.set();
  });
  rt().run([&] {
    taiga::this_tasklet::sleep_for(1ms);
    to_thread.set();
    EXPECT_TRUE(to_tasklet.wait_for(10s));
  });
  th.join();
  EXPECT_TRUE(thread_timed_out.load());
}

// ---- semaphore -----------------------------------------------------------

TEST_P(semaphores, never_exceeds_its_count) {
  const long n = scaled(1000);
  std::atomic<int> inside{0}, most{0};
  rt().run([&] {
    taiga::semaphore s(3);
    std::vector<taiga::tasklet<void>> ts;
    for (int t = 0; t < 12; ++t)
      ts.push_back(taiga::spawn([&] {
        for (long i = 0; i < n; ++i) {
          s.acquire();
          int now = inside.fetch_add(1) + 1;
          int prev = most.load();
          while (now > prev && !most.compare_exchange_weak(prev, now)) {
          }
          if (i % 8 == 0) taiga::this_tasklet::yield();
          inside.fetch_sub(1);
          s.release();
        }
      }));
    for (auto& t : ts) t.join();
    EXPECT_EQ(s.available(), 3);
  });
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 1);
}

TEST_P(semaphores, try_and_timed_acquire) {
  rt().run([] {
    taiga::semaphore s(1);
    EXPECT_TRUE(s.try_acquire());
    EXPECT_FALSE(s.try_acquire());
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(s.try_acquire_for(10ms));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
    EXPECT_FALSE(s.try_acquire_until(std::chrono::system_clock::now() + 2ms));
    auto t = taiga::spawn([&] { return s.try_acquire_for(10s); });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    s.release();
    EXPECT_TRUE(t.join());
    EXPECT_EQ(s.available(), 0);
    EXPECT_THROW(taiga::semaphore(-1), taiga::usage_error);
    EXPECT_THROW(s.release(-1), taiga::usage_error);
  });
}

TEST_P(semaphores, release_n_hands_permits_to_waiters_in_fifo_order) {
  rt().run([] {
    taiga::semaphore s(0);
    std::vector<std::atomic<bool>> got(5);
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 5; ++i) {
      ts.push_back(taiga::spawn([&, i] {
        s.acquire();
        got[i] = true;
      }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    s.release(3);
    EXPECT_FALSE(s.try_acquire());  // all three were handed over
    for (int i = 0; i < 3; ++i) ts[i].join();
    taiga::this_tasklet::sleep_for(2ms);
    EXPECT_FALSE(got[3].load());
    EXPECT_FALSE(got[4].load());
    s.release(3);
    ts[3].join();
    ts[4].join();
    EXPECT_EQ(s.available(), 1);
  });
}

TEST_P(semaphores, a_killed_waiter_does_not_swallow_a_permit) {
  rt().run([] {
    taiga::semaphore s(0);
    auto a = taiga::spawn([&] { s.acquire(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto b = taiga::spawn([&] { s.acquire(); });
    while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    kill_and_join(a);
    s.release();
    b.join();
    EXPECT_EQ(s.available(), 0);
    // A kill racing a release: either the kill wins (the permit stays) or
    // the waiter gets it and gives it back.
    for (long round = 0; round < scaled(200); ++round) {
      auto c = taiga::spawn([&] {
        s.acquire();
        s.release();
      });
      while (c.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
      s.release();
      kill_and_join_any(c);
      ASSERT_EQ(s.available(), 1);
      ASSERT_TRUE(s.try_acquire());
    }
  });
}

TEST_P(semaphores, bounded_semaphore_rejects_over_release) {
  rt().run([] {
    taiga::bounded_semaphore s(2);
    EXPECT_EQ(s.max(), 2);
    EXPECT_THROW(s.release(), taiga::usage_error);
    EXPECT_EQ(s.available(), 2);
    s.acquire();
    EXPECT_THROW(s.release(2), taiga::usage_error);
    EXPECT_EQ(s.available(), 1);
    s.release();
    EXPECT_EQ(s.available(), 2);
    s.acquire();
    s.acquire();
    auto t = taiga::spawn([&] { s.acquire(); });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    s.release(2);  // one handed to the waiter, one kept
    t.join();
    EXPECT_EQ(s.available(), 1);
    EXPECT_THROW(s.release(2), taiga::usage_error);
    EXPECT_EQ(s.available(), 1);
    EXPECT_THROW(taiga::bounded_semaphore(-1), taiga::usage_error);
  });
}

TEST_P(semaphores, a_plain_thread_acquires_what_a_tasklet_releases) {
  taiga::semaphore s(0), back(0);
  auto guard = rt().keep_alive();
  std::thread th([&] {
    for (int i = 0; i < 20; ++i) {
      s.acquire();
      back.release();
    }
  });
  rt().run([&] {
    for (int i = 0; i < 20; ++i) {
      s.release();
      back.acquire();
    }
  });
  th.join();
  EXPECT_EQ(s.available(), 0);
  EXPECT_EQ(back.available(), 0);
}

// ---- latch ---------------------------------------------------------------

TEST_P(latches, waiters_wake_when_the_count_reaches_zero) {
  rt().run([] {
    taiga::latch l(4);
    EXPECT_FALSE(l.try_wait());
    EXPECT_FALSE(l.wait_for(2ms));
    std::atomic<int> passed{0};
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 3; ++i)
      ts.push_back(taiga::spawn([&] {
        l.wait();
        passed.fetch_add(1);
      }));
    for (auto& t : ts) wait_parked(t);
    auto helpers = taiga::spawn([&] {
      l.count_down(2);
      l.arrive_and_wait();
    });
    taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(passed.load(), 0);
    l.count_down();
    for (auto& t : ts) t.join();
    helpers.join();
    EXPECT_EQ(passed.load(), 3);
    EXPECT_TRUE(l.try_wait());
    EXPECT_TRUE(l.wait_for(0ms));
    EXPECT_THROW(l.count_down(), taiga::usage_error);
    EXPECT_THROW(taiga::latch(-1), taiga::usage_error);
    taiga::latch zero(0);
    zero.wait();
  });
}

TEST_P(latches, a_killed_waiter_leaves_and_the_rest_still_wake) {
  rt().run([] {
    taiga::latch l(1);
    auto a = taiga::spawn([&] { l.wait(); });
    auto b = taiga::spawn([&] { l.wait(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    kill_and_join(a);
    l.count_down();
    b.join();
  });
}

TEST_P(latches, a_plain_thread_counts_down_for_tasklets) {
  taiga::latch l(1);
  auto guard = rt().keep_alive();
  std::thread th([&] {
    std::this_thread::sleep_for(2ms);
    l.count_down();
  });
  rt().run([&] { EXPECT_TRUE(l.wait_for(10s)); });
  th.join();
}

// ---- barrier -------------------------------------------------------------

TEST_P(barriers, phases_cycle_and_the_completion_runs_before_release) {
  const int parties = 4;
  const long rounds = scaled(100);
  rt().run([&] {
    std::atomic<long> completions{0};
    taiga::barrier b(parties, [&] { completions.fetch_add(1); });
    EXPECT_EQ(b.parties(), 4u);
    std::mutex mu;
    std::vector<std::multiset<std::size_t>> indices(rounds);
    std::atomic<bool> early{false};
    std::vector<taiga::tasklet<void>> ts;
    for (int p = 0; p < parties; ++p)
      ts.push_back(taiga::spawn([&] {
        for (long r = 0; r < rounds; ++r) {
          std::size_t i = b.arrive_and_wait();
          if (completions.load() < r + 1) early = true;
          std::lock_guard g(mu);
          indices[r].insert(i);
        }
      }));
    for (auto& t : ts) t.join();
    EXPECT_EQ(completions.load(), rounds);
    EXPECT_FALSE(early.load());
    for (long r = 0; r < rounds; ++r)
      ASSERT_EQ(indices[r], (std::multiset<std::size_t>{0, 1, 2, 3})) << "round " << r;
    EXPECT_EQ(b.n_waiting(), 0u);
  });
}

TEST_P(barriers, abort_breaks_waiters_and_later_arrivals_until_reset) {
  rt().run([] {
    taiga::barrier b(3);
    auto w1 = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    auto w2 = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (w1.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    while (w2.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(b.n_waiting(), 2u);
    b.abort();
    EXPECT_THROW(w1.join(), taiga::broken_barrier);
    EXPECT_THROW(w2.join(), taiga::broken_barrier);
    EXPECT_TRUE(b.broken());
    EXPECT_THROW((void)b.arrive_and_wait(), taiga::broken_barrier);
    b.reset();
    EXPECT_FALSE(b.broken());
    auto x = taiga::spawn([&] { return b.arrive_and_wait(); });
    auto y = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (x.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    while (y.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(b.arrive_and_wait(), 2u);
    EXPECT_EQ(x.join() + y.join(), 1u);  // 0 and 1
  });
}

TEST_P(barriers, a_throwing_completion_breaks_the_barrier) {
  rt().run([] {
    taiga::barrier b(2, [] { throw std::runtime_error("completion failed"); });
    auto w = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (w.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_THROW((void)b.arrive_and_wait(), std::runtime_error);
    EXPECT_THROW(w.join(), taiga::broken_barrier);
    EXPECT_TRUE(b.broken());
  });
}

TEST_P(barriers, a_killed_waiter_breaks_the_barrier) {
  rt().run([] {
    taiga::barrier b(3);
    auto a = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto c = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (c.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    kill_and_join(a);
    EXPECT_THROW(c.join(), taiga::broken_barrier);
    EXPECT_TRUE(b.broken());
    b.reset();
    EXPECT_EQ(b.n_waiting(), 0u);
  });
}

TEST_P(barriers, reset_breaks_the_current_waiters_and_rearms) {
  rt().run([] {
    std::atomic<int> completions{0};
    taiga::barrier b(2, [&] { completions.fetch_add(1); });
    auto a = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    b.reset();
    EXPECT_THROW(a.join(), taiga::broken_barrier);
    EXPECT_FALSE(b.broken());
    EXPECT_EQ(completions.load(), 0);
    auto c = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (c.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(b.arrive_and_wait(), 1u);
    EXPECT_EQ(c.join(), 0u);
    EXPECT_EQ(completions.load(), 1);
  });
}

TEST_P(barriers, one_party_and_zero_parties) {
  rt().run([] {
    int completions = 0;
    taiga::barrier one(1, [&] { ++completions; });
    EXPECT_EQ(one.arrive_and_wait(), 0u);
    EXPECT_EQ(one.arrive_and_wait(), 0u);
    EXPECT_EQ(completions, 2);
    EXPECT_THROW(taiga::barrier(0), taiga::usage_error);
  });
}

TEST_P(barriers, plain_threads_and_tasklets_meet_at_one_barrier) {
  const long rounds = scaled(50);
  taiga::barrier b(3);
  auto guard = rt().keep_alive();
  std::thread th([&] {
    for (long r = 0; r < rounds; ++r) (void)b.arrive_and_wait();
  });
  rt().run([&] {
    auto t = taiga::spawn([&] {
      for (long r = 0; r < rounds; ++r) (void)b.arrive_and_wait();
    });
    for (long r = 0; r < rounds; ++r) (void)b.arrive_and_wait();
    t.join();
  });
  th.join();
  EXPECT_FALSE(b.broken());
}

// Regression: with more arrivals than parties, arrivals that came while phase
// 0's completion action was still running were counted into phase 1 at once;
// the second of them completed phase 1 and ran its action concurrently with
// phase 0's, and phase 1's parties could be released before phase 0's action
// had finished. Now they wait, uncounted, until phase 0's action ends.
TEST_P(barriers, arrivals_during_a_completion_wait_for_it_and_join_the_next_phase) {
  rt().run([] {
    taiga::event gate;
    std::atomic<int> running{0}, overlaps{0}, completions{0};
    taiga::barrier b(2, [&] {
      if (running.fetch_add(1) != 0) overlaps.fetch_add(1);
      if (completions.load() == 0) gate.wait();  // phase 0's action parks
      completions.fetch_add(1);
      running.fetch_sub(1);
    });
    auto a = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto c = taiga::spawn([&] { return b.arrive_and_wait(); });  // last: runs the action
    while (c.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto d = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (d.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto e = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (e.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(b.n_waiting(), 0u) << "arrivals during an action are not counted";
    EXPECT_EQ(completions.load(), 0);
    EXPECT_EQ(a.state(), taiga::tasklet_state::parked) << "released before its action ended";
    gate.set();
    EXPECT_EQ(a.join(), 0u);
    EXPECT_EQ(c.join(), 1u);
    EXPECT_EQ(d.join() + e.join(), 1u);  // 0 and 1, in phase 1
    EXPECT_EQ(completions.load(), 2);
    EXPECT_EQ(overlaps.load(), 0);
    EXPECT_FALSE(b.broken());
  });
}

// Three times as many tasklets as parties, and an action that parks: actions
// never overlap, run once per phase, and a call returns only after the action
// of its own phase (which started after the call arrived) has finished.
TEST_P(barriers, phases_stay_ordered_with_more_tasklets_than_parties) {
  const int parties = 3;
  const int tasklets = 9;
  const long rounds = scaled(60);
  rt().run([&] {
    std::atomic<long> started{0}, finished{0}, overlaps{0}, early{0};
    std::atomic<int> running{0};
    taiga::barrier b(parties, [&] {
      started.fetch_add(1);
      if (running.fetch_add(1) != 0) overlaps.fetch_add(1);
      taiga::this_tasklet::yield();
      taiga::this_tasklet::sleep_for(10us);
      running.fetch_sub(1);
      finished.fetch_add(1);
    });
    // A shared budget of arrivals (a multiple of `parties`): tasklets that
    // each did a fixed number of rounds could end with too few left to fill
    // the last phase.
    std::atomic<long> left{rounds * tasklets};
    std::vector<taiga::tasklet<void>> ts;
    for (int t = 0; t < tasklets; ++t)
      ts.push_back(taiga::spawn([&] {
        while (left.fetch_sub(1) > 0) {
          const long before = started.load();
          const std::size_t i = b.arrive_and_wait();
          if (finished.load() < before + 1) early.fetch_add(1);
          if (i >= static_cast<std::size_t>(parties)) early.fetch_add(1);
        }
      }));
    for (auto& t : ts) t.join();
    EXPECT_EQ(overlaps.load(), 0);
    EXPECT_EQ(early.load(), 0);
    EXPECT_EQ(finished.load(), rounds * tasklets / parties);
    EXPECT_EQ(b.n_waiting(), 0u);
    EXPECT_FALSE(b.broken());
  });
}

// An arrival held while an action runs was not counted: killing it breaks
// nothing. abort() during the action breaks the held arrivals and the
// completing phase's parties; the action's caller still returns its index.
TEST_P(barriers, held_arrivals_are_uncounted_and_abort_breaks_them) {
  rt().run([] {
    taiga::event gate;
    std::atomic<int> completions{0};
    taiga::barrier b(2, [&] {
      if (completions.fetch_add(1) == 0) gate.wait();
    });
    auto a = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto c = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (c.state() != taiga::tasklet_state::parked)
      taiga::this_tasklet::sleep_for(1ms);  // in the action
    auto held = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (held.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    kill_and_join(held);
    EXPECT_FALSE(b.broken());
    auto d = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (d.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    b.abort();
    EXPECT_THROW(d.join(), taiga::broken_barrier);
    EXPECT_THROW(a.join(), taiga::broken_barrier);
    gate.set();
    EXPECT_EQ(c.join(), 1u);
    EXPECT_TRUE(b.broken());
    b.reset();
    auto x = taiga::spawn([&] { return b.arrive_and_wait(); });
    while (x.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(b.arrive_and_wait(), 1u);
    EXPECT_EQ(x.join(), 0u);
    EXPECT_EQ(completions.load(), 2);
  });
}

// A throwing action breaks the arrivals it held, as well as its phase.
TEST_P(barriers, a_throwing_completion_breaks_the_held_arrivals) {
  rt().run([] {
    taiga::event gate;
    taiga::barrier b(2, [&] {
      gate.wait();
      throw std::runtime_error("completion failed");
    });
    auto a = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto c = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (c.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto held = taiga::spawn([&] { (void)b.arrive_and_wait(); });
    while (held.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    gate.set();
    EXPECT_THROW(c.join(), std::runtime_error);
    EXPECT_THROW(a.join(), taiga::broken_barrier);
    EXPECT_THROW(held.join(), taiga::broken_barrier);
    EXPECT_TRUE(b.broken());
  });
}

// ---- wait_group ----------------------------------------------------------

TEST_P(wait_groups, wait_returns_when_all_work_is_done) {
  rt().run([] {
    taiga::wait_group wg;
    wg.wait();  // zero: passes at once
    std::atomic<int> finished{0};
    wg.add(8);
    EXPECT_EQ(wg.count(), 8);
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 8; ++i)
      ts.push_back(taiga::spawn([&] {
        taiga::this_tasklet::sleep_for(1ms);
        finished.fetch_add(1);
        wg.done();
      }));
    auto other_waiter = taiga::spawn([&] { return wg.wait_for(10s); });
    wg.wait();
    EXPECT_EQ(finished.load(), 8);
    EXPECT_TRUE(other_waiter.join());
    for (auto& t : ts) t.join();
    EXPECT_EQ(wg.count(), 0);
  });
}

TEST_P(wait_groups, timeouts_and_negative_counters) {
  rt().run([] {
    taiga::wait_group wg;
    EXPECT_THROW(wg.done(), taiga::usage_error);
    EXPECT_EQ(wg.count(), 0);
    wg.add(2);
    EXPECT_THROW(wg.add(-3), taiga::usage_error);
    EXPECT_EQ(wg.count(), 2);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(wg.wait_for(10ms));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
    EXPECT_FALSE(wg.wait_until(std::chrono::system_clock::now() + 2ms));
    wg.add(-2);
    EXPECT_TRUE(wg.wait_for(0ms));
  });
}

TEST_P(wait_groups, a_killed_waiter_leaves_and_a_plain_thread_can_wait) {
  taiga::wait_group wg;
  wg.add(1);
  auto guard = rt().keep_alive();
  std::atomic<bool> thread_done{false};
  std::thread th([&] {
    wg.wait();
    thread_done = true;
  });
  rt().run([&] {
    auto a = taiga::spawn([&] { wg.wait(); });
    while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    kill_and_join(a);
    auto b = taiga::spawn([&] { wg.wait(); });
    while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    wg.done();
    b.join();
  });
  th.join();
  EXPECT_TRUE(thread_done.load());
}
