// taiga actors (actor.hpp): tell and receive, ask with deadlines (late
// replies dropped and counted), messages to dead actors, the visitor form,
// monitors (also after the end), links and exit trapping, each overflow
// policy under a flood, per-sender order, the registry, bad use, and a
// million actors spawned, asked and stopped. Every TEST_P runs at 1, 2, 4
// and 8 workers; the fixture's teardown checks that no tasklet leaked.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <taiga/channels/actor.hpp>
#include <taiga/channels/channel.hpp>
#include <taiga/channels/sync.hpp>
#include <taiga/runtime.hpp>
#include <thread>
#include <variant>
#include <vector>

#include "runtime_fixture.hpp"

#if defined(__SANITIZE_THREAD__)
#define ACTOR_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ACTOR_TEST_TSAN 1
#endif
#endif

using namespace std::chrono_literals;
using taiga::test::scaled;
using taiga::test::with_workers;

namespace {

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

// [doc:counter]
struct add {
  int n;
};
struct get {};
struct stop {};
using counter_msg = std::variant<add, taiga::request<get, int>, stop>;

void counter(taiga::actor_self<counter_msg>& self, int start) {
  int total = start;
  for (;;) {
    counter_msg m = self.receive();
    if (auto* a = std::get_if<add>(&m)) {
      total += a->n;
    } else if (auto* r = std::get_if<taiga::request<get, int>>(&m)) {
      r->reply(total);
    } else {
      return;  // stop: the actor ends normally
    }
  }
}
// [/doc]

struct echo_req {
  int v;
};
using echo_msg = std::variant<taiga::request<echo_req, int>>;

class actors : public with_workers {};
TAIGA_WORKER_COUNTS(actors);

TEST_P(actors, tell_then_ask_sees_every_earlier_tell) {
  rt().run([] {
    // [doc:spawn-tell-ask]
    taiga::actor_ref<counter_msg> c = taiga::spawn_actor(counter, 10);
    c.tell(add{1});
    c.tell(add{2});
    taiga::ask_result<int> r = c.ask(get{});
    // [/doc]
    ASSERT_TRUE(r.ok()) << r.what();
    EXPECT_EQ(*r, 13);
    EXPECT_EQ(c.tell(stop{}), taiga::send_status::ok);
    EXPECT_EQ(c.join().kind, taiga::exit_kind::normal);
  });
}

TEST_P(actors, messages_to_a_dead_actor_return_dead_at_once) {
  rt().run([] {
    auto c = taiga::spawn_actor(counter, 0);
    c.tell(stop{});
    c.join();
    EXPECT_FALSE(c.alive());
    EXPECT_EQ(c.tell(add{1}), taiga::send_status::dead);
    auto t0 = std::chrono::steady_clock::now();
    auto r = c.ask(get{}, 10s);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), taiga::ask_error::dead);
    EXPECT_THROW((void)r.value(), taiga::ask_failure);
  });
}

TEST_P(actors, ask_times_out_while_the_actor_is_slow_and_the_late_reply_is_dropped) {
  rt().run([] {
    taiga::event release;
    auto slow = taiga::spawn_actor([&release](taiga::actor_self<echo_msg>& self) {
      for (int i = 0; i < 2; ++i) {
        auto m = self.receive();
        auto& r = std::get<0>(m);
        if (r.value.v == 1) release.wait();  // the first ask is answered too late
        r.reply(r.value.v * 10);
      }
    });
    // [doc:ask-timeout]
    auto first = slow.ask(echo_req{1}, 20ms);
    ASSERT_FALSE(first.ok());
    EXPECT_EQ(first.error(), taiga::ask_error::timeout);
    // [/doc]
    release.set();
    // The late reply to the first ask must never answer the second.
    auto second = slow.ask(echo_req{2}, 10s);
    ASSERT_TRUE(second.ok()) << second.what();
    EXPECT_EQ(*second, 20);
    slow.join();
    EXPECT_EQ(slow.stats().late_replies, 1u);
  });
}

TEST_P(actors, ask_on_an_actor_that_fails_meanwhile_carries_its_exception) {
  rt().run([] {
    auto a = taiga::spawn_actor([](taiga::actor_self<echo_msg>& self) {
      auto m = self.receive();
      (void)m;
      throw std::runtime_error("disk on fire");
    });
    auto r = a.ask(echo_req{1}, 10s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), taiga::ask_error::failed);
    EXPECT_NE(r.what().find("disk on fire"), std::string::npos) << r.what();
    auto why = a.join();
    EXPECT_EQ(why.kind, taiga::exit_kind::exception);
    EXPECT_EQ(why.type, "std::runtime_error");
    EXPECT_EQ(why.text, "disk on fire");
  });
}

