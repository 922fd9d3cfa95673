// select: readiness, default, timeout, disabled cases, fairness, self-select,
// duplicate channels, close, kills, and a chaotic stress.
#include <gtest/gtest.h>

#include <atomic>
#include <taiga/channels.hpp>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::channel;
using taiga::channel_status;
using taiga::on_default;
using taiga::on_receive;
using taiga::on_send;
using taiga::test::scaled;
using taiga::test::with_workers;

class selects : public with_workers {};
TAIGA_WORKER_COUNTS(selects);

TEST_P(selects, runs_the_ready_case_across_channel_types) {
  rt().run([] {
    channel<int> a(1);
    channel<std::string> b(1);
    EXPECT_EQ(b.send("hi"), channel_status::ok);
    std::string got;
    auto i = taiga::select(on_receive(a, [](std::optional<int>) { FAIL(); }),
                           on_receive(b, [&](std::optional<std::string> v) { got = *v; }));
    EXPECT_EQ(i, 1u);
    EXPECT_EQ(got, "hi");
  });
}

TEST_P(selects, parks_until_a_case_completes) {
  rt().run([] {
    channel<int> a, b;
    auto s = taiga::spawn([b]() mutable {
      taiga::this_tasklet::sleep_for(2ms);
      EXPECT_EQ(b.send(5), channel_status::ok);
    });
    int got = 0;
    auto i = taiga::select(on_receive(a), on_receive(b, [&](std::optional<int> v) { got = *v; }));
    EXPECT_EQ(i, 1u);
    EXPECT_EQ(got, 5);
    EXPECT_EQ(a.balance(), 0) << "the losing case left its channel";
    s.join();
  });
}

