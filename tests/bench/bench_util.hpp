// Shared helpers for the benchmark programs in tests/bench.
//
// Every program prints only "bench NAME METRIC VALUE UNIT" lines on stdout;
// everything else goes to stderr. A failed self-check exits non-zero.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

namespace taiga_bench {

using clock_type = std::chrono::steady_clock;

struct options {
  unsigned workers = 0;  // 0 = not given (use the benchmark's default)
  long long count = 0;   // 0 = not given
  bool workers_given = false;
};

[[noreturn]] inline void usage(const char* prog) {
  std::fprintf(stderr, "usage: %s [--workers N] [--count N]\n", prog);
  std::exit(2);
}

inline options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> long long {
      if (i + 1 >= argc) usage(argv[0]);
      char* end = nullptr;
      long long v = std::strtoll(argv[++i], &end, 10);
      if (end == nullptr || *end != '\0' || v <= 0) usage(argv[0]);
      return v;
    };
    if (a == "--workers") {
      o.workers = static_cast<unsigned>(value());
      o.workers_given = true;
    } else if (a == "--count") {
      o.count = value();
    } else if (a == "--quick") {
      // Accepted for scripts/bench; the defaults are already sized to finish quickly.
    } else {
      usage(argv[0]);
    }
  }
  return o;
}

inline unsigned all_cores() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

/// Peak resident set size of the process so far, in KiB.
inline long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/// CPU time of the whole process (every thread) so far, in ns.
inline double process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

inline double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}
inline double ns_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

inline void report(const char* bench, const char* metric, double value, const char* unit) {
  std::printf("bench %s %s %.6g %s\n", bench, metric, value, unit);
  std::fflush(stdout);
}

[[noreturn]] inline void fail(const char* bench, const std::string& why) {
  std::fprintf(stderr, "bench %s: SELF-CHECK FAILED: %s\n", bench, why.c_str());
  std::exit(1);
}

}  // namespace taiga_bench
