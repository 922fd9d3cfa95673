// The I/O hook (taiga/runtime/poller.hpp) and the public parking API
// (taiga/runtime/park.hpp), with a fake poller: completions are functions
// that an outside thread queues, as a reactor would find them ready.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <sstream>
#include <taiga/runtime.hpp>
#include <thread>

#include "hang_guard.hpp"
#include "runtime_fixture.hpp"

using namespace std::chrono_literals;

namespace {

class fake_poller final : public taiga::poller {
 public:
  std::size_t poll() override {
    polls.fetch_add(1);
    return run_ready();
  }
  void wait(std::int64_t deadline_ns) override {
    waits.fetch_add(1);
    {
      std::unique_lock lk(mu_);
      in_wait.fetch_add(1);
      auto pred = [&] { return interrupted_ || !ready_.empty(); };
      if (deadline_ns == INT64_MAX) {
        cv_.wait(lk, pred);
      } else {
        cv_.wait_until(
            lk, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns)), pred);
      }
      interrupted_ = false;
      in_wait.fetch_sub(1);
    }
    run_ready();
  }
  void interrupt() noexcept override {
    interrupts.fetch_add(1);
    std::lock_guard lk(mu_);
    interrupted_ = true;
    cv_.notify_all();
  }
  std::size_t in_flight() const noexcept override { return in_flight_.load(); }

  // The "reactor": an operation starts (in flight) and later completes.
  void start() { in_flight_.fetch_add(1); }
  void complete_later(std::function<void()> fn) {
    std::lock_guard lk(mu_);
    ready_.push_back([this, fn = std::move(fn)] {
      in_flight_.fetch_sub(1);
      fn();
    });
    cv_.notify_all();  // a reactor's own wake-up (an fd became ready)
  }

  std::atomic<int> polls{0}, waits{0}, interrupts{0};
  std::atomic<int> in_wait{0};  // workers inside wait() now, not since start

 private:
  std::size_t run_ready() {
    std::deque<std::function<void()>> batch;
    {
      std::lock_guard lk(mu_);
      batch.swap(ready_);
    }
    for (auto& f : batch) f();
    return batch.size();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> ready_;
  bool interrupted_ = false;
  std::atomic<std::size_t> in_flight_{0};
};

std::vector<fake_poller*> install_fakes(taiga::runtime& rt) {
  std::vector<fake_poller*> out;
  taiga::install_pollers(rt, [&](unsigned) {
    auto p = std::make_unique<fake_poller>();
    out.push_back(p.get());
    return p;
  });
  return out;
}

class pollers : public taiga::test::with_workers {};
TAIGA_WORKER_COUNTS(pollers);

}  // namespace

TEST_P(pollers, install_is_once_and_poller_of_finds_them) {
  EXPECT_EQ(taiga::poller_of(rt(), 0), nullptr);
  auto fakes = install_fakes(rt());
  ASSERT_EQ(fakes.size(), GetParam());
  for (unsigned i = 0; i < GetParam(); ++i) EXPECT_EQ(taiga::poller_of(rt(), i), fakes[i]);
  EXPECT_TRUE(install_fakes(rt()).empty());  // the factory is not called again
  EXPECT_EQ(taiga::poller_of(rt(), GetParam()), nullptr);
}

TEST_P(pollers, a_completion_wakes_a_tasklet_parked_on_a_wake_slot) {
  auto fakes = install_fakes(rt());
  const int ops = static_cast<int>(taiga::test::scaled(2000));
  rt().run([&] {
    taiga::test::hang_guard guard("pollers");
    for (int i = 0; i < ops; ++i) {
      fake_poller* p = fakes[static_cast<unsigned>(i) % fakes.size()];
      taiga::wake_slot slot;
      int result = 0;
      p->start();
      std::thread io([&, p] {
        p->complete_later([&] {
          result = i;
          slot.signal();
        });
      });
      EXPECT_EQ(slot.wait("fake read", taiga::fd_object(i)), taiga::wake_status::signaled);
      EXPECT_EQ(result, i);
      io.join();
    }
  });
  EXPECT_EQ(rt().report().io_waits, 0u);
}

