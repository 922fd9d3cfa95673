// taiga::queue / lifo_queue / priority_queue: order, bounds, timeouts,
// task_done/join, FIFO wake-ups, kills and timeouts of parked getters and
// putters (nothing lost, nothing duplicated), exceptions (a failed
// allocation, a throwing move or Compare), plain threads, stress.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <taiga/channels/queue.hpp>
#include <taiga/runtime.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "runtime_fixture.hpp"

#if defined(__SANITIZE_THREAD__)
#define QUEUE_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QUEUE_TEST_TSAN 1
#endif
#endif

#if !defined(QUEUE_TEST_TSAN)
// Allocation failures on request, for this test binary: after
// fail_allocation(n), the n-th allocation from the calling thread throws
// std::bad_alloc. (Not under TSan, whose runtime defines operator new.)
namespace {
thread_local long allocations_until_failure = -1;
}
// noinline: GCC would otherwise see free() meet operator new's pointer.
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (allocations_until_failure > 0 && --allocations_until_failure == 0) {
    allocations_until_failure = -1;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

using namespace std::chrono_literals;
using taiga::channel_status;
using taiga::test::scaled;
using taiga::test::wait_parked;
using taiga::test::with_workers;

class queue_test : public with_workers {};
TAIGA_WORKER_COUNTS(queue_test);

namespace {
template <class Q>
std::vector<int> drain(Q& q) {
  std::vector<int> out;
  while (auto v = q.try_get()) out.push_back(*v);
  return out;
}

void join_killed(taiga::tasklet<void>& t) {
  EXPECT_THROW(t.join(), taiga::tasklet_killed);
}

#if !defined(QUEUE_TEST_TSAN)
// Fails the calling thread's n-th allocation from now. Call it right before
// the call that should fail, with no park point in between (a tasklet may
// change threads at a park point).
[[gnu::noinline]] void fail_allocation(long n) {
  allocations_until_failure = n;
}
[[gnu::noinline]] void stop_failing_allocations() {
  allocations_until_failure = -1;
}
#endif

// Moving a `fragile` made with boom = true throws.
struct fragile {
  explicit fragile(int x, bool b = false) : v(x), boom(b) {}
  fragile(fragile&& o) noexcept(false) : v(o.v), boom(o.boom) {
    if (boom) throw std::runtime_error("fragile: move failed");
  }
  fragile& operator=(fragile&&) = default;
  int v;
  bool boom;
};

// Throws while `compare_fails` is set, or when it meets 13.
std::atomic<bool> compare_fails{false};
struct touchy_less {
  bool operator()(int a, int b) const {
    if (compare_fails.load() || a == 13 || b == 13) throw std::domain_error("touchy_less");
    return a < b;
  }
};
}  // namespace

TEST_P(queue_test, fifo_lifo_and_priority_orders) {
  rt().run([] {
    taiga::queue<int> fifo;
    taiga::lifo_queue<int> lifo;
    taiga::priority_queue<int> prio;
    taiga::priority_queue<int, std::greater<int>> maxfirst;
    for (int v : {3, 1, 4, 1, 5, 9, 2, 6}) {
      fifo.put(v);
      lifo.put(v);
      prio.put(v);
      maxfirst.put(v);
    }
    EXPECT_EQ(fifo.size(), 8u);
    EXPECT_EQ(drain(fifo), (std::vector<int>{3, 1, 4, 1, 5, 9, 2, 6}));
    EXPECT_EQ(drain(lifo), (std::vector<int>{6, 2, 9, 5, 1, 4, 1, 3}));
    EXPECT_EQ(drain(prio), (std::vector<int>{1, 1, 2, 3, 4, 5, 6, 9}));
    EXPECT_EQ(drain(maxfirst), (std::vector<int>{9, 6, 5, 4, 3, 2, 1, 1}));
    EXPECT_TRUE(fifo.empty());
  });
}

TEST_P(queue_test, priority_queue_is_lowest_first_and_stable_among_equals) {
  rt().run([] {
    struct by_prio {
      bool operator()(const std::pair<int, std::string>& a,
                      const std::pair<int, std::string>& b) const {
        return a.first < b.first;
      }
    };
    taiga::priority_queue<std::pair<int, std::string>, by_prio> q;
    q.put({2, "a"});
    q.put({1, "b"});
    q.put({2, "c"});
    q.put({1, "d"});
    q.put({0, "e"});
    std::string order;
    while (auto v = q.try_get()) order += v->second;
    EXPECT_EQ(order, "ebdac");
  });
}

TEST_P(queue_test, move_only_items_pass_through) {
  rt().run([] {
    taiga::queue<std::unique_ptr<int>> q(1);
    q.put(std::make_unique<int>(7));
    auto extra = std::make_unique<int>(8);
    EXPECT_EQ(q.try_put(std::move(extra)), channel_status::would_block);
    ASSERT_NE(extra, nullptr) << "a failed try_put must not consume the item";
    EXPECT_EQ(q.try_put_for(std::move(extra), 1ms), channel_status::timeout);
    ASSERT_NE(extra, nullptr) << "a timed-out put must not consume the item";
    auto t = taiga::spawn([&] { q.put(std::move(extra)); });
    EXPECT_EQ(*q.get(), 7);
    t.join();
    EXPECT_EQ(*q.get(), 8);
  });
}

TEST_P(queue_test, bounded_put_parks_while_full) {
  rt().run([] {
    taiga::queue<int> q(2);
    EXPECT_EQ(q.maxsize(), 2u);
    q.put(1);
    EXPECT_FALSE(q.full());
    q.put(2);
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.try_put(3), channel_status::would_block);
    std::atomic<bool> done{false};
    auto t = taiga::spawn([&] {
      q.put(3);
      done = true;
    });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_FALSE(done.load());
    EXPECT_EQ(q.get(), 1);
    t.join();
    EXPECT_TRUE(done.load());
    EXPECT_EQ(q.size(), 2u);
    EXPECT_EQ(drain(q), (std::vector<int>{2, 3}));
  });
}

