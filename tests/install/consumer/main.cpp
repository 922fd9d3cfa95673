// A project outside the taiga tree, built against an installed taiga, with
// -Wall -Wextra -Werror -Wmissing-field-initializers (CMakeLists.txt).
#include <taiga/runtime.hpp>

#include <cstdio>

int main() {
  int v = taiga::run(
      [] {
        auto t = taiga::spawn([] { return 40; });
        t = taiga::spawn(
            taiga::spawn_options{.name = "answer", .stack_size = 64 * 1024},
            [](int x) { return x + 1; }, 41);
        return t.join();
      },
      taiga::runtime_config{.workers = 2, .name = "consumer"});
  std::printf("consumer got %d\n", v);
  return v == 42 ? 0 : 1;
}
