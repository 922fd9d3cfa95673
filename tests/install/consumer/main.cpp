// A project outside the taiga tree, built against an installed taiga.
#include <taiga/runtime.hpp>

#include <cstdio>

int main() {
  int v = taiga::run([] { return taiga::spawn([] { return 42; }).join(); },
                     taiga::runtime_config{.workers = 2});
  std::printf("consumer got %d\n", v);
  return v == 42 ? 0 : 1;
}
