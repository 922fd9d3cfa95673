// The showcase: a million tasklets alive and parked at once, then released.
//
// Tasklet k spawns tasklet k+1 and joins it, so when the last one is
// spawned, all of them are alive and every one but the last is parked in
// join(). The last one returns; each join then wakes its parent, which adds
// one and returns in turn, down to the first. Nothing but the public API.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <taiga/runtime.hpp>

namespace {

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

long chain(long k, long n) {
  if (k == n) return 0;
  // A child per link; the parent parks in join() until the child is done.
  return taiga::spawn(chain, k + 1, n).join() + 1;
}

}  // namespace

int main(int argc, char** argv) {
  long count = 1'000'000;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--count") == 0) count = std::atol(argv[i + 1]);
  using clk = std::chrono::steady_clock;
  std::printf(
      "taiga showcase: a chain of %ld tasklets, each spawning the next and parking in join()\n",
      count);
  long before = peak_rss_kib();
  auto t0 = clk::now();
  long links = taiga::run([count] { return chain(0, count); });
  double secs = std::chrono::duration<double>(clk::now() - t0).count();
  long peak = peak_rss_kib();
  std::printf("  tasklets spawned, parked and woken: %ld\n", links);
  std::printf("  wall time:        %.2f s (%.0f ns per tasklet: spawn, run, park, wake, finish)\n",
              secs, secs * 1e9 / static_cast<double>(count));
  std::printf("  peak memory:      %.0f MiB (%.0f bytes per parked tasklet)\n", peak / 1024.0,
              static_cast<double>(peak - before) * 1024.0 / static_cast<double>(count));
  taiga::stack_guard_mode guard = taiga::runtime::stack_guard();
  std::printf("  stack guards:     %s (%s)\n", taiga::to_string(guard),
              guard == taiga::stack_guard_mode::canary
                  ? "a canary under every stack, checked at every switch"
                  : "a guard page under every stack");
  return links == count ? 0 : 1;
}
