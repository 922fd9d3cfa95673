// Compile test (issue 18): the documented designated initializers of
// runtime_config and spawn_options compile under -Wall -Wextra -Werror
// -Wmissing-field-initializers (tests/CMakeLists.txt sets those flags on
// this file alone): every member has a default member initializer. A new
// member without one breaks the build here, not in a user's project.
#include <gtest/gtest.h>

#include <taiga/runtime.hpp>

namespace {

TEST(config_init, designated_initializers_name_a_few_members) {
  taiga::runtime_config c{.workers = 2, .name = "compile-test"};
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.stack_size, 128u * 1024);
  EXPECT_TRUE(c.detect_deadlock);
  EXPECT_FALSE(c.error_handler);

  taiga::runtime_config d{.workers = 1, .watchdog_threshold = std::chrono::milliseconds(0)};
  EXPECT_EQ(d.watchdog_threshold.count(), 0);

  taiga::spawn_options o{.stack_size = 64 * 1024};
  EXPECT_TRUE(o.name.empty());
  EXPECT_EQ(o.worker, -1);
  taiga::spawn_options p{.name = "reader", .pinned = true};
  EXPECT_EQ(p.stack_size, 0u);
}

TEST(config_init, designated_spawn_options_spawn) {
  int v = taiga::run(
      [] {
        return taiga::spawn(
                   taiga::spawn_options{.name = "twice", .stack_size = 64 * 1024},
                   [](int x) { return 2 * x; }, 21)
            .join();
      },
      taiga::runtime_config{.workers = 2});
  EXPECT_EQ(v, 42);
}

}  // namespace
