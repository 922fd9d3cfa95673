// Supervisors (supervisor.hpp): each strategy's restart set and order,
// child spec restart types, failed starts, restart intensity and the
// failure climbing a tree, exponential backoff, ordered shutdown with
// deadlines then kills, fresh refs and registry names following the live
// child. At 1, 2, 4 and 8 workers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <taiga/channels/supervisor.hpp>
#include <taiga/runtime.hpp>
#include <variant>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::with_workers;

namespace {

// What the children did, in order.
struct event_log {
  std::mutex m;
  std::vector<std::string> events;
  std::atomic<int> starts{0};   // "start X" events so far
  std::atomic<int> running{0};  // children whose behaviour has begun
  void add(std::string e) {
    if (e.rfind("start ", 0) == 0) ++starts;
    std::lock_guard g(m);
    events.push_back(std::move(e));
  }
  std::vector<std::string> take() {
    std::lock_guard g(m);
    return std::exchange(events, {});
  }
  std::size_t size() {
    std::lock_guard g(m);
    return events.size();
  }
};

// A child: logs, however it ends, "end X". Told "crash" it
// throws; "quit" ends it normally. `trap`: it traps exits and ends on the
// supervisor's shutdown signal; `stubborn`: it traps and ignores it.
void worker(taiga::actor_self<std::string>& self, std::shared_ptr<event_log> log, std::string name,
            bool trap, bool stubborn) {
  ++log->running;
  struct on_end {
    event_log& log;
    std::string name;
    ~on_end() { log.add("end " + name); }
  } guard{*log, name};
  self.trap_exit(trap || stubborn);
  for (;;) {
    bool done = false;
    self.receive([&](auto& m) {
      using M = std::decay_t<decltype(m)>;
      if constexpr (std::is_same_v<M, std::string>) {
        if (m == "crash") throw std::runtime_error(name + " crashed");
        if (m == "quit") done = true;
      } else if constexpr (std::is_same_v<M, taiga::exit_msg>) {
        if (!stubborn) done = true;
      }
    });
    if (done) return;
  }
}

taiga::child_spec child(std::shared_ptr<event_log> log, std::string name,
                        taiga::restart_type rt = taiga::restart_type::permanent, bool trap = false,
                        bool stubborn = false) {
  auto s = taiga::actor_child(name, taiga::actor_options{.name = name}, worker, log, name, trap,
                              stubborn);
  // "start X" is logged by the supervisor's tasklet, where the start order is made.
  s.start = [log, name, inner = std::move(s.start)] {
    log->add("start " + name);
    return inner();
  };
  s.restart = rt;
  s.registered_name = "sup_test." + name;
  return s;
}

std::vector<taiga::child_info> children_of(const taiga::supervisor_ref& s) {
  auto r = s.ask(taiga::which_children{}, 10s);
  return std::move(r).value();
}

taiga::actor_ref<std::string> ref_of(const taiga::supervisor_ref& s, const std::string& id) {
  return taiga::actor_ref_cast<std::string>(*s.ask(taiga::find_child{id}, 10s));
}

// Waits until the log holds n events (children run on other tasklets) and
// every child started so far runs its behaviour: one stopped before its
// first run never runs it, and would log no "end".
void wait_events(event_log& log, std::size_t n) {
  for (int i = 0; i < 20000 && (log.size() < n || log.running < log.starts); ++i)
    taiga::this_tasklet::sleep_for(1ms);
  ASSERT_GE(log.size(), n);
  ASSERT_GE(log.running, log.starts);
}

class supervisors : public with_workers {};
TAIGA_WORKER_COUNTS(supervisors);

TEST_P(supervisors, one_for_one_restarts_only_the_crashed_child_with_a_fresh_ref_and_its_name) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto sup =
        taiga::spawn_supervisor({.name = "s"}, {child(log, "a"), child(log, "b"), child(log, "c")});
    wait_events(*log, 3);
    EXPECT_EQ(log->take(), (std::vector<std::string>{"start a", "start b", "start c"}));
    auto before = children_of(sup);
    auto b = ref_of(sup, "b");
    EXPECT_EQ(*taiga::whereis<std::string>("sup_test.b"), b);
    b.tell(std::string("crash"));
    EXPECT_EQ(b.join().kind, taiga::exit_kind::exception);
    wait_events(*log, 2);
    EXPECT_EQ(log->take(), (std::vector<std::string>{"end b", "start b"}));
    auto after = children_of(sup);
    EXPECT_EQ(after[0].ref, before[0].ref);
    EXPECT_FALSE(after[1].ref == before[1].ref);
    EXPECT_EQ(after[1].restarts, 1u);
    EXPECT_EQ(after[2].ref, before[2].ref);
    // The name follows the live incarnation.
    auto named = taiga::whereis<std::string>("sup_test.b");
    ASSERT_TRUE(named.has_value());
    EXPECT_EQ(taiga::any_actor_ref(*named), after[1].ref);
    sup.tell(taiga::stop_supervisor{});
    EXPECT_EQ(sup.join().kind, taiga::exit_kind::normal);
    EXPECT_FALSE(taiga::whereis("sup_test.a").has_value());
  });
}