TEST_P(pollers, idle_workers_wait_in_their_pollers_and_unpark_interrupts_them) {
  auto fakes = install_fakes(rt());
  rt().run([&] {
    taiga::test::hang_guard guard("pollers");
    std::atomic<bool> ran{false};
    bool all_waited = false;
    int interrupts_before = 0;
    // From a plain thread, while this tasklet is parked in blocking() and no
    // worker has work: wait until every worker is inside its poller's wait
    // now (a count since start would also take a worker that woke for our
    // own timer and is spinning), then spawn: the work must reach a worker
    // through a poller's interrupt.
    std::thread outside([&] {
      auto until = std::chrono::steady_clock::now() + 20s;  // TSan, 8 workers, 2 cores
      while (std::chrono::steady_clock::now() < until) {
        int waiting = 0;
        for (auto* f : fakes) waiting += f->in_wait.load();
        if (waiting == static_cast<int>(fakes.size())) {
          all_waited = true;
          break;
        }
        std::this_thread::sleep_for(1ms);
      }
      for (auto* f : fakes) interrupts_before += f->interrupts.load();
      taiga::spawn(rt(), [&] { ran = true; }).join();
    });
    // Not outside.join() here: on one worker it would block the worker the
    // spawned tasklet needs.
    taiga::blocking([&] { outside.join(); });
    EXPECT_TRUE(all_waited) << "the workers never all waited in their pollers";
    EXPECT_TRUE(ran.load());
    int interrupts_after = 0;
    for (auto* f : fakes) interrupts_after += f->interrupts.load();
    EXPECT_GT(interrupts_after, interrupts_before);
  });
}

TEST_P(pollers, a_busy_workers_poller_is_polled_by_others) {
  auto fakes = install_fakes(rt());
  rt().run([&] {
    taiga::test::hang_guard guard("pollers");
    // This tasklet spins on its worker; its poller's completion must still
    // be run (by a spinner, or sysmon within its 10 ms period).
    int me = taiga::this_tasklet::worker();
    fake_poller* mine = fakes[static_cast<unsigned>(me)];
    std::atomic<bool> done{false};
    taiga::wake_slot slot;
    mine->start();
    mine->complete_later([&] {
      done = true;
      slot.signal();
    });
    auto t0 = std::chrono::steady_clock::now();
    while (!done.load() && std::chrono::steady_clock::now() - t0 < 2s) {
    }
    EXPECT_TRUE(done.load()) << "a busy worker's completion waited for it";
    EXPECT_EQ(slot.wait("fake read"), taiga::wake_status::signaled);
  });
}

TEST_P(pollers, io_in_flight_is_not_a_deadlock_but_nothing_in_flight_is) {
  auto fakes = install_fakes(rt());
  std::atomic<int> reports{0};
  // The fixture's runtime has the default handler: use a runtime of our own.
  taiga::runtime_config c;
  c.workers = GetParam();
  c.deadlock_handler = [&](const taiga::deadlock_report&) { reports.fetch_add(1); };
  taiga::runtime own(std::move(c));
  std::vector<fake_poller*> own_fakes;
  taiga::install_pollers(own, [&](unsigned) {
    auto p = std::make_unique<fake_poller>();
    own_fakes.push_back(p.get());
    return p;
  });
  own.run([&] {
    taiga::wake_slot slot;
    own_fakes[0]->start();  // an operation in flight: a peer may still answer
    std::thread io([&] {
      std::this_thread::sleep_for(300ms);
      own_fakes[0]->complete_later([&] { slot.signal(); });
    });
    EXPECT_EQ(slot.wait("fake read"), taiga::wake_status::signaled);
    io.join();
    EXPECT_EQ(reports.load(), 0);
    // Nothing in flight now: the same wait is a deadlock.
    slot.reset();
    EXPECT_THROW(
        {
          if (slot.wait("fake read") == taiga::wake_status::interrupted)
            taiga::raise_interruption();
        },
        taiga::deadlock_error);
  });
  EXPECT_EQ(reports.load(), 1);
  (void)fakes;
}

TEST_P(pollers, dump_names_the_fd_and_report_counts_io_waits) {
  auto fakes = install_fakes(rt());
  rt().run([&] {
    taiga::wake_slot slot;
    fakes[0]->start();
    auto t = taiga::spawn([&] { return slot.wait("fake read", taiga::fd_object(42)); });
    taiga::test::wait_parked(t);
    EXPECT_EQ(rt().report().io_waits, 1u);
    std::ostringstream os;
    rt().dump(os);
    EXPECT_NE(os.str().find("fake read (fd 42)"), std::string::npos) << os.str();
    fakes[0]->complete_later([&] { slot.signal(); });
    EXPECT_EQ(t.join(), taiga::wake_status::signaled);
  });
}

