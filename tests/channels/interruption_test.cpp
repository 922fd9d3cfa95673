// Issue 18 B: a tasklet that loops on a sync toolkit operation that completes
// without parking (an uncontended lock, a set event, a free permit, a zero
// counter, an empty try_get, a ready future) must stay killable: every
// acquiring or waiting operation is an interruption point (sync.hpp's list).
// Each test spins a tasklet on one such operation, kills it (or throws into
// it) from the test's plain thread and joins it, at 1, 2, 4 and 8 workers; a
// hang guard turns a regression (a kill never delivered, join() stuck) into
// a failure. The last tests check that a kill delivered at an interruption
// point takes nothing: no permit, no lock, no item, no arrival, no count.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <taiga/channels/executor.hpp>
#include <taiga/channels/future.hpp>
#include <taiga/channels/queue.hpp>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

#include "hang_guard.hpp"
#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::hang_guard;
using taiga::test::spin;
using taiga::test::spin_on;
using taiga::test::with_workers;

namespace {

class interruption : public with_workers {};
class interruption_keeps_state : public with_workers {};

// A tasklet looping on `op()` is killed: join() reports it killed.
template <class Op>
void expect_killable(taiga::runtime& rt, const char* what, Op op) {
  hang_guard guard(what);
  std::atomic<long> rounds{0};
  auto t = spin_on(rt, rounds, op);
  t.kill();
  EXPECT_THROW(t.join(), taiga::tasklet_killed) << what;
}

// The same with throw_into: join() rethrows the exception thrown in.
template <class Op>
void expect_throwable_into(taiga::runtime& rt, const char* what, Op op) {
  hang_guard guard(what);
  std::atomic<long> rounds{0};
  auto t = spin_on(rt, rounds, op);
  EXPECT_TRUE(t.throw_into(std::runtime_error("poke")));
  EXPECT_THROW(t.join(), std::runtime_error) << what;
}

// ---- each primitive, on its form that completes without parking ----------

TEST_P(interruption, mutex_lock_unlock_loop) {
  taiga::mutex m;
  expect_killable(rt(), "mutex lock", [&] {
    m.lock();
    m.unlock();
  });
  expect_killable(rt(), "mutex try_lock", [&] {
    if (m.try_lock()) m.unlock();
  });
  expect_killable(rt(), "mutex try_lock_for", [&] {
    if (m.try_lock_for(1h)) m.unlock();
  });
  EXPECT_TRUE(m.try_lock());  // the kills left it unlocked
  m.unlock();
}

TEST_P(interruption, recursive_mutex_loop) {
  taiga::recursive_mutex m;
  expect_killable(rt(), "recursive_mutex lock", [&] {
    m.lock();
    m.unlock();
  });
  expect_killable(rt(), "recursive_mutex try_lock", [&] {
    if (m.try_lock()) m.unlock();
  });
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST_P(interruption, shared_mutex_loop) {
  taiga::shared_mutex m;
  expect_killable(rt(), "shared_mutex lock", [&] {
    m.lock();
    m.unlock();
  });
  expect_killable(rt(), "shared_mutex lock_shared", [&] {
    m.lock_shared();
    m.unlock_shared();
  });
  expect_killable(rt(), "shared_mutex try_lock_shared", [&] {
    if (m.try_lock_shared()) m.unlock_shared();
  });
  expect_killable(rt(), "shared_mutex try_lock_shared_for", [&] {
    if (m.try_lock_shared_for(1h)) m.unlock_shared();
  });
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

// The mutex stays held across the loop, so only the wait itself can deliver
// the kill; it still holds the mutex when the kill propagates.
TEST_P(interruption, condition_variable_wait_whose_predicate_holds) {
  taiga::mutex m;
  taiga::condition_variable cv;
  for (int form = 0; form < 3; ++form) {
    hang_guard guard("condition_variable wait");
    std::atomic<long> rounds{0};
    std::atomic<bool> held_when_killed{false};
    auto t = spin(rt(), rounds, [&, form](std::atomic<long>& n) {
      std::unique_lock lk(m);
      try {
        for (;;) {
          if (form == 0) cv.wait(lk, [] { return true; });
          if (form == 1) (void)cv.wait_for(lk, 1h, [] { return true; });
          if (form == 2) (void)cv.wait_for(lk, 0ms);  // times out at once
          n.fetch_add(1, std::memory_order_relaxed);
        }
      } catch (...) {
        held_when_killed = lk.owns_lock();
        throw;
      }
    });
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed) << "form " << form;
    EXPECT_TRUE(held_when_killed.load()) << "form " << form;
  }
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST_P(interruption, event_wait_when_set) {
  taiga::event ev;
  ev.set();
  expect_killable(rt(), "event wait", [&] { ev.wait(); });
  expect_killable(rt(), "event wait_for", [&] { (void)ev.wait_for(1h); });
  expect_killable(rt(), "event wait_until",
                  [&] { (void)ev.wait_until(std::chrono::steady_clock::now() + 1h); });
  EXPECT_TRUE(ev.is_set());
}

TEST_P(interruption, semaphore_with_permits) {
  taiga::semaphore sem(1);
  expect_killable(rt(), "semaphore acquire", [&] {
    sem.acquire();
    sem.release();
  });
  expect_killable(rt(), "semaphore try_acquire", [&] {
    if (sem.try_acquire()) sem.release();
  });
  expect_killable(rt(), "semaphore try_acquire_for", [&] {
    if (sem.try_acquire_for(1h)) sem.release();
  });
  taiga::bounded_semaphore bounded(2);
  expect_killable(rt(), "bounded_semaphore acquire", [&] {
    bounded.acquire();
    bounded.release();
  });
  EXPECT_EQ(sem.available(), 1);
  EXPECT_EQ(bounded.available(), 2);
}

TEST_P(interruption, latch_at_zero) {
  taiga::latch l(0);
  expect_killable(rt(), "latch wait", [&] { l.wait(); });
  expect_killable(rt(), "latch wait_for", [&] { (void)l.wait_for(1h); });
  expect_killable(rt(), "latch arrive_and_wait", [&] { l.arrive_and_wait(0); });
}

TEST_P(interruption, barrier_of_one_party) {
  taiga::barrier b(1);  // every arrival is the last: it never parks
  expect_killable(rt(), "barrier arrive_and_wait", [&] { (void)b.arrive_and_wait(); });
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0u);
}

TEST_P(interruption, wait_group_at_zero) {
  taiga::wait_group wg;
  expect_killable(rt(), "wait_group wait", [&] { wg.wait(); });
  expect_killable(rt(), "wait_group wait_for", [&] { (void)wg.wait_for(1h); });
  EXPECT_EQ(wg.count(), 0);
}

TEST_P(interruption, queue_operations_that_do_not_park) {
  taiga::queue<int> q;  // unbounded: put never parks
  expect_killable(rt(), "queue put/get", [&] {
    q.put(1);
    (void)q.get();
  });
  expect_killable(rt(), "queue try_get on empty", [&] { (void)q.try_get(); });
  expect_killable(rt(), "queue try_get_for(0) on empty", [&] { (void)q.try_get_for(0ms); });
  while (q.unfinished_tasks() > 0) q.task_done();
  expect_killable(rt(), "queue join with nothing unfinished", [&] { q.join(); });
  taiga::queue<int> full(1);
  full.put(7);
  expect_killable(rt(), "bounded queue try_put when full", [&] { (void)full.try_put(8); });
  expect_killable(rt(), "bounded queue try_put_for(0) when full",
                  [&] { (void)full.try_put_for(8, 0ms); });
  EXPECT_EQ(full.size(), 1u);
  EXPECT_EQ(full.try_get(), std::optional<int>(7));
}

TEST_P(interruption, ready_future) {
  taiga::promise<int> p;
  taiga::shared_future<int> sf = p.get_future().share();
  p.set_value(42);
  expect_killable(rt(), "shared_future get", [&] { (void)sf.get(); });
  expect_killable(rt(), "shared_future wait", [&] { sf.wait(); });
  expect_killable(rt(), "shared_future wait_for", [&] { (void)sf.wait_for(1h); });

  taiga::promise<void> pv;
  taiga::future<void> f = pv.get_future();
  pv.set_value();
  expect_killable(rt(), "future wait", [&] { f.wait(); });
  EXPECT_TRUE(f.valid());
  EXPECT_NO_THROW(f.get());
  EXPECT_EQ(sf.get(), 42);
}

TEST_P(interruption, as_completed_after_its_end) {
  std::vector<taiga::future<int>> fs;
  taiga::promise<int> p;
  fs.push_back(p.get_future());
  p.set_value(1);
  auto r = taiga::as_completed(std::move(fs));
  auto first = r.next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->get(), 1);
  // A loop that ignores the end (nullopt) must stay killable, like a loop
  // on a closed channel's receive.
  expect_killable(rt(), "as_completed next at the end", [&] { (void)r.next(); });
}

// ---- throw_into, delivered the same way ---------------------------------

TEST_P(interruption, throw_into_a_loop_that_never_parks) {
  taiga::semaphore sem(1);
  expect_throwable_into(rt(), "throw_into semaphore", [&] {
    sem.acquire();
    sem.release();
  });
  taiga::event ev;
  ev.set();
  expect_throwable_into(rt(), "throw_into event", [&] { ev.wait(); });
  taiga::queue<int> q;
  expect_throwable_into(rt(), "throw_into queue try_get", [&] { (void)q.try_get(); });
  EXPECT_EQ(sem.available(), 1);
}

// ---- a delivered kill takes nothing --------------------------------------

// Runs `op()` in a tasklet that is killed just before it calls it: the
// tasklet busy-waits (no interruption point) until the kill is pending, then
// calls `op()`, which must throw at once. Returns whether `op()` returned.
template <class Op>
bool kill_just_before(taiga::runtime& rt, const char* what, Op op) {
  hang_guard guard(what);
  std::atomic<bool> started{false};
  std::atomic<bool> go{false};
  std::atomic<bool> returned{false};
  auto t = taiga::spawn(rt, [&, op]() mutable {
    started = true;
    while (!go.load()) {
    }
    op();
    returned = true;
  });
  while (!started.load()) std::this_thread::yield();
  t.kill();  // pending: the tasklet runs and does not park before op()
  go = true;
  EXPECT_THROW(t.join(), taiga::tasklet_killed) << what;
  return returned.load();
}

TEST_P(interruption_keeps_state, semaphore_permit_stays) {
  taiga::semaphore sem(1);
  EXPECT_FALSE(kill_just_before(rt(), "acquire", [&] { sem.acquire(); }));
  EXPECT_EQ(sem.available(), 1);
  EXPECT_FALSE(kill_just_before(rt(), "try_acquire", [&] { (void)sem.try_acquire(); }));
  EXPECT_EQ(sem.available(), 1);
  EXPECT_FALSE(kill_just_before(rt(), "try_acquire_for", [&] { (void)sem.try_acquire_for(1h); }));
  EXPECT_EQ(sem.available(), 1);
}

TEST_P(interruption_keeps_state, mutex_stays_unlocked) {
  taiga::mutex m;
  EXPECT_FALSE(kill_just_before(rt(), "lock", [&] { m.lock(); }));
  EXPECT_FALSE(kill_just_before(rt(), "try_lock", [&] { (void)m.try_lock(); }));
  taiga::shared_mutex sm;
  EXPECT_FALSE(kill_just_before(rt(), "lock_shared", [&] { sm.lock_shared(); }));
  EXPECT_FALSE(kill_just_before(rt(), "try_lock", [&] { (void)sm.try_lock(); }));
  EXPECT_TRUE(m.try_lock());  // nobody took it
  m.unlock();
  EXPECT_TRUE(sm.try_lock());
  sm.unlock();
}

TEST_P(interruption_keeps_state, queue_item_stays) {
  taiga::queue<int> q;
  q.put(5);
  EXPECT_FALSE(kill_just_before(rt(), "get", [&] { (void)q.get(); }));
  EXPECT_FALSE(kill_just_before(rt(), "try_get", [&] { (void)q.try_get(); }));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_FALSE(kill_just_before(rt(), "put", [&] { q.put(6); }));
  EXPECT_EQ(q.size(), 1u);  // the put did not happen
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_EQ(q.try_get(), std::optional<int>(5));
}

TEST_P(interruption_keeps_state, latch_and_barrier_are_not_counted) {
  taiga::latch l(1);
  EXPECT_FALSE(kill_just_before(rt(), "latch arrive_and_wait", [&] { l.arrive_and_wait(); }));
  EXPECT_FALSE(l.try_wait());  // not counted down
  taiga::barrier b(2);
  EXPECT_FALSE(
      kill_just_before(rt(), "barrier arrive_and_wait", [&] { (void)b.arrive_and_wait(); }));
  EXPECT_EQ(b.n_waiting(), 0u);  // did not arrive
  EXPECT_FALSE(b.broken());      // and broke nothing
}

TEST_P(interruption_keeps_state, future_stays_valid) {
  taiga::promise<int> p;
  taiga::future<int> f = p.get_future();
  p.set_value(42);
  EXPECT_FALSE(kill_just_before(rt(), "future get", [&] { (void)f.get(); }));
  ASSERT_TRUE(f.valid());  // the value was not moved out
  EXPECT_EQ(f.get(), 42);
}

TAIGA_WORKER_COUNTS(interruption);
TAIGA_WORKER_COUNTS(interruption_keeps_state);

}  // namespace