TEST_P(supervisors, one_for_all_stops_the_others_in_reverse_order_and_restarts_all_in_order) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto sup = taiga::spawn_supervisor({.strategy = taiga::restart_strategy::one_for_all},
                                       {child(log, "a"), child(log, "b"), child(log, "c")});
    wait_events(*log, 3);
    log->take();
    ref_of(sup, "b").tell(std::string("crash"));
    wait_events(*log, 6);
    EXPECT_EQ(log->take(), (std::vector<std::string>{"end b", "end c", "end a", "start a",
                                                     "start b", "start c"}));
    sup.tell(taiga::stop_supervisor{});
    sup.join();
  });
}

TEST_P(supervisors, rest_for_one_restarts_the_child_and_those_started_after_it_in_order) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto sup = taiga::spawn_supervisor(
        {.strategy = taiga::restart_strategy::rest_for_one},
        {child(log, "a"), child(log, "b"), child(log, "c"), child(log, "d")});
    wait_events(*log, 4);
    log->take();
    auto a = ref_of(sup, "a");
    ref_of(sup, "b").tell(std::string("crash"));
    wait_events(*log, 6);
    EXPECT_EQ(log->take(), (std::vector<std::string>{"end b", "end d", "end c", "start b",
                                                     "start c", "start d"}));
    EXPECT_EQ(ref_of(sup, "a"), a);  // before the crashed one: untouched
    sup.tell(taiga::stop_supervisor{});
    sup.join();
  });
}

TEST_P(supervisors, restart_types_permanent_transient_temporary) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto sup = taiga::spawn_supervisor(
        {}, {child(log, "perm"), child(log, "trans", taiga::restart_type::transient),
             child(log, "temp", taiga::restart_type::temporary)});
    wait_events(*log, 3);
    log->take();
    ref_of(sup, "perm").tell(std::string("quit"));  // normal end: restarted all the same
    wait_events(*log, 2);
    EXPECT_EQ(log->take(), (std::vector<std::string>{"end perm", "start perm"}));
    ref_of(sup, "trans").tell(std::string("quit"));  // normal end: not restarted
    ref_of(sup, "temp").tell(std::string("crash"));  // never restarted
    wait_events(*log, 2);
    taiga::this_tasklet::sleep_for(20ms);
    auto got = log->take();
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"end temp", "end trans"}));
    auto kids = children_of(sup);
    ASSERT_EQ(kids.size(), 2u);  // the temporary one is forgotten
    EXPECT_FALSE(kids[1].ref);   // the transient one stays, stopped
    sup.tell(taiga::stop_supervisor{});
    sup.join();
  });
}