TEST(pollers_embedded, run_once_polls_and_the_drive_loop_waits_in_the_poller) {
  taiga::runtime rt(taiga::runtime_config{.workers = 0});
  auto fakes = install_fakes(rt);
  ASSERT_EQ(fakes.size(), 1u);
  int got = 0;
  std::thread io;
  int v = rt.run([&] {
    taiga::wake_slot slot;
    fakes[0]->start();
    io = std::thread([&] {
      std::this_thread::sleep_for(20ms);
      fakes[0]->complete_later([&] {
        got = 7;
        slot.signal();
      });
    });
    slot.wait("fake read");
    return got;
  });
  io.join();
  EXPECT_EQ(v, 7);
  EXPECT_GT(fakes[0]->waits.load(), 0);  // the host thread slept in the poller
  fakes[0]->start();
  fakes[0]->complete_later([] {});
  rt.run_once();
  EXPECT_EQ(fakes[0]->in_flight(), 0u);  // run_once polled it
}

// ---- wake_slot and interruption_mask ----------------------------------------

class wake_slots : public taiga::test::with_workers {};
TAIGA_WORKER_COUNTS(wake_slots);

TEST_P(wake_slots, a_signal_before_the_wait_is_kept_and_one_after_a_timeout_is_harmless) {
  rt().run([] {
    taiga::wake_slot s;
    s.signal();
    EXPECT_TRUE(s.signaled());
    EXPECT_EQ(s.wait("x"), taiga::wake_status::signaled);  // at once
    s.reset();
    EXPECT_EQ(s.wait_until(std::chrono::steady_clock::now() + 5ms, "x"),
              taiga::wake_status::timeout);
    EXPECT_FALSE(s.signal());  // nobody waits: only marks the slot
    s.reset();
    EXPECT_FALSE(s.signaled());
  });
}

TEST_P(wake_slots, signals_from_plain_threads_race_waits_and_lose_nothing) {
  // A plain thread that wakes tasklets tells deadlock detection so.
  auto guard = rt().keep_alive();
  rt().run([] {
    const int n = static_cast<int>(taiga::test::scaled(20000));
    taiga::wake_slot s;
    std::atomic<int> turn{-1};  // the thread signals turn i only after the reset for i
    std::thread th([&] {
      for (int i = 0; i < n; ++i) {
        while (turn.load() != i) std::this_thread::yield();
        s.signal();
      }
    });
    for (int i = 0; i < n; ++i) {
      s.reset();
      turn.store(i);
      ASSERT_EQ(s.wait("x"), taiga::wake_status::signaled);
    }
    th.join();
  });
}

TEST_P(wake_slots, a_kill_ends_the_wait_and_a_masked_wait_keeps_it_pending) {
  rt().run([] {
    taiga::wake_slot s;
    std::atomic<int> stage{0};
    auto t = taiga::spawn([&] {
      EXPECT_EQ(s.wait("op"), taiga::wake_status::interrupted);
      // As an I/O operation does: cancel, wait for the completion masked.
      stage = 1;
      {
        taiga::interruption_mask m;
        s.wait_masked("op completion");
      }
      stage = 2;
      taiga::raise_interruption();
    });
    taiga::test::wait_parked(t);
    t.kill();
    while (stage.load() != 1) taiga::this_tasklet::yield();
    taiga::test::wait_parked(t);
    t.kill();  // a second kill during the masked wait: still waits
    taiga::this_tasklet::sleep_for(5ms);
    EXPECT_EQ(stage.load(), 1);
    s.signal();  // the "completion"
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
    EXPECT_EQ(stage.load(), 2);
  });
}

TEST_P(wake_slots, a_timeout_scope_interrupts_and_raises_timeout_error) {
  rt().run([] {
    taiga::wake_slot s;
    EXPECT_THROW(
        {
          taiga::timeout_scope sc(5ms);
          if (s.wait("op") == taiga::wake_status::interrupted) taiga::raise_interruption();
        },
        taiga::timeout_error);
  });
}