TEST_P(actors, a_request_dropped_unanswered_answers_no_reply) {
  rt().run([] {
    auto a = taiga::spawn_actor([](taiga::actor_self<echo_msg>& self) {
      { auto m = self.receive(); }  // dropped without a reply
      (void)self.receive_for(10s);
    });
    auto r = a.ask(echo_req{1}, 10s);
    EXPECT_EQ(r.error(), taiga::ask_error::no_reply);
    a.kill();
    EXPECT_EQ(a.join().kind, taiga::exit_kind::killed);
  });
}

// The actor holds the request unanswered and is killed: the ask ends at
// once with dead, not at its deadline (the request, destroyed while the
// kill unwinds, leaves the answer to the actor's end).
TEST_P(actors, an_ask_pending_when_the_actor_is_killed_ends_at_once_with_dead) {
  rt().run([] {
    auto hoarder = taiga::spawn_actor([](taiga::actor_self<echo_msg>& self) {
      std::vector<echo_msg> held;
      for (;;) held.push_back(self.receive());
    });
    auto asker = taiga::spawn([hoarder] { return hoarder.ask(echo_req{1}, 60s); });
    while (hoarder.size() != 0 || hoarder.stats().high_water == 0)
      taiga::this_tasklet::sleep_for(1ms);  // the request was taken
    auto t0 = std::chrono::steady_clock::now();
    hoarder.kill();
    auto r = asker.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), taiga::ask_error::dead);
    EXPECT_NE(r.what().find("killed"), std::string::npos) << r.what();
  });
}

TEST_P(actors, self_exit_ends_the_actor_with_the_given_reason) {
  rt().run([] {
    auto a = taiga::spawn_actor([](taiga::actor_self<int>& self) {
      self.exit(taiga::exit_reason{taiga::exit_kind::shutdown, {}, "asked to"});
    });
    auto why = a.join();
    EXPECT_EQ(why.kind, taiga::exit_kind::shutdown);
    EXPECT_EQ(why.text, "asked to");
  });
}

TEST_P(actors, a_plain_thread_parks_on_a_full_mailbox_until_there_is_room) {
  auto guard = rt().keep_alive();  // only this thread wakes the actor: no deadlock
  taiga::event go;
  auto a = rt().run([&go] {
    return taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 1},
                              [&go](taiga::actor_self<int>& self) {
                                go.wait();
                                int sum = 0;
                                for (int i = 0; i < 3; ++i) sum += self.receive();
                                EXPECT_EQ(sum, 6);
                              });
  });
  EXPECT_EQ(a.tell(1), taiga::send_status::ok);
  std::thread t([&go] {
    std::this_thread::sleep_for(20ms);
    go.set();
  });
  EXPECT_EQ(a.tell(2), taiga::send_status::ok);  // blocks this thread until room
  EXPECT_EQ(a.tell(3), taiga::send_status::ok);
  t.join();
  EXPECT_EQ(a.join().kind, taiga::exit_kind::normal);
}

TEST_P(actors, a_reply_sent_twice_is_a_usage_error) {
  rt().run([] {
    std::atomic<bool> threw{false};
    auto a = taiga::spawn_actor([&threw](taiga::actor_self<echo_msg>& self) {
      auto m = self.receive();
      auto& r = std::get<0>(m);
      r.reply(1);
      try {
        r.reply(2);
      } catch (const taiga::usage_error&) {
        threw = true;
      }
    });
    EXPECT_EQ(*a.ask(echo_req{0}), 1);
    a.join();
    EXPECT_TRUE(threw);
  });
}

TEST_P(actors, ask_from_outside_a_tasklet_is_a_usage_error) {
  auto guard = rt().keep_alive();  // only this thread wakes the actor: no deadlock
  taiga::actor_ref<counter_msg> c = rt().run([] { return taiga::spawn_actor(counter, 0); });
  EXPECT_THROW((void)c.ask(get{}, 1s), taiga::usage_error);
  // tell works from any thread.
  EXPECT_EQ(c.tell(stop{}), taiga::send_status::ok);
  EXPECT_EQ(c.join().kind, taiga::exit_kind::normal);
}

TEST_P(actors, receive_for_times_out_and_the_visitor_sees_receive_timeout) {
  rt().run([] {
    auto a = taiga::spawn_actor([](taiga::actor_self<int>& self) {
      EXPECT_FALSE(self.receive_for(5ms).has_value());
      bool timed_out = false;
      EXPECT_FALSE(self.receive_for(
          5ms, overloaded{[](int) {}, [&](taiga::receive_timeout) { timed_out = true; }}));
      EXPECT_TRUE(timed_out);
    });
    a.join();
  });
}

