// The fiber layer, rule by rule (python-fibers' semantics; seed-features.md
// section 2), and the generator built on it.
#include <gtest/gtest.h>

#include <string>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

using taiga::fiber;

TEST(fiber, does_not_run_until_first_switch) {
  bool ran = false;
  fiber f([&] { ran = true; });
  EXPECT_FALSE(ran);
  EXPECT_FALSE(f.started());
  f.switch_to();
  EXPECT_TRUE(ran);
  EXPECT_TRUE(f.ended());
  EXPECT_FALSE(f.alive());
}

TEST(fiber, first_switch_with_a_value_is_an_error) {
  fiber f([] {});
  EXPECT_THROW(f.switch_to(std::any(1)), taiga::fiber_error);
  f.switch_to();
}

TEST(fiber, values_travel_both_ways_and_the_return_value_goes_to_the_parent) {
  fiber f(fiber::function_type([]() -> std::any {
    fiber& main = *fiber::current().parent();
    int a = std::any_cast<int>(main.switch_to(std::string("first")));
    int b = std::any_cast<int>(main.switch_to(std::string("second")));
    return a + b;
  }));
  EXPECT_EQ(std::any_cast<std::string>(f.switch_to()), "first");
  EXPECT_EQ(std::any_cast<std::string>(f.switch_to(20)), "second");
  EXPECT_EQ(std::any_cast<int>(f.switch_to(22)), 42);
  EXPECT_TRUE(f.ended());
}

TEST(fiber, exception_is_reraised_in_the_parent) {
  fiber f([] { throw std::runtime_error("inside"); });
  EXPECT_THROW(f.switch_to(), std::runtime_error);
  EXPECT_TRUE(f.ended());
}

TEST(fiber, parent_skips_ancestors_that_have_not_started) {
  // main -> a (never started) -> b: b's end goes to main, the live ancestor.
  fiber a([] {});
  fiber* b_parent = nullptr;
  std::any out;
  {
    fiber b(fiber::function_type([]() -> std::any { return std::string("from b"); }));
    b.set_parent(a);
    b_parent = b.parent();
    out = b.switch_to();
  }
  EXPECT_EQ(b_parent, &a);
  EXPECT_EQ(std::any_cast<std::string>(out), "from b");
  EXPECT_FALSE(a.started());
  a.switch_to();
}

TEST(fiber, throw_into_a_suspended_fiber_raises_at_its_switch) {
  fiber f(fiber::function_type([]() -> std::any {
    try {
      fiber::current().parent()->switch_to(1);
    } catch (const std::logic_error& e) {
      return std::string("caught ") + e.what();
    }
    return std::string("no");
  }));
  EXPECT_EQ(std::any_cast<int>(f.switch_to()), 1);
  EXPECT_EQ(std::any_cast<std::string>(f.throw_into(std::logic_error("x"))), "caught x");
}

TEST(fiber, throw_into_a_fiber_that_has_not_started_ends_it_and_raises_in_the_parent) {
  bool ran = false;
  fiber f([&] { ran = true; });
  EXPECT_THROW(f.throw_into(std::runtime_error("never ran")), std::runtime_error);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(f.ended());
}

TEST(fiber, errors_ended_self_and_cycles) {
  fiber f([] {});
  f.switch_to();
  EXPECT_THROW(f.switch_to(), taiga::fiber_error);                 // ended
  EXPECT_THROW(fiber::current().switch_to(), taiga::fiber_error);  // itself
  fiber a([] {}), b([] {});
  b.set_parent(a);
  EXPECT_THROW(a.set_parent(b), taiga::fiber_error);                 // cycle
  EXPECT_THROW(a.set_parent(f), taiga::fiber_error);                 // ended parent
  EXPECT_THROW(fiber::current().set_parent(a), taiga::fiber_error);  // main has none
  a.switch_to();
  b.switch_to();
}

TEST(fiber, switching_to_a_fiber_of_another_thread_is_an_error) {
  fiber f([] {});
  fiber p([] {});
  std::thread t([&] {
    EXPECT_THROW(f.switch_to(), taiga::fiber_error);
    EXPECT_THROW(f.throw_into(std::runtime_error("x")), taiga::fiber_error);
    fiber mine([] {});
    EXPECT_THROW(mine.set_parent(p), taiga::fiber_error);  // p is the other thread's
    mine.switch_to();
  });
  t.join();
  EXPECT_FALSE(f.started());  // none of it ran f
  f.switch_to();
  p.switch_to();
}

TEST(fiber, a_running_fiber_switching_to_itself_is_an_error) {
  bool threw = false;
  fiber f([&] {
    try {
      fiber::current().switch_to();
    } catch (const taiga::fiber_error&) {
      threw = true;
    }
  });
  f.switch_to();
  EXPECT_TRUE(threw);
  EXPECT_TRUE(f.ended());
}