TEST_P(queue_test, unbounded_put_never_parks) {
  rt().run([] {
    taiga::queue<int> q;  // maxsize 0
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(q.try_put(i), channel_status::ok);
    EXPECT_FALSE(q.full());
    EXPECT_EQ(q.size(), 1000u);
  });
}

TEST_P(queue_test, get_parks_until_a_put) {
  rt().run([] {
    taiga::queue<int> q;
    auto t = taiga::spawn([&] { return q.get(); });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    q.put(42);
    EXPECT_EQ(t.join(), 42);
    EXPECT_TRUE(q.empty());
  });
}

TEST_P(queue_test, timeouts_return_nothing_and_leave_no_waiter) {
  rt().run([] {
    taiga::queue<int> q(1);
    EXPECT_FALSE(q.try_get().has_value());
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(q.try_get_for(5ms).has_value());
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    EXPECT_FALSE(q.try_get_until(std::chrono::steady_clock::now() + 1ms).has_value());
    EXPECT_FALSE(q.try_get_until(std::chrono::system_clock::now() + 1ms).has_value());
    EXPECT_FALSE(q.try_get_for(0ms).has_value());
    // The timed-out getters are gone: a put goes into the store.
    EXPECT_EQ(q.try_put(1), channel_status::ok);
    EXPECT_EQ(q.size(), 1u);
    t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(q.try_put_for(2, 5ms), channel_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    EXPECT_EQ(q.try_put_until(2, std::chrono::steady_clock::now() + 1ms), channel_status::timeout);
    // The timed-out putters are gone: a get does not pull their items in.
    EXPECT_EQ(q.get(), 1);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.unfinished_tasks(), 1u);
    // A timed wait that succeeds.
    auto t = taiga::spawn([&] { return q.try_get_for(10s); });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    q.put(5);
    EXPECT_EQ(t.join(), std::optional<int>(5));
  });
}