TEST_P(supervisors, a_transient_child_that_crashes_is_restarted) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto sup = taiga::spawn_supervisor({}, {child(log, "t", taiga::restart_type::transient)});
    wait_events(*log, 1);
    log->take();
    ref_of(sup, "t").tell(std::string("crash"));
    wait_events(*log, 2);
    EXPECT_EQ(log->take(), (std::vector<std::string>{"end t", "start t"}));
    sup.tell(taiga::stop_supervisor{});
    sup.join();
  });
}

TEST_P(supervisors, a_child_that_throws_while_starting_counts_as_a_failed_start) {
  rt().run([] {
    auto tries = std::make_shared<std::atomic<int>>(0);
    taiga::child_spec flaky;
    flaky.id = "flaky";
    flaky.start = [tries]() -> taiga::any_actor_ref {
      if (tries->fetch_add(1) < 2) throw std::runtime_error("no database yet");
      return taiga::spawn_actor([](taiga::actor_self<int>& self) { (void)self.receive(); });
    };
    auto sup = taiga::spawn_supervisor({.max_restarts = 3}, {flaky});
    auto kids = children_of(sup);
    ASSERT_EQ(kids.size(), 1u);
    EXPECT_TRUE(kids[0].ref.alive());
    EXPECT_EQ(kids[0].restarts, 2u);
    EXPECT_EQ(tries->load(), 3);
    sup.tell(taiga::stop_supervisor{});
    sup.join();
  });
}

TEST_P(supervisors, a_restart_storm_hits_the_limit_and_the_supervisor_fails) {
  rt().run([] {
    taiga::child_spec crasher;
    crasher.id = "crasher";
    crasher.start = [] {
      return taiga::any_actor_ref(taiga::spawn_actor(
          [](taiga::actor_self<int>&) { throw std::runtime_error("crash at start"); }));
    };
    auto sup =
        taiga::spawn_supervisor({.name = "storm", .max_restarts = 3, .period = 10s}, {crasher});
    auto why = sup.join();
    EXPECT_EQ(why.kind, taiga::exit_kind::exception);
    EXPECT_EQ(why.type, "taiga::supervisor_error");
    EXPECT_NE(why.text.find("more than 3 restarts"), std::string::npos) << why.text;
    EXPECT_NE(why.text.find("crasher"), std::string::npos) << why.text;
  });
}

// top (max 1) -> mid (max 2) -> leaf that always crashes: mid fails, top
// restarts it once, mid fails again, top fails: the failure climbs the tree.
TEST_P(supervisors, the_failure_climbs_the_tree) {
  rt().run([] {
    auto leaf_starts = std::make_shared<std::atomic<int>>(0);
    taiga::child_spec leaf;
    leaf.id = "leaf";
    leaf.start = [leaf_starts] {
      leaf_starts->fetch_add(1);
      return taiga::any_actor_ref(
          taiga::spawn_actor([](taiga::actor_self<int>&) { throw std::runtime_error("leaf"); }));
    };
    auto top = taiga::spawn_supervisor(
        {.name = "top", .max_restarts = 1, .period = 10s},
        {taiga::supervisor_child("mid", {.name = "mid", .max_restarts = 2, .period = 10s},
                                 {leaf})});
    auto why = top.join();
    EXPECT_EQ(why.kind, taiga::exit_kind::exception);
    EXPECT_NE(why.text.find("child 'mid'"), std::string::npos) << why.text;
    EXPECT_EQ(leaf_starts->load(), 6);  // two incarnations of mid, three starts each
  });
}

