// spawn_join for Boost.Fiber 1.81, for side-by-side runs against
// tests/bench/spawn_join.cpp on the same machine in the same minutes (not
// built by CMake: Boost.Fiber is not a dependency of taiga).
//
//   apt-get install libboost-fiber1.81-dev      # once, as root
//   g++ -std=c++20 -O2 -o /tmp/fiber_spawn_join
//       tests/bench/peers/fiber_spawn_join.cpp -lboost_fiber -lboost_context
//   /tmp/fiber_spawn_join [--count N] [--stack KIB] [--each]
//
// The same shape as taiga's: one thread (Boost.Fiber's default round-robin
// scheduler), the main fiber launches N fibers that each store `i & 1` in a
// slot of their own, keeps the fibers, then joins them all; two rounds, the
// first with fresh memory. `--each` joins each fiber right after its launch
// instead (one fiber alive at a time, its stack recycled: the pattern of the
// usual "create and join" figures). Stacks come from a
// pooled_fixedsize_stack (Boost.Fiber's recycling allocator), 128 KiB as
// taiga's default; `--stack 0` takes the default fixedsize_stack (malloc).
// Prints `bench spawn_join_fiber METRIC VALUE UNIT` like our benchmarks.
#include <sys/resource.h>

#include <boost/fiber/all.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double ns_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

template <class Alloc>
double each_round(long long n, Alloc& alloc) {
  auto t0 = clock_type::now();
  std::int64_t odd = 0;
  for (long long i = 0; i < n; ++i) {
    int r = 0;
    boost::fibers::fiber f(
        std::allocator_arg, alloc, [&r](int v) { r = v & 1; }, static_cast<int>(i));
    f.join();
    odd += r;
  }
  double ns = ns_since(t0);
  if (odd != n / 2) {
    std::fprintf(stderr, "spawn_join_fiber: results sum to %lld\n", static_cast<long long>(odd));
    std::exit(1);
  }
  return ns / static_cast<double>(n);
}

template <class Alloc>
double one_round(long long n, Alloc& alloc) {
  // The fibers' results and handles are the benchmark's own storage, built
  // before the clock starts (as in spawn_join.cpp).
  std::vector<int> results(static_cast<std::size_t>(n));
  std::vector<boost::fibers::fiber> fibers(static_cast<std::size_t>(n));
  auto t0 = clock_type::now();
  for (long long i = 0; i < n; ++i) {
    int* slot = &results[static_cast<std::size_t>(i)];
    fibers[static_cast<std::size_t>(i)] = boost::fibers::fiber(
        std::allocator_arg, alloc, [slot](int v) { *slot = v & 1; }, static_cast<int>(i));
  }
  double spawn_ns = ns_since(t0);
  std::int64_t odd = 0;
  for (long long i = 0; i < n; ++i) {
    fibers[static_cast<std::size_t>(i)].join();
    odd += results[static_cast<std::size_t>(i)];
  }
  double ns = ns_since(t0);
  if (odd != n / 2) {
    std::fprintf(stderr, "spawn_join_fiber: joined results sum to %lld\n",
                 static_cast<long long>(odd));
    std::exit(1);
  }
  std::fprintf(stderr, "spawn_join_fiber: spawn %.0f ns + run/join %.0f ns per fiber\n",
               spawn_ns / static_cast<double>(n), (ns - spawn_ns) / static_cast<double>(n));
  return ns / static_cast<double>(n);
}

void report(const char* metric, double value, const char* unit) {
  std::printf("bench spawn_join_fiber %s %g %s\n", metric, value, unit);
}

template <class Alloc>
void run(long long n, bool each, Alloc alloc) {
  if (each) {
    report("ns_per_fiber_each", each_round(n, alloc), "ns");
    return;
  }
  double first = one_round(n, alloc);
  double second = one_round(n, alloc);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  report("ns_per_fiber", first, "ns");
  report("ns_per_fiber_warm", second, "ns");
  report("peak_rss", static_cast<double>(ru.ru_maxrss) / 1024.0, "MiB");
}

}  // namespace

int main(int argc, char** argv) {
  long long n = 1'000'000;
  std::size_t stack_kib = 128;
  bool each = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--each") == 0) {
      each = true;
    } else if (i + 1 < argc && std::strcmp(argv[i], "--count") == 0) {
      n = std::atoll(argv[++i]);
    } else if (i + 1 < argc && std::strcmp(argv[i], "--stack") == 0) {
      stack_kib = static_cast<std::size_t>(std::atoll(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--count N] [--stack KIB] [--each]\n", argv[0]);
      return 2;
    }
  }
  if (stack_kib == 0) {
    run(n, each, boost::fibers::fixedsize_stack{});
  } else {
    run(n, each, boost::fibers::pooled_fixedsize_stack{stack_kib * 1024});
  }
  return 0;
}