TEST_P(actors, a_kill_ends_an_actor_parked_in_receive_as_killed) {
  rt().run([] {
    auto a = taiga::spawn_actor(taiga::actor_options{.name = "sleeper"},
                                [](taiga::actor_self<int>& self) { (void)self.receive(); });
    EXPECT_EQ(a.name(), "sleeper");
    EXPECT_TRUE(a.kill());
    auto why = a.join();
    EXPECT_EQ(why.kind, taiga::exit_kind::killed);
    EXPECT_FALSE(a.kill());  // already ended
  });
}

// ---- monitors and links ----------------------------------------------------

using watch_msg = std::variant<taiga::any_actor_ref>;

TEST_P(actors, a_monitor_delivers_one_down_also_after_the_end) {
  rt().run([] {
    auto victim = taiga::spawn_actor([](taiga::actor_self<int>& self) {
      if (self.receive() == 1) throw std::logic_error("bad input");
    });
    auto done = taiga::spawn_actor(counter, 0);
    done.tell(stop{});
    done.join();  // ended before anyone monitors it
    taiga::channel<std::string> out(8);
    auto watcher = taiga::spawn_actor([out](taiga::actor_self<watch_msg>& self) mutable {
      for (int i = 0; i < 2; ++i) {
        auto m = self.receive();
        self.monitor(std::get<0>(m));
      }
      for (int i = 0; i < 2; ++i) {
        // [doc:visitor-down]
        self.receive(overloaded{[](taiga::any_actor_ref&) {},
                                [&](taiga::down& d) {
                                  (void)out.send(std::to_string(d.actor.id()) + " " +
                                                 d.reason.describe());
                                }});
        // [/doc]
      }
      // Exactly once: nothing more comes.
      EXPECT_FALSE(self.receive_for(20ms, overloaded{[](auto&) {}}));
    });
    watcher.tell(taiga::any_actor_ref(done));
    watcher.tell(taiga::any_actor_ref(victim));
    victim.tell(1);
    std::vector<std::string> got{*out.receive(), *out.receive()};
    std::sort(got.begin(), got.end());
    std::vector<std::string> want{
        std::to_string(done.id()) + " normal",
        std::to_string(victim.id()) + " exception std::logic_error: bad input"};
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);
    watcher.join();
  });
}

// A chain a - b - c of linked actors: c's failure kills b, which kills a;
// a trapping actor in the chain gets an exit_msg instead and survives.
TEST_P(actors, link_chains_kill_unless_the_actor_traps_exits) {
  rt().run([] {
    taiga::channel<std::string> out(8);
    taiga::channel<int> linked(4);
    auto c = taiga::spawn_actor([](taiga::actor_self<int>& self) {
      (void)self.receive();
      throw std::runtime_error("c failed");
    });
    auto b = taiga::spawn_actor([c, linked](taiga::actor_self<int>& self) mutable {
      self.link(c);
      (void)linked.send(1);
      (void)self.receive();  // killed by the link while parked here
    });
    auto a = taiga::spawn_actor([b, linked](taiga::actor_self<int>& self) mutable {
      self.link(b);
      (void)linked.send(1);
      (void)self.receive();
    });
    auto trapper = taiga::spawn_actor(
        taiga::actor_options{.trap_exit = true},
        [a, out, linked](taiga::actor_self<int>& self) mutable {
          self.link(a);
          (void)linked.send(1);
          self.receive(overloaded{
              [](int) {},
              [&](taiga::exit_msg& e) { (void)out.send(std::string(to_string(e.reason.kind))); }});
        });
    for (int i = 0; i < 3; ++i) (void)linked.receive();
    c.tell(1);
    EXPECT_EQ(c.join().kind, taiga::exit_kind::exception);
    auto rb = b.join();
    EXPECT_EQ(rb.kind, taiga::exit_kind::killed);
    EXPECT_NE(rb.text.find("c failed"), std::string::npos) << rb.text;
    EXPECT_EQ(a.join().kind, taiga::exit_kind::killed);
    EXPECT_EQ(*out.receive(), "killed");
    EXPECT_EQ(trapper.join().kind, taiga::exit_kind::normal);
  });
}