// python-fibers: a fiber that ends returns to its nearest live ancestor;
// a parent that has already ended is skipped.
TEST(fiber, an_ended_parent_is_skipped) {
  fiber* main_fiber = &fiber::current();
  std::string trail;
  fiber b;
  fiber a([&] {
    b = fiber([&]() -> std::any {  // parent: a
      trail += "b1 ";
      main_fiber->switch_to();  // a's pending switch_to(b) stays pending
      trail += "b2 ";
      return std::string("from b");
    });
    trail += "a1 ";
    b.switch_to();
    trail += "a-never ";
  });
  a.switch_to();  // a starts b, b switches back here
  EXPECT_EQ(trail, "a1 b1 ");
  EXPECT_EQ(b.parent(), &a);
  // Raised in a at its switch_to(b); a does not catch it, so a ends and the
  // exception goes on to a's parent: here.
  EXPECT_THROW(a.throw_into(std::runtime_error("end a")), std::runtime_error);
  EXPECT_TRUE(a.ended());
  EXPECT_TRUE(b.alive());
  // b ends now: its parent (a) has ended, so its result comes here instead.
  EXPECT_EQ(std::any_cast<std::string>(b.switch_to()), "from b");
  EXPECT_EQ(trail, "a1 b1 b2 ");
}

TEST(fiber, destroying_a_suspended_fiber_unwinds_it) {
  int destroyed = 0;
  {
    fiber f([&] {
      struct g {
        int& d;
        ~g() { ++d; }
      } guard{destroyed};
      fiber::current().parent()->switch_to();
      ADD_FAILURE() << "resumed after destruction";
    });
    f.switch_to();
    EXPECT_TRUE(f.alive());
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(fiber, nested_fibers_return_to_their_parents) {
  std::vector<std::string> log;
  fiber outer([&] {
    log.push_back("outer start");
    fiber inner([&] { log.push_back("inner"); });
    inner.switch_to();
    log.push_back("outer end");
  });
  outer.switch_to();
  EXPECT_EQ(log, (std::vector<std::string>{"outer start", "inner", "outer end"}));
}

TEST(generator, range_for_yields_every_value) {
  taiga::generator<int> g([](auto& yield) {
    for (int i = 0; i < 5; ++i) yield(i * i);
  });
  std::vector<int> got;
  for (int v : g) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 4, 9, 16}));
  EXPECT_FALSE(g.next().has_value());
}

TEST(generator, exception_in_body_reaches_the_consumer) {
  taiga::generator<int> g([](auto& yield) {
    yield(1);
    throw std::runtime_error("gen");
  });
  EXPECT_EQ(g.next(), 1);
  EXPECT_THROW(g.next(), std::runtime_error);
}

TEST(generator, abandoned_generator_is_unwound) {
  int destroyed = 0;
  {
    taiga::generator<int> g([&](auto& yield) {
      struct d {
        int& n;
        ~d() { ++n; }
      } guard{destroyed};
      for (int i = 0;; ++i) yield(i);
    });
    EXPECT_EQ(g.next(), 0);
    EXPECT_EQ(g.next(), 1);
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(generator, inside_tasklets_that_park_and_migrate) {
  long total = taiga::run(
      [] {
        std::vector<taiga::tasklet<long>> ts;
        for (int k = 0; k < 8; ++k)
          ts.push_back(taiga::spawn([] {
            taiga::generator<long> g([](auto& yield) {
              for (long i = 0; i < 100; ++i) {
                if (i % 10 == 0) taiga::this_tasklet::yield();  // park inside the fiber
                yield(i);
              }
            });
            long s = 0;
            for (long v : g) {
              s += v;
              if (v % 25 == 0) taiga::this_tasklet::sleep_for(std::chrono::microseconds(100));
            }
            return s;
          }));
        long sum = 0;
        for (auto& t : ts) sum += t.join();
        return sum;
      },
      taiga::runtime_config{.workers = 4});
  EXPECT_EQ(total, 8 * 4950);
}

// Switching fibers inside catch blocks: each side keeps the exception it is
// handling (the C++ runtime keeps it per thread; every switch moves it).
TEST(fiber, each_side_of_a_switch_inside_a_catch_block_keeps_its_exception) {
  int seen_in_fiber = 0, seen_in_main = 0;
  taiga::fiber f([&] {
    try {
      throw 2;
    } catch (int) {
      taiga::fiber::current().parent()->switch_to();  // back to main, mid-catch
      try {
        throw;
      } catch (int v) {
        seen_in_fiber = v;
      }
    }
  });
  try {
    throw 1;
  } catch (int) {
    f.switch_to();  // the fiber parks inside its catch block
    try {
      throw;
    } catch (int v) {
      seen_in_main = v;
    }
    f.switch_to();  // it ends its catch block, then returns
  }
  EXPECT_EQ(seen_in_fiber, 2);
  EXPECT_EQ(seen_in_main, 1);
  EXPECT_EQ(std::current_exception(), nullptr);
  EXPECT_TRUE(f.ended());
}