TEST_P(supervisors, restarts_back_off_exponentially) {
  rt().run([] {
    auto starts = std::make_shared<std::vector<std::chrono::steady_clock::time_point>>();
    auto m = std::make_shared<std::mutex>();
    taiga::child_spec c;
    c.id = "c";
    c.start = [starts, m] {
      {
        std::lock_guard g(*m);
        starts->push_back(std::chrono::steady_clock::now());
      }
      return taiga::any_actor_ref(
          taiga::spawn_actor([](taiga::actor_self<int>&) { throw std::runtime_error("x"); }));
    };
    auto sup = taiga::spawn_supervisor(
        {.max_restarts = 3, .period = 60s, .backoff_initial = 20ms, .backoff_max = 60ms}, {c});
    (void)sup.join();  // fails after the fourth crash
    std::lock_guard g(*m);
    ASSERT_EQ(starts->size(), 4u);
    auto gap = [&](int i) { return (*starts)[i + 1] - (*starts)[i]; };
    EXPECT_GE(gap(0), 20ms);
    EXPECT_GE(gap(1), 40ms);
    EXPECT_GE(gap(2), 60ms);  // capped at backoff_max
  });
}

TEST_P(supervisors, shutdown_stops_children_in_reverse_order_with_deadlines_then_kills) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto stubborn = child(log, "b", taiga::restart_type::permanent, true, true);
    stubborn.shutdown = 50ms;
    auto sup = taiga::spawn_supervisor(
        {}, {child(log, "a", taiga::restart_type::permanent, true), stubborn, child(log, "c")});
    wait_events(*log, 3);
    log->take();
    auto b = ref_of(sup, "b");
    auto c = ref_of(sup, "c");
    auto a = ref_of(sup, "a");
    auto t0 = std::chrono::steady_clock::now();
    sup.tell(taiga::stop_supervisor{});
    EXPECT_EQ(sup.join().kind, taiga::exit_kind::normal);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
    EXPECT_EQ(log->take(), (std::vector<std::string>{"end c", "end b", "end a"}));
    EXPECT_EQ(c.join().kind, taiga::exit_kind::shutdown);  // no trap: the signal ended it
    auto rb = b.join();
    EXPECT_EQ(rb.kind, taiga::exit_kind::killed);  // ignored the signal: killed at the deadline
    EXPECT_NE(rb.text.find("shutdown deadline"), std::string::npos) << rb.text;
    EXPECT_EQ(a.join().kind, taiga::exit_kind::normal);  // trapped and ended itself
  });
}

TEST_P(supervisors, killing_a_supervisor_ends_its_children_through_the_links) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto sup = taiga::spawn_supervisor({}, {child(log, "a"), child(log, "b")});
    wait_events(*log, 2);
    auto a = ref_of(sup, "a");
    sup.kill();
    EXPECT_EQ(sup.join().kind, taiga::exit_kind::killed);
    EXPECT_EQ(a.join().kind, taiga::exit_kind::killed);
  });
}

TEST_P(supervisors, start_child_adds_children_and_forgets_temporary_ones_that_end) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    auto sup = taiga::spawn_supervisor({}, {child(log, "a")});
    auto c = child(log, "conn", taiga::restart_type::temporary);
    auto r = sup.ask(taiga::start_child{c}, 10s);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r->alive());
    EXPECT_FALSE(sup.ask(taiga::start_child{c}, 10s)->alive());  // the id is taken
    EXPECT_EQ(children_of(sup).size(), 2u);
    taiga::actor_ref_cast<std::string>(*r).tell(std::string("quit"));
    r->join();
    for (int i = 0; i < 1000 && children_of(sup).size() != 1; ++i)
      taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(children_of(sup).size(), 1u);
    sup.tell(taiga::stop_supervisor{});
    sup.join();
  });
}

TEST_P(supervisors, bad_specs_are_usage_errors) {
  rt().run([] {
    auto log = std::make_shared<event_log>();
    EXPECT_THROW(taiga::spawn_supervisor({}, {child(log, "a"), child(log, "a")}),
                 taiga::usage_error);
    EXPECT_THROW(taiga::spawn_supervisor({}, {taiga::child_spec{.id = "x"}}), taiga::usage_error);
  });
}

}  // namespace
