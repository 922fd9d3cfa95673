// Channel semantics, rule by rule, at capacities 0, 1 and N and at 1, 2, 4
// and 8 workers (a port of the spirit of Go's chan_test.go and Stackless's
// test_channel.py), plus kills, timeouts and exactly-once stress.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <taiga/channels.hpp>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::channel;
using taiga::channel_status;
using taiga::test::scaled;

struct param {
  unsigned workers;
  std::size_t capacity;
};

class channels : public ::testing::TestWithParam<param> {
 protected:
  void SetUp() override { rt_.emplace(taiga::runtime_config{.workers = GetParam().workers}); }
  void TearDown() override {
    taiga::test::expect_clean(*rt_);
    rt_.reset();
  }
  taiga::runtime& rt() { return *rt_; }
  std::size_t cap() const { return GetParam().capacity; }
  std::optional<taiga::runtime> rt_;
};

INSTANTIATE_TEST_SUITE_P(grid, channels,
                         ::testing::Values(param{1, 0}, param{1, 1}, param{1, 16}, param{2, 0},
                                           param{2, 1}, param{2, 16}, param{4, 0}, param{4, 16},
                                           param{8, 0}, param{8, 1}),
                         [](const ::testing::TestParamInfo<param>& p) {
                           return std::to_string(p.param.workers) + "w_cap" +
                                  std::to_string(p.param.capacity);
                         });

TEST_P(channels, values_from_one_sender_arrive_in_order) {
  rt().run([&] {
    channel<int> ch(cap());
    auto sender = taiga::spawn([ch]() mutable {
      for (int i = 0; i < 1000; ++i) EXPECT_EQ(ch.send(i), channel_status::ok);
      ch.close();
    });
    int expect = 0;
    for (int v : ch) EXPECT_EQ(v, expect++);
    EXPECT_EQ(expect, 1000);
    sender.join();
  });
}

TEST_P(channels, receive_parks_until_a_value_comes_and_send_parks_when_full) {
  rt().run([&] {
    channel<int> ch(cap());
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(ch.try_send(1), channel_status::ok);
    EXPECT_EQ(ch.try_send(2), channel_status::would_block);  // full (or no receiver)
    std::atomic<bool> sent{false};
    auto s = taiga::spawn([ch, &sent]() mutable {
      EXPECT_EQ(ch.send(2), channel_status::ok);
      sent = true;
    });
    while (s.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_FALSE(sent.load());
    EXPECT_EQ(ch.balance(), 1);  // one parked sender
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(ch.receive(), 1);
    EXPECT_EQ(ch.receive(), 2);
    s.join();
    EXPECT_TRUE(sent.load());
    EXPECT_EQ(ch.balance(), 0);
    EXPECT_FALSE(ch.try_receive().has_value());
    EXPECT_EQ(ch.try_receive_status().status, channel_status::would_block);
  });
}

TEST_P(channels, balance_counts_parked_receivers_negatively) {
  rt().run([&] {
    channel<int> ch(cap());
    std::vector<taiga::tasklet<int>> rs;
    for (int i = 0; i < 3; ++i)
      rs.push_back(taiga::spawn([ch]() mutable { return *ch.receive(); }));
    for (auto& r : rs) taiga::test::wait_parked(r);
    EXPECT_EQ(ch.balance(), -3);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ch.send(i), channel_status::ok);
    int sum = 0;
    for (auto& r : rs) sum += r.join();
    EXPECT_EQ(sum, 3);
    EXPECT_EQ(ch.balance(), 0);
  });
}