TEST_P(queue_test, parked_getters_are_served_first_come_first_served) {
  rt().run([] {
    taiga::queue<int> q;
    const int n = 5;
    std::vector<int> got(n, -1);
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < n; ++i) {
      ts.push_back(taiga::spawn([&, i] { got[i] = q.get(); }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    for (int i = 0; i < n; ++i) q.put(i);
    for (auto& t : ts) t.join();
    for (int i = 0; i < n; ++i) EXPECT_EQ(got[i], i);
  });
}

TEST_P(queue_test, parked_putters_are_served_first_come_first_served) {
  rt().run([] {
    taiga::queue<int> q(1);
    q.put(0);
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 1; i <= 4; ++i) {
      ts.push_back(taiga::spawn([&q, i] { q.put(i); }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    std::vector<int> got;
    for (int i = 0; i <= 4; ++i) got.push_back(q.get());
    for (auto& t : ts) t.join();
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
  });
}

TEST_P(queue_test, task_done_and_join) {
  rt().run([] {
    taiga::queue<int> q;
    q.join();  // nothing put: returns at once
    const int n = 200;
    for (int i = 0; i < n; ++i) q.put(i);
    EXPECT_EQ(q.unfinished_tasks(), static_cast<std::size_t>(n));
    EXPECT_FALSE(q.try_join_for(1ms));
    std::atomic<int> processed{0};
    auto worker = taiga::spawn([&] {
      for (int i = 0; i < n; ++i) {
        (void)q.get();
        if (i % 16 == 0) taiga::this_tasklet::yield();
        processed.fetch_add(1);
        q.task_done();
      }
    });
    q.join();
    EXPECT_EQ(processed.load(), n);
    worker.join();
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    EXPECT_THROW(q.task_done(), taiga::usage_error);
    EXPECT_TRUE(q.try_join_for(0ms));
  });
}

TEST_P(queue_test, join_wakes_every_joiner) {
  rt().run([] {
    taiga::queue<int> q;
    q.put(1);
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 4; ++i) {
      ts.push_back(taiga::spawn([&] { q.join(); }));
      while (ts.back().state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    }
    (void)q.get();
    q.task_done();
    for (auto& t : ts) t.join();
  });
}

TEST_P(queue_test, a_killed_parked_getter_takes_nothing) {
  rt().run([] {
    taiga::queue<int> q;
    auto victim = taiga::spawn([&] { (void)q.get(); });
    while (victim.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    victim.kill();
    join_killed(victim);
    q.put(1);
    EXPECT_EQ(q.try_get(), std::optional<int>(1)) << "the item went to a dead getter";
  });
}

TEST_P(queue_test, a_killed_parked_putter_puts_nothing) {
  rt().run([] {
    taiga::queue<int> q(1);
    q.put(1);
    auto victim = taiga::spawn([&] { q.put(2); });
    while (victim.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    victim.kill();
    join_killed(victim);
    EXPECT_EQ(q.get(), 1);
    EXPECT_FALSE(q.try_get().has_value()) << "a killed put delivered its item";
    EXPECT_EQ(q.unfinished_tasks(), 1u);
  });
}

TEST_P(queue_test, a_killed_joiner_unwinds) {
  rt().run([] {
    taiga::queue<int> q;
    q.put(1);
    auto victim = taiga::spawn([&] { q.join(); });
    while (victim.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    victim.kill();
    join_killed(victim);
    (void)q.get();
    q.task_done();
    q.join();
  });
}

// Getters that time out or get killed while producers run: every item sent
// is received exactly once.
TEST_P(queue_test, kills_and_timeouts_lose_and_duplicate_nothing) {
  const int producers = 4, per = static_cast<int>(scaled(2000));
  std::mutex mu;
  std::vector<int> received;
  std::vector<int> sent;
  rt().run([&] {
    taiga::queue<int> q(8);
    std::atomic<int> producers_left{producers};
    std::vector<taiga::tasklet<void>> prod, cons;
    for (int p = 0; p < producers; ++p)
      prod.push_back(taiga::spawn([&, p] {
        std::vector<int> mine;
        for (int i = 0; i < per; ++i) {
          int v = p * per + i;
          // Some puts time out (their items are not sent).
          if (i % 5 == 0) {
            if (q.try_put_for(v, 50us) == channel_status::ok) mine.push_back(v);
          } else {
            q.put(v);
            mine.push_back(v);
          }
        }
        std::lock_guard lk(mu);
        sent.insert(sent.end(), mine.begin(), mine.end());
        producers_left.fetch_sub(1);
      }));
    auto consumer = [&](int k) {
      for (;;) {
        std::optional<int> v = (k % 2 == 0) ? q.try_get_for(100us) : q.try_get_for(1ms);
        if (v) {
          std::lock_guard lk(mu);  // no park point between get and record
          received.push_back(*v);
        } else if (producers_left.load() == 0 && q.empty()) {
          return;
        }
      }
    };
    for (int k = 0; k < 6; ++k) cons.push_back(taiga::spawn(consumer, k));
    // Kill consumers while they park, and replace them.
    for (int round = 0; round < 20; ++round) {
      taiga::this_tasklet::sleep_for(100us);
      auto& victim = cons[static_cast<std::size_t>(round % 6)];
      victim.kill();
      try {
        victim.join();
      } catch (const taiga::tasklet_killed&) {
      }
      victim = taiga::spawn(consumer, round);
    }
    for (auto& t : prod) t.join();
    for (auto& t : cons) t.join();
    while (auto v = q.try_get()) received.push_back(*v);
  });
  std::sort(sent.begin(), sent.end());
  std::sort(received.begin(), received.end());
  EXPECT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent) << "the multiset received differs from the multiset sent";
}

// Putters killed while parked on a full queue: what was put is what arrives.
TEST_P(queue_test, killed_putters_lose_and_duplicate_nothing) {
  std::vector<int> sent, received;
  std::mutex mu;
  rt().run([&] {
    taiga::queue<int> q(2);
    const int n = 16;
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < n; ++i)
      ts.push_back(taiga::spawn([&, i] {
        q.put(i);
        std::lock_guard lk(mu);
        sent.push_back(i);
      }));
    // Wait until every putter has either put or parked.
    while (q.size() < 2) taiga::this_tasklet::yield();
    for (int i = 0; i < n; i += 2) ts[static_cast<std::size_t>(i)].kill();
    for (int got = 0;; ++got) {
      auto v = q.try_get_for(20ms);
      if (!v) break;
      received.push_back(*v);
    }
    for (auto& t : ts) {
      try {
        t.join();
      } catch (const taiga::tasklet_killed&) {
      }
    }
    while (auto v = q.try_get()) received.push_back(*v);
  });
  std::sort(sent.begin(), sent.end());
  std::sort(received.begin(), received.end());
  EXPECT_EQ(received, sent);
  EXPECT_GE(sent.size(), 8u);
}

TEST_P(queue_test, many_producers_and_consumers_exact_accounting) {
  const long per = scaled(5000);
  const int producers = 4, consumers = 4;
  std::atomic<long> sum{0}, count{0};
  rt().run([&] {
    taiga::queue<long> q(16);
    std::vector<taiga::tasklet<void>> prod, cons;
    for (int p = 0; p < producers; ++p)
      prod.push_back(taiga::spawn([&, p] {
        for (long i = 1; i <= per; ++i) q.put(p * per + i);
      }));
    for (int c = 0; c < consumers; ++c)
      cons.push_back(taiga::spawn([&] {
        for (;;) {
          long v = q.get();
          if (v < 0) return;
          sum.fetch_add(v);
          count.fetch_add(1);
          q.task_done();
        }
      }));
    for (auto& t : prod) t.join();
    q.join();  // every real item processed
    EXPECT_EQ(count.load(), producers * per);
    for (int c = 0; c < consumers; ++c) q.put(-1);
    for (auto& t : cons) t.join();
  });
  const long n = producers * per;
  EXPECT_EQ(count.load(), n);
  EXPECT_EQ(sum.load(), n * (n + 1) / 2);
}

TEST_P(queue_test, plain_threads_and_tasklets_share_a_queue) {
  const long n = scaled(2000);
  taiga::queue<long> to_tasklets(4), to_threads(4);
  long thread_sum = 0;
  {
    auto guard = rt().keep_alive();  // the plain threads will wake tasklets
    // Threads produce for tasklets; tasklets produce for a thread.
    std::thread producer([&] {
      for (long i = 1; i <= n; ++i) to_tasklets.put(i);
    });
    std::thread consumer([&] {
      for (long i = 1; i <= n; ++i) thread_sum += to_threads.get();
      EXPECT_FALSE(to_threads.try_get_for(1ms).has_value());
    });
    long tasklet_sum = rt().run([&] {
      auto fwd = taiga::spawn([&] {
        for (long i = 1; i <= n; ++i) to_threads.put(i);
      });
      long s = 0;
      for (long i = 1; i <= n; ++i) s += to_tasklets.get();
      fwd.join();
      return s;
    });
    producer.join();
    consumer.join();
    EXPECT_EQ(tasklet_sum, n * (n + 1) / 2);
  }
  EXPECT_EQ(thread_sum, n * (n + 1) / 2);
}

// Regression: put and get ran the store's push and pop, which allocate and
// call Compare, inside a noexcept function under the queue's lock; a
// throwing Compare called std::terminate. Now the queue is left as it was,
// and a parked putter whose item cannot go in gets the exception.
TEST_P(queue_test, a_throwing_compare_changes_nothing) {
  rt().run([] {
    taiga::priority_queue<int, touchy_less> q;
    for (int v : {5, 3, 8, 1, 9, 2}) q.put(v);
    compare_fails = true;
    EXPECT_THROW(q.put(4), std::domain_error);
    EXPECT_THROW((void)q.try_put(0), std::domain_error);
    EXPECT_THROW((void)q.try_put_for(0, 1ms), std::domain_error);
    EXPECT_THROW((void)q.get(), std::domain_error);
    EXPECT_THROW((void)q.try_get(), std::domain_error);
    compare_fails = false;
    EXPECT_EQ(q.size(), 6u);
    EXPECT_EQ(q.unfinished_tasks(), 6u);
    EXPECT_EQ(drain(q), (std::vector<int>{1, 2, 3, 5, 8, 9}));

    // A get frees a place in a full queue: the first parked putter's item
    // (13) cannot go in, so that put throws; the next putter gets the place.
    taiga::priority_queue<int, touchy_less> b(2);
    b.put(5);
    b.put(7);
    auto bad = taiga::spawn([&] { b.put(13); });
    while (bad.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto good = taiga::spawn([&] { b.put(6); });
    while (good.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(b.get(), 5);
    EXPECT_THROW(bad.join(), std::domain_error);
    good.join();
    EXPECT_EQ(b.size(), 2u);
    EXPECT_EQ(b.unfinished_tasks(), 3u);
    EXPECT_EQ(drain(b), (std::vector<int>{6, 7}));
    b.put(1);  // the queue still works, with no stale putter
    EXPECT_EQ(b.get(), 1);
  });
}

// Regression: an item whose move constructor throws was moved under the
// queue's lock in a noexcept function (std::terminate), after the getter it
// was handed to had been claimed. Now the put throws, nothing changes, and a
// parked getter stays parked for the next put.
TEST_P(queue_test, a_throwing_move_changes_nothing_and_strands_nobody) {
  rt().run([] {
    taiga::queue<fragile> q;
    auto getter = taiga::spawn([&] { return q.get().v; });
    while (getter.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_THROW(q.put(fragile(1, true)), std::runtime_error);
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    EXPECT_EQ(getter.state(), taiga::tasklet_state::parked);
    q.put(fragile(2));
    EXPECT_EQ(getter.join(), 2);

    fragile keep(3, true);
    EXPECT_THROW((void)q.try_put(std::move(keep)), std::runtime_error);
    EXPECT_TRUE(q.empty());

    // A parked putter whose item cannot move in fails; the next one gets the
    // place a get freed.
    taiga::lifo_queue<fragile> l(1);
    l.put(fragile(10));
    auto bad = taiga::spawn([&] { l.put(fragile(11, true)); });
    while (bad.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    auto good = taiga::spawn([&] { l.put(fragile(12)); });
    while (good.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(l.get().v, 10);
    EXPECT_THROW(bad.join(), std::runtime_error);
    good.join();
    EXPECT_EQ(l.size(), 1u);
    EXPECT_EQ(l.get().v, 12);
    EXPECT_EQ(l.unfinished_tasks(), 2u);
    EXPECT_TRUE(l.empty());
  });
}

// An allocation that fails in put (the item's node, or a priority queue's
// growth) throws std::bad_alloc to the caller and changes nothing.
TEST_P(queue_test, an_allocation_failure_changes_nothing_and_strands_nobody) {
#if defined(QUEUE_TEST_TSAN)
  GTEST_SKIP() << "TSan's runtime owns operator new";
#else
  rt().run([] {
    taiga::queue<int> q;
    q.put(1);
    q.put(2);
    fail_allocation(1);
    EXPECT_THROW((void)q.try_put(3), std::bad_alloc);
    stop_failing_allocations();
    EXPECT_EQ(q.unfinished_tasks(), 2u);
    EXPECT_EQ(drain(q), (std::vector<int>{1, 2}));

    auto getter = taiga::spawn([&] { return q.get(); });
    while (getter.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    fail_allocation(1);
    EXPECT_THROW(q.put(4), std::bad_alloc);
    stop_failing_allocations();
    EXPECT_EQ(getter.state(), taiga::tasklet_state::parked);
    q.put(5);
    EXPECT_EQ(getter.join(), 5);

    // The heap's array is full after 16 puts: the next put's second
    // allocation (after the node's) grows it, and fails.
    taiga::priority_queue<int, std::greater<int>> p;
    for (int i = 0; i < 16; ++i) p.put(i);
    fail_allocation(2);
    EXPECT_THROW(p.put(99), std::bad_alloc);
    stop_failing_allocations();
    EXPECT_EQ(p.size(), 16u);
    p.put(16);
    std::vector<int> want;
    for (int i = 16; i >= 0; --i) want.push_back(i);
    EXPECT_EQ(drain(p), want);
  });
#endif
}

TEST(queue_plain, works_without_a_runtime) {
  taiga::queue<int> q(1);
  std::thread t([&] {
    for (int i = 0; i < 100; ++i) q.put(i);
  });
  for (int i = 0; i < 100; ++i) ASSERT_EQ(q.get(), i);
  t.join();
  EXPECT_FALSE(q.try_get_for(1ms).has_value());
}
