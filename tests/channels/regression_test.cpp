// Regressions found in review of the synchronization toolkit. Each test
// names the failure it replays.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <taiga/channels.hpp>
#include <thread>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;

// queue::task_done() completed a woken joiner while still holding the
// queue's lock and then touched the queue again; a joiner that destroys the
// queue as soon as join() returns made that a use-after-free (ASan).
TEST(regressions, a_queue_destroyed_right_after_join_returns) {
  taiga::runtime rt(taiga::runtime_config{.workers = 2});
  for (int round = 0; round < static_cast<int>(taiga::test::scaled(2000)); ++round) {
    auto* q = new taiga::queue<int>();
    q->put(1);
    auto joiner = taiga::spawn(rt, [q] {
      q->join();
      delete q;  // the queue dies the moment join() returns
    });
    std::thread worker([q] {
      (void)q->get();
      q->task_done();
    });
    worker.join();
    joiner.join();
  }
}

// condition_variable::wait: a waiter that was notified and then killed
// before it retook the mutex threw out of wait() and the notification was
// lost; the next waiter stayed parked with the condition true.
TEST(regressions, a_notified_then_killed_waiter_passes_the_notification_on) {
  taiga::run(
      [] {
        taiga::mutex m;
        taiga::condition_variable cv;
        int items = 0;
        auto waiter = [&] {
          std::unique_lock lk(m);
          cv.wait(lk, [&] { return items > 0; });
          --items;
        };
        taiga::tasklet<void> a = taiga::spawn(waiter);
        taiga::tasklet<void> b = taiga::spawn(waiter);
        while (a.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
        while (b.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
        {
          std::lock_guard lk(m);
          ++items;
          cv.notify_one();  // wakes a, which cannot take m while we hold it
          a.kill();         // a dies before acting on the notification
        }
        EXPECT_THROW(a.join(), taiga::tasklet_killed);
        taiga::timeout_scope limit(5s);
        b.join();  // b got the notification a passed on
        EXPECT_EQ(items, 0);
      },
      taiga::runtime_config{.workers = 1});
}

// condition_variable::wait under an expired timeout_scope retook the mutex
// in a loop that threw timeout_error on every try and never parked: on one
// worker the mutex's holder never ran again.
TEST(regressions, a_timed_out_condition_wait_retakes_the_mutex_without_spinning) {
  taiga::run(
      [] {
        taiga::mutex m;
        taiga::condition_variable cv;
        std::atomic<bool> waiting{false};
        auto w = taiga::spawn([&] {
          std::unique_lock lk(m);
          taiga::timeout_scope scope(5ms);
          waiting = true;
          EXPECT_THROW(cv.wait(lk), taiga::timeout_error);
          EXPECT_TRUE(lk.owns_lock());
        });
        while (!waiting.load()) taiga::this_tasklet::sleep_for(1ms);
        {
          std::lock_guard lk(m);  // held across the waiter's deadline
          taiga::this_tasklet::sleep_for(20ms);
        }
        w.join();
      },
      taiga::runtime_config{.workers = 1});
}