TEST_P(channels, close_drains_buffered_and_offered_values_then_reports_closed) {
  rt().run([&] {
    channel<int> ch(cap());
    for (std::size_t i = 0; i < cap(); ++i)
      EXPECT_EQ(ch.send(static_cast<int>(i)), channel_status::ok);
    auto offer = taiga::spawn([ch]() mutable { return ch.send(99); });  // parks: full
    while (offer.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    ch.close();
    EXPECT_TRUE(ch.closing());
    EXPECT_FALSE(ch.closed());
    EXPECT_EQ(ch.send(5), channel_status::closed);  // nothing new accepted
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(ch.receive(), static_cast<int>(i));
    EXPECT_EQ(ch.receive(), 99);  // the parked sender's offer is drained
    EXPECT_EQ(offer.join(), channel_status::ok);
    EXPECT_TRUE(ch.closed());
    EXPECT_FALSE(ch.receive().has_value());
    EXPECT_EQ(ch.receive_status().status, channel_status::closed);
    ch.close();  // idempotent
  });
}

TEST_P(channels, close_wakes_parked_receivers_with_closed) {
  rt().run([&] {
    channel<std::string> ch(cap());
    std::vector<taiga::tasklet<channel_status>> rs;
    for (int i = 0; i < 4; ++i)
      rs.push_back(taiga::spawn([ch]() mutable { return ch.receive_status().status; }));
    for (auto& r : rs) taiga::test::wait_parked(r);
    ch.close();
    for (auto& r : rs) EXPECT_EQ(r.join(), channel_status::closed);
  });
}

TEST_P(channels, send_exception_is_thrown_by_the_receiver) {
  rt().run([&] {
    channel<int> ch(cap());
    auto s = taiga::spawn([ch]() mutable {
      EXPECT_EQ(ch.send(1), channel_status::ok);
      EXPECT_EQ(ch.send_exception(std::runtime_error("bad input")), channel_status::ok);
      EXPECT_EQ(ch.send(2), channel_status::ok);
    });
    EXPECT_EQ(ch.receive(), 1);
    EXPECT_THROW(ch.receive(), std::runtime_error);
    EXPECT_EQ(ch.receive(), 2);
    s.join();
  });
}

TEST_P(channels, timed_operations_time_out_and_leave_nothing_behind) {
  rt().run([&] {
    channel<int> ch(cap());
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(static_cast<bool>(ch.receive_for(10ms)));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(ch.try_send(0), channel_status::ok);
    EXPECT_EQ(ch.send_for(7, 5ms), channel_status::timeout);
    EXPECT_EQ(ch.balance(), 0);
    EXPECT_EQ(ch.size(), cap());
  });
}

TEST_P(channels, killed_parked_sender_leaves_and_its_value_is_never_delivered) {
  // PyPy #2595: a tasklet killed while blocked on a channel stayed in the
  // channel's queue and a later receive got its value from a dead tasklet.
  rt().run([&] {
    channel<int> ch(cap());
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(ch.send(-1), channel_status::ok);
    auto doomed = taiga::spawn([ch]() mutable { (void)ch.send(666); });
    while (doomed.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(ch.balance(), 1);
    doomed.kill();
    EXPECT_THROW(doomed.join(), taiga::tasklet_killed);
    EXPECT_EQ(ch.balance(), 0);
    auto good = taiga::spawn([ch]() mutable { return ch.send(7); });
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(ch.receive(), -1);
    EXPECT_EQ(ch.receive(), 7);
    EXPECT_EQ(good.join(), channel_status::ok);
  });
}

TEST_P(channels, killed_parked_receiver_leaves_and_gets_nothing) {
  rt().run([&] {
    channel<int> ch(cap());
    auto doomed = taiga::spawn([ch]() mutable { return ch.receive().value_or(-1); });
    while (doomed.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    doomed.kill();
    EXPECT_THROW(doomed.join(), taiga::tasklet_killed);
    EXPECT_EQ(ch.balance(), 0);
    auto good = taiga::spawn([ch]() mutable { return *ch.receive(); });
    EXPECT_EQ(ch.send(8), channel_status::ok);
    EXPECT_EQ(good.join(), 8);
  });
}

TEST_P(channels, move_only_values_and_send_sequence) {
  rt().run([&] {
    channel<std::unique_ptr<int>> ch(cap());
    auto s = taiga::spawn([ch]() mutable {
      std::vector<std::unique_ptr<int>> v;
      for (int i = 0; i < 10; ++i) v.push_back(std::make_unique<int>(i));
      auto n = ch.send_sequence(std::move(v));
      ch.close();
      return n;
    });
    int sum = 0;
    for (auto& p : ch) sum += *p;
    EXPECT_EQ(sum, 45);
    EXPECT_EQ(s.join(), 10u);
  });
}

TEST_P(channels, many_producers_and_consumers_deliver_each_value_exactly_once_despite_kills) {
  const int producers = 4, consumers = 4;
  const int per = static_cast<int>(scaled(20'000));
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(producers * per));
  std::atomic<long> delivered{0};
  rt().run([&] {
    channel<int> ch(cap());
    std::vector<taiga::tasklet<int>> ps;  // how many each producer sent
    for (int p = 0; p < producers; ++p)
      ps.push_back(taiga::spawn([ch, p, per]() mutable {
        int sent = 0;
        for (int i = 0; i < per; ++i) {
          // Timeouts mixed in: a timed-out send keeps its value; retry it.
          while (ch.send_for(p * per + i, 1ms) == channel_status::timeout) {
          }
          ++sent;
        }
        return sent;
      }));
    std::vector<taiga::tasklet<void>> cs;
    for (int c = 0; c < consumers; ++c)
      cs.push_back(taiga::spawn([ch, &seen, &delivered]() mutable {
        for (;;) {
          auto [v, st] = ch.receive_until(std::chrono::steady_clock::now() + 2ms);
          if (st == channel_status::closed) return;
          if (st == channel_status::timeout) continue;
          seen[static_cast<std::size_t>(*v)].fetch_add(1);
          delivered.fetch_add(1);
        }
      }));
    // A consumer that is killed mid-wait must not swallow a value.
    for (int k = 0; k < 20; ++k) {
      auto victim = taiga::spawn([ch, &seen, &delivered]() mutable {
        for (;;) {
          auto v = ch.receive();
          if (!v) return;
          seen[static_cast<std::size_t>(*v)].fetch_add(1);
          delivered.fetch_add(1);
        }
      });
      taiga::this_tasklet::sleep_for(100us);
      victim.kill();
      try {
        victim.join();
      } catch (const taiga::tasklet_killed&) {
      }
    }
    int total = 0;
    for (auto& p : ps) total += p.join();
    EXPECT_EQ(total, producers * per);
    ch.close();
    for (auto& c : cs) c.join();
  });
  EXPECT_EQ(delivered.load(), producers * per);
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << "value " << i;
}

TEST_P(channels, per_sender_order_holds_while_senders_migrate) {
  const int senders = 4, per = static_cast<int>(scaled(5'000));
  rt().run([&] {
    channel<std::pair<int, int>> ch(cap());
    std::vector<taiga::tasklet<void>> ss;
    for (int s = 0; s < senders; ++s)
      ss.push_back(taiga::spawn([ch, s, per]() mutable {
        for (int i = 0; i < per; ++i) {
          EXPECT_EQ(ch.send({s, i}), channel_status::ok);
          if (i % 64 == 0) taiga::this_tasklet::yield();  // a chance to migrate
        }
      }));
    std::vector<int> next(senders, 0);
    for (int k = 0; k < senders * per; ++k) {
      auto [s, i] = *ch.receive();
      ASSERT_EQ(i, next[static_cast<std::size_t>(s)]++) << "sender " << s;
    }
    for (auto& s : ss) s.join();
  });
}

// ---- preference (one worker: the order of execution is deterministic) ----

TEST(channel_preference,
     receiver_first_by_default_sender_first_with_plus_one_and_neither_with_zero) {
  for (int pref : {-1, 0, 1}) {
    std::vector<std::string> log;
    taiga::run(
        [&] {
          channel<int> ch;
          ch.set_preference(pref);
          auto r = taiga::spawn([&log, ch]() mutable {
            log.push_back("recv wait");
            (void)ch.receive();
            log.push_back("recv got");
          });
          while (r.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
          EXPECT_EQ(ch.send(1), channel_status::ok);
          log.push_back("sender after send");
          r.join();
        },
        taiga::runtime_config{.workers = 1});
    ASSERT_EQ(log.size(), 3u);
    if (pref < 0) {
      EXPECT_EQ(log[1], "recv got") << "receiver runs first";
    } else {
      EXPECT_EQ(log[1], "sender after send") << "sender continues, pref " << pref;
    }
  }
}

// ---- model-based: random sequences of non-blocking operations ----

TEST(channel_model, random_operations_match_a_reference_queue) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    std::size_t cap = rng() % 5;
    taiga::run(
        [&] {
          channel<int> ch(cap);
          std::deque<int> model;
          bool closing = false;
          int next = 0;
          for (int op = 0; op < 200; ++op) {
            switch (rng() % 6) {
              case 0:
              case 1:
              case 2: {
                auto st = ch.try_send(next);
                channel_status want = closing              ? channel_status::closed
                                      : model.size() < cap ? channel_status::ok
                                                           : channel_status::would_block;
                ASSERT_EQ(st, want);
                if (st == channel_status::ok) model.push_back(next);
                ++next;
                break;
              }
              case 3:
              case 4: {
                auto [v, st] = ch.try_receive_status();
                if (!model.empty()) {
                  ASSERT_EQ(st, channel_status::ok);
                  ASSERT_EQ(*v, model.front());
                  model.pop_front();
                } else {
                  ASSERT_EQ(st, closing ? channel_status::closed : channel_status::would_block);
                }
                break;
              }
              case 5:
                if (rng() % 8 == 0) {
                  ch.close();
                  closing = true;
                }
                break;
            }
            ASSERT_EQ(ch.size(), model.size());
            ASSERT_EQ(ch.closed(), closing && model.empty());
          }
        },
        taiga::runtime_config{.workers = 1});
  }
}

TEST(channel_handles, nil_and_identity) {
  channel<int> a, b = a, c;
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_TRUE(static_cast<bool>(a));
  EXPECT_FALSE(static_cast<bool>(channel<int>::nil()));
}

TEST(channel_threads, plain_threads_and_tasklets_talk_through_a_channel) {
  taiga::runtime rt(taiga::runtime_config{.workers = 2});
  channel<int> to_thread, to_tasklet;
  auto t = taiga::spawn(rt, [=]() mutable {
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(to_thread.send(i), channel_status::ok);
      EXPECT_EQ(to_tasklet.receive(), i * 2);
    }
  });
  for (int i = 0; i < 100; ++i) {
    int v = *to_thread.receive();  // blocks this plain thread
    EXPECT_EQ(to_tasklet.send(v * 2), channel_status::ok);
  }
  t.join();
}

TEST(channel_timeout_scope, receive_inside_a_timeout_scope_throws_and_leaves_the_channel) {
  taiga::run(
      [] {
        channel<int> ch;
        EXPECT_THROW(
            {
              taiga::timeout_scope t(5ms);
              (void)ch.receive();
            },
            taiga::timeout_error);
        EXPECT_EQ(ch.balance(), 0);
        // The scope's own timed call keeps its status when it comes first.
        taiga::timeout_scope t(1h);
        EXPECT_FALSE(static_cast<bool>(ch.receive_for(2ms)));
      },
      taiga::runtime_config{.workers = 2});
}

TEST(channel_timeout_scope, a_plain_thread_gets_the_same_scope) {
  channel<int> ch;
  taiga::timeout_scope t(5ms);
  EXPECT_THROW((void)ch.receive(), taiga::timeout_error);
}

TEST(channel_signal, void_like_signals) {
  taiga::run(
      [] {
        channel<taiga::unit> ready;
        auto waiter = taiga::spawn([ready]() mutable { return ready.receive().has_value(); });
        EXPECT_EQ(ready.send({}), channel_status::ok);
        EXPECT_TRUE(waiter.join());
        ready.close();
        EXPECT_FALSE(ready.receive().has_value());
      },
      taiga::runtime_config{.workers = 2});
}

TEST(channel_buffer, values_left_in_a_dropped_channel_are_destroyed) {
  // The buffer is a ring allocated on first use; whatever is still in it
  // when the last handle goes is destroyed (ASan checks for leaks).
  auto counter = std::make_shared<int>(0);
  {
    channel<std::shared_ptr<int>> ch(8);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(ch.try_send(counter), channel_status::ok);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(ch.try_receive().has_value());
    for (int i = 0; i < 4; ++i) EXPECT_EQ(ch.try_send(counter), channel_status::ok);  // wraps
    EXPECT_EQ(ch.size(), 7u);
    EXPECT_EQ(counter.use_count(), 8);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

// Regression: the yield that lets the preferred partner run after a hand-off
// delivered a pending throw_into; the value already taken was then lost (the
// sender had been told "ok").
// The side that yields after a hand-off (the sender with -1, the receiver
// with +1) is interrupted by its partner during that yield: its operation
// has happened and still reports so; the interruption waits for the next
// interruption point.
TEST(channel_preference, a_pending_interrupt_does_not_lose_a_handed_off_value) {
  for (int pref : {-1, 1}) {
    taiga::run(
        [pref] {
          channel<int> ch;
          ch.set_preference(pref);
          auto yielder = std::make_shared<taiga::tasklet<void>>();
          std::atomic<int> got{0};
          std::atomic<bool> sent{false};
          // -1: the receiver parks first; +1: the sender does.
          auto receiver = [ch, yielder, pref, &got] {
            int v = *ch.receive();
            if (pref < 0) {
              EXPECT_TRUE(yielder->throw_into(std::runtime_error("late")));
            }
            got = v;
          };
          auto sender = [ch, yielder, pref, &sent] {
            EXPECT_EQ(ch.send(42), channel_status::ok);
            if (pref > 0) {
              EXPECT_TRUE(yielder->throw_into(std::runtime_error("late")));
            }
            sent = true;
          };
          taiga::tasklet<void> first;
          if (pref < 0) {
            first = taiga::spawn(receiver);
          } else {
            first = taiga::spawn(sender);
          }
          while (first.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
          // The yielder takes or hands over the value, then yields to the
          // partner, who throws into it; its operation still completes.
          if (pref < 0) {
            *yielder = taiga::spawn(sender);
          } else {
            *yielder = taiga::spawn(receiver);
          }
          first.join();
          try {
            yielder->join();
          } catch (const std::runtime_error&) {
          }
          EXPECT_EQ(got.load(), 42) << "preference " << pref;
          EXPECT_TRUE(sent.load()) << "preference " << pref;
        },
        taiga::runtime_config{.workers = 1});
  }
}

// The deadlock report through the public API and the default handler: two
// tasklets each wait to receive what only the other would send next. The
// report goes to stderr, naming both with their spawn sites and what they
// wait on, and every parked tasklet (the main one in join() too) gets
// taiga::deadlock_error. (The two may see a kill first: the main tasklet's
// handles kill them on its way out if it runs before they do.)
TEST(channel_deadlock, a_receive_cycle_is_reported_on_stderr_with_names_and_sites) {
  channel<int> to_a, to_b;
  std::atomic<int> interrupted{0};
  auto relay = [&interrupted](channel<int>& in, channel<int>& out) {
    try {
      std::optional<int> v = in.receive();
      if (v) (void)out.send(*v + 1);
    } catch (const taiga::deadlock_error&) {
      interrupted.fetch_add(1);
      throw;
    } catch (const taiga::tasklet_exit&) {
      interrupted.fetch_add(1);
      throw;
    }
  };
  ::testing::internal::CaptureStderr();
  EXPECT_THROW(taiga::run(
                   [&] {
                     auto a = taiga::spawn(taiga::spawn_options{.name = "cycle-a"}, relay,
                                           std::ref(to_a), std::ref(to_b));
                     auto b = taiga::spawn(taiga::spawn_options{.name = "cycle-b"}, relay,
                                           std::ref(to_b), std::ref(to_a));
                     a.join();
                   },
                   taiga::runtime_config{.workers = 2}),
               taiga::deadlock_error);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(interrupted.load(), 2);  // neither got a value
  EXPECT_NE(err.find("deadlock"), std::string::npos) << err;
  for (const char* name : {"cycle-a", "cycle-b"}) {
    const std::size_t at = err.find(name);
    ASSERT_NE(at, std::string::npos) << err;
    const std::string line = err.substr(at, err.find('\n', at) - at);
    EXPECT_NE(line.find("channel receive"), std::string::npos) << line;
  }
  EXPECT_NE(err.find("channel_test.cpp"), std::string::npos) << err;
}