TEST_P(actors, a_normal_end_does_not_kill_linked_actors_and_linking_to_an_ended_one_signals) {
  rt().run([] {
    auto quitter = taiga::spawn_actor([](taiga::actor_self<int>& self) { (void)self.receive(); });
    auto survivor = taiga::spawn_actor([quitter](taiga::actor_self<int>& self) {
      self.link(quitter);
      EXPECT_EQ(self.receive(), 7);
    });
    taiga::this_tasklet::sleep_for(5ms);
    quitter.tell(0);
    quitter.join();
    survivor.tell(7);
    EXPECT_EQ(survivor.join().kind, taiga::exit_kind::normal);

    auto crashed =
        taiga::spawn_actor([](taiga::actor_self<int>&) { throw std::runtime_error("x"); });
    crashed.join();
    auto late = taiga::spawn_actor([crashed](taiga::actor_self<int>& self) {
      self.link(crashed);    // already ended abnormally: the signal comes now
      (void)self.receive();  // killed here
    });
    EXPECT_EQ(late.join().kind, taiga::exit_kind::killed);
  });
}

// ---- mailbox ---------------------------------------------------------------

TEST_P(actors, messages_from_one_sender_arrive_in_send_order) {
  rt().run([] {
    const int senders = 4;
    const int each = static_cast<int>(scaled(20000));
    auto sink = taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 16},
                                   [=](taiga::actor_self<std::pair<int, int>>& self) {
                                     std::vector<int> next(senders, 0);
                                     for (int i = 0; i < senders * each; ++i) {
                                       auto [s, v] = self.receive();
                                       ASSERT_EQ(v, next[s]) << "sender " << s;
                                       ++next[s];
                                     }
                                   });
    std::vector<taiga::tasklet<void>> ts;
    for (int s = 0; s < senders; ++s)
      ts.push_back(taiga::spawn([=] {
        for (int v = 0; v < each; ++v)
          ASSERT_EQ(sink.tell(std::pair{s, v}), taiga::send_status::ok);
      }));
    for (auto& t : ts) t.join();
    EXPECT_EQ(sink.join().kind, taiga::exit_kind::normal);
    EXPECT_LE(sink.stats().high_water, 16u);
  });
}

TEST_P(actors, overflow_fail_rejects_and_drop_newest_drops_the_new_message) {
  rt().run([] {
    for (auto p : {taiga::overflow_policy::fail, taiga::overflow_policy::drop_newest}) {
      taiga::event go;
      taiga::channel<std::vector<int>> out(1);
      auto a = taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 8, .overflow = p},
                                  [&go, out](taiga::actor_self<int>& self) mutable {
                                    go.wait();
                                    std::vector<int> got;
                                    while (auto v = self.try_receive()) got.push_back(*v);
                                    (void)out.send(std::move(got));
                                  });
      int ok = 0;
      for (int i = 0; i < 100; ++i) {
        auto s = a.tell(i);
        if (s == taiga::send_status::ok) {
          ++ok;
        } else {
          EXPECT_EQ(s, p == taiga::overflow_policy::fail ? taiga::send_status::full
                                                         : taiga::send_status::dropped);
        }
      }
      EXPECT_EQ(ok, 8);
      auto st = a.stats();
      EXPECT_EQ(st.size, 8u);
      EXPECT_EQ(st.high_water, 8u);
      EXPECT_EQ(p == taiga::overflow_policy::fail ? st.rejected : st.dropped, 92u);
      go.set();
      EXPECT_EQ(*out.receive(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
      a.join();
    }
  });
}

TEST_P(actors, overflow_drop_oldest_keeps_the_newest) {
  rt().run([] {
    taiga::event go;
    taiga::channel<std::vector<int>> out(1);
    auto a =
        taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 8,
                                                .overflow = taiga::overflow_policy::drop_oldest},
                           [&go, out](taiga::actor_self<int>& self) mutable {
                             go.wait();
                             std::vector<int> got;
                             while (auto v = self.try_receive()) got.push_back(*v);
                             (void)out.send(std::move(got));
                           });
    for (int i = 0; i < 100; ++i) EXPECT_EQ(a.tell(i), taiga::send_status::ok);
    // [doc:stats]
    EXPECT_EQ(a.stats().dropped, 92u);
    // [/doc]
    go.set();
    EXPECT_EQ(*out.receive(), (std::vector<int>{92, 93, 94, 95, 96, 97, 98, 99}));
    a.join();
  });
}

TEST_P(actors, overflow_park_holds_senders_until_there_is_room_and_loses_nothing) {
  rt().run([] {
    const int n = static_cast<int>(scaled(50000));
    auto a = taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 4},
                                [n](taiga::actor_self<int>& self) {
                                  long sum = 0;
                                  for (int i = 0; i < n; ++i) {
                                    sum += self.receive();
                                    if (i % 64 == 0) taiga::this_tasklet::yield();
                                  }
                                  EXPECT_EQ(sum, static_cast<long>(n) * (n - 1) / 2);
                                });
    std::vector<taiga::tasklet<void>> ts;
    for (int s = 0; s < 4; ++s)
      ts.push_back(taiga::spawn([=] {
        for (int v = s; v < n; v += 4) ASSERT_EQ(a.tell(v), taiga::send_status::ok);
      }));
    for (auto& t : ts) t.join();
    a.join();
    EXPECT_EQ(a.stats().dropped, 0u);
    EXPECT_LE(a.stats().high_water, 4u);
  });
}