TEST_P(selects, send_case_hands_over_to_a_parked_receiver) {
  rt().run([] {
    channel<int> a;
    auto r = taiga::spawn([a]() mutable { return *a.receive(); });
    while (r.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    channel_status st = channel_status::timeout;
    EXPECT_EQ(taiga::select(on_send(a, 42, [&](channel_status s) { st = s; })), 0u);
    EXPECT_EQ(st, channel_status::ok);
    EXPECT_EQ(r.join(), 42);
  });
}

TEST_P(selects, default_runs_when_nothing_is_ready_and_never_parks) {
  rt().run([] {
    channel<int> a;
    bool dflt = false;
    EXPECT_EQ(taiga::select(on_receive(a), on_default([&] { dflt = true; })), 1u);
    EXPECT_TRUE(dflt);
    EXPECT_EQ(a.balance(), 0);
  });
}

TEST_P(selects, timeout_returns_select_timeout) {
  rt().run([] {
    channel<int> a, b;
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(taiga::select_for(10ms, on_receive(a), on_send(b, 1)), taiga::select_timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
    EXPECT_EQ(a.balance(), 0);
    EXPECT_EQ(b.balance(), 0);
  });
}

TEST_P(selects, disabled_cases_are_ignored) {
  rt().run([] {
    channel<int> ready(1), guarded(1), nil = channel<int>::nil();
    EXPECT_EQ(ready.send(1), channel_status::ok);
    EXPECT_EQ(guarded.send(2), channel_status::ok);
    for (int k = 0; k < 20; ++k) {
      auto i = taiga::select(on_receive(nil), on_receive(guarded).when(false),
                             on_receive(ready, [&](std::optional<int>) {
                               EXPECT_EQ(ready.send(1), channel_status::ok);
                             }));
      EXPECT_EQ(i, 2u);
    }
    // Nothing enabled: it parks like Go's `select {}`, here until its timeout.
    EXPECT_EQ(taiga::select_for(2ms, on_receive(nil), on_receive(guarded).when(false)),
              taiga::select_timeout);
  });
}

TEST_P(selects, ready_cases_are_chosen_fairly) {
  rt().run([] {
    channel<int> a(1), b(1);
    int counts[2] = {0, 0};
    const int trials = static_cast<int>(scaled(10'000));
    for (int k = 0; k < trials; ++k) {
      if (a.size() == 0) {
        EXPECT_EQ(a.send(0), channel_status::ok);
      }
      if (b.size() == 0) {
        EXPECT_EQ(b.send(1), channel_status::ok);
      }
      counts[taiga::select(on_receive(a), on_receive(b))]++;
    }
    // Each case should win about half of the time (Go's TestSelectFairness).
    EXPECT_GT(counts[0], trials * 4 / 10);
    EXPECT_GT(counts[1], trials * 4 / 10);
  });
}

TEST_P(selects, a_select_never_receives_its_own_send) {
  rt().run([] {
    channel<int> c;
    auto peer = taiga::spawn([c]() mutable {
      for (int i = 0; i < 100; ++i) {
        if (i % 2 == 0) {
          EXPECT_EQ(c.send(i), channel_status::ok);
        } else {
          (void)c.receive();
        }
      }
    });
    for (int i = 0; i < 100; ++i) {
      taiga::select(on_send(c, -1), on_receive(c, [](std::optional<int> v) { EXPECT_NE(*v, -1); }));
    }
    peer.join();
  });
}

TEST_P(selects, the_same_channel_twice_is_fine) {
  rt().run([] {
    channel<int> c;
    auto s = taiga::spawn([c]() mutable {
      for (int i = 0; i < 50; ++i) EXPECT_EQ(c.send(i), channel_status::ok);
    });
    for (int i = 0; i < 50; ++i) taiga::select(on_receive(c), on_receive(c));
    EXPECT_EQ(c.balance(), 0);
    s.join();
  });
}

TEST_P(selects, close_completes_a_receive_case_with_nullopt) {
  rt().run([] {
    channel<int> a, b;
    auto closer = taiga::spawn([a]() mutable {
      taiga::this_tasklet::sleep_for(2ms);
      a.close();
    });
    bool got_closed = false;
    EXPECT_EQ(
        taiga::select(on_receive(a, [&](std::optional<int> v) { got_closed = !v; }), on_receive(b)),
        0u);
    EXPECT_TRUE(got_closed);
    closer.join();
  });
}

TEST_P(selects, killed_while_parked_in_select_leaves_every_channel) {
  rt().run([] {
    channel<int> a, b;
    auto t = taiga::spawn([a, b] { taiga::select(on_receive(a), on_send(b, 3)); });
    while (t.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(a.balance(), -1);
    EXPECT_EQ(b.balance(), 1);
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
    EXPECT_EQ(a.balance(), 0);
    EXPECT_EQ(b.balance(), 0);
  });
}

TEST_P(selects, chaotic_mix_of_selects_does_not_deadlock_or_lose_values) {
  const int n = static_cast<int>(scaled(3'000));
  std::atomic<long> sum{0};
  rt().run([&] {
    std::vector<channel<int>> chs;
    for (int i = 0; i < 4; ++i) chs.emplace_back(static_cast<std::size_t>(i % 2));
    std::vector<taiga::tasklet<void>> ts;
    for (int p = 0; p < 4; ++p)
      ts.push_back(taiga::spawn([&, p] {
        for (int i = 0; i < n; ++i) {
          int v = 1;
          taiga::select(on_send(chs[static_cast<std::size_t>(p)], v),
                        on_send(chs[static_cast<std::size_t>((p + 1) % 4)], v));
        }
      }));
    for (int c = 0; c < 4; ++c)
      ts.push_back(taiga::spawn([&] {
        for (int i = 0; i < n; ++i) {
          auto take = [&](std::optional<int> v) { sum.fetch_add(*v); };
          // Every consumer takes from every channel: the totals match
          // whatever way the producers' selects went.
          taiga::select(on_receive(chs[0], take), on_receive(chs[1], take),
                        on_receive(chs[2], take), on_receive(chs[3], take));
        }
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(sum.load(), 4L * n);
}

// Regression: close() woke parked receivers through a list that reused the
// nodes' channel links; a woken select's unpark() then unlinked its node a
// second time, writing into other waiters' (dead) frames and underflowing the
// channel's receiver count.
TEST_P(selects, close_wakes_several_parked_selects_and_receivers_cleanly) {
  rt().run([] {
    channel<taiga::unit> done;
    channel<int> other;
    std::vector<taiga::tasklet<bool>> ts;
    for (int k = 0; k < 6; ++k) {
      if (k % 2 == 0) {
        ts.push_back(taiga::spawn([done, other] {
          bool closed = false;
          taiga::select(on_receive(done, [&](std::optional<taiga::unit> v) { closed = !v; }),
                        on_receive(other));
          return closed;
        }));
      } else {
        ts.push_back(taiga::spawn([done]() mutable { return !done.receive().has_value(); }));
      }
    }
    for (auto& t : ts) taiga::test::wait_parked(t);
    EXPECT_EQ(done.balance(), -6);
    done.close();
    for (auto& t : ts) EXPECT_TRUE(t.join());
    EXPECT_EQ(done.balance(), 0);
    EXPECT_EQ(other.balance(), 0);
    // The channels still work.
    auto r = taiga::spawn([other]() mutable { return *other.receive(); });
    EXPECT_EQ(other.send(3), channel_status::ok);
    EXPECT_EQ(r.join(), 3);
  });
}