TEST_P(actors, a_sender_parked_on_a_full_mailbox_gets_dead_when_the_actor_ends) {
  rt().run([] {
    auto a = taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 1},
                                [](taiga::actor_self<int>& self) {
                                  taiga::this_tasklet::sleep_for(std::chrono::hours(1));
                                  (void)self;
                                });
    EXPECT_EQ(a.tell(1), taiga::send_status::ok);
    auto sender = taiga::spawn([a] { return a.tell(2); });  // parks: full
    taiga::test::wait_parked(sender);
    a.kill();
    EXPECT_EQ(sender.join(), taiga::send_status::dead);
  });
}

TEST_P(actors, an_actor_telling_itself_into_a_full_mailbox_is_refused_not_parked) {
  rt().run([] {
    auto a = taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 2},
                                [](taiga::actor_self<int>& self) {
                                  EXPECT_EQ(self.ref().tell(1), taiga::send_status::ok);
                                  EXPECT_EQ(self.ref().tell(2), taiga::send_status::ok);
                                  EXPECT_EQ(self.ref().tell(3), taiga::send_status::full);
                                  EXPECT_EQ(self.receive(), 1);
                                  EXPECT_EQ(self.receive(), 2);
                                });
    EXPECT_EQ(a.join().kind, taiga::exit_kind::normal);
  });
}

// ---- registry --------------------------------------------------------------

TEST_P(actors, registry_finds_by_name_checks_the_type_and_forgets_the_dead) {
  rt().run([] {
    // [doc:registry]
    auto c = taiga::spawn_actor(counter, 5);
    ASSERT_TRUE(taiga::register_actor("counter", c));
    // [/doc]
    auto other = taiga::spawn_actor(counter, 0);
    EXPECT_FALSE(taiga::register_actor("counter", other));  // taken by a live actor
    // [doc:whereis]
    auto found = taiga::whereis<counter_msg>("counter");
    ASSERT_TRUE(found.has_value());
    // [/doc]
    EXPECT_EQ(*found, c);
    EXPECT_EQ(*found->ask(get{}), 5);
    try {
      (void)taiga::whereis<int>("counter");
      ADD_FAILURE() << "no type check";
    } catch (const taiga::usage_error& e) {
      EXPECT_NE(std::string(e.what()).find("not int"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(taiga::whereis<counter_msg>("nobody").has_value());
    c.tell(stop{});
    c.join();
    EXPECT_FALSE(taiga::whereis("counter").has_value());
    EXPECT_TRUE(taiga::register_actor("counter", other));
    other.tell(stop{});
    other.join();
    EXPECT_FALSE(taiga::whereis("counter").has_value());
  });
}

// ---- scale -----------------------------------------------------------------

// 1,000,000 actors (20,000 under sanitizers), each spawned, asked once and
// stopped; the fixture then checks that no tasklet is left.
TEST_P(actors, a_million_actors_spawned_asked_once_and_stopped) {
#if defined(ACTOR_TEST_TSAN)
  const long n = 5000;  // TSan: two kernel mappings per live tasklet
#else
  const long n = scaled(1'000'000);
#endif
#if defined(TAIGA_TEST_SANITIZED)
  const std::size_t stack = 0;  // the default: sanitizers' frames are large
#else
  const std::size_t stack = 16 * 1024;  // small stacks: a million of them
#endif
  rt().run([&] {
    std::vector<taiga::actor_ref<echo_msg>> refs;
    refs.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i)
      refs.push_back(
          taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 1, .stack_size = stack},
                             [](taiga::actor_self<echo_msg>& self) {
                               auto m = self.receive();
                               auto& r = std::get<0>(m);
                               r.reply(r.value.v + 1);
                             }));
    long bad = 0;
    for (long i = 0; i < n; ++i) {
      auto r = refs[static_cast<std::size_t>(i)].ask(echo_req{static_cast<int>(i)}, 60s);
      if (!r || *r != static_cast<int>(i) + 1) ++bad;
    }
    EXPECT_EQ(bad, 0);
    for (auto& r : refs) EXPECT_EQ(r.join().kind, taiga::exit_kind::normal);
  });
}

}  // namespace
