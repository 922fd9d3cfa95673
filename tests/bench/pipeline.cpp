// pipeline: one producer formats N lines "key=<i> value=<i*7>" onto a
// buffered channel (capacity 128), 8 parsers receive them, parse each into
// two integers and send the pair on a second buffered channel (capacity
// 128), one aggregator sums the pairs. Self-check: the sums of the keys and
// of the values. A user's program of this shape ran 1.4-3x slower on 2
// workers than on 1, with ~470,000 steals each way (issue 18, D): the
// figures to watch are `time` against `time_1w` and `steals`.
//
// Best of 3 rounds each, one runtime per worker count (the Go program does
// the same): `time` on all workers (or --workers N), `time_1w` on one.
// `steals` is the runtime's count over the 3 rounds of `time`. `time_go`
// runs tests/bench/go/pipeline.go, built by CMake when Go 1.19 is installed,
// in this same run with GOMAXPROCS = the same worker count; without Go the
// line is left out (a note on stderr).
//
//   bench_pipeline [--workers N] [--count N]   (defaults: all cores, 1,000,000 lines)
#include <taiga/channels.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

constexpr int parsers = 8;
constexpr std::size_t capacity = 128;

struct pair {
  std::int64_t key = -1, value = -1;
};

pair parse(std::string_view line) {
  // "key=<k> value=<v>"
  pair p;
  std::size_t sp = line.find(' ');
  if (sp == std::string_view::npos || line.size() < sp + 7) return p;
  auto k = std::from_chars(line.data() + 4, line.data() + sp, p.key);
  auto v = std::from_chars(line.data() + sp + 7, line.data() + line.size(), p.value);
  if (k.ec != std::errc{} || v.ec != std::errc{}) return pair{};
  return p;
}

struct result {
  double best_ms = 1e300;
  std::uint64_t steals = 0, sleeps = 0, runs = 0;
};

result run(unsigned workers, std::int64_t n) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  result r;
  for (int round = 0; round < 3; ++round) {
    auto t0 = tb::clock_type::now();
    auto [keys, values] = rt.run([n] {
      taiga::channel<std::string> lines(capacity);
      taiga::channel<pair> parsed(capacity);
      taiga::spawn([lines, n]() mutable {
        for (std::int64_t i = 0; i < n; ++i) {
          std::string s = "key=" + std::to_string(i) + " value=" + std::to_string(i * 7);
          if (lines.send(std::move(s)) != taiga::channel_status::ok) return;
        }
        lines.close();
      }).detach();
      auto left = std::make_shared<std::atomic<int>>(parsers);
      for (int p = 0; p < parsers; ++p)
        taiga::spawn([lines, parsed, left]() mutable {
          while (std::optional<std::string> l = lines.receive())
            if (parsed.send(parse(*l)) != taiga::channel_status::ok) return;
          if (left->fetch_sub(1) == 1) parsed.close();  // the last parser closes
        }).detach();
      std::int64_t k = 0, v = 0;  // the aggregator
      while (std::optional<pair> p = parsed.receive()) {
        k += p->key;
        v += p->value;
      }
      return std::pair{k, v};
    });
    r.best_ms = std::min(r.best_ms, tb::ms_since(t0));
    std::int64_t want = n * (n - 1) / 2;
    if (keys != want || values != 7 * want)
      tb::fail("pipeline", "sums " + std::to_string(keys) + " " + std::to_string(values) +
                               " != " + std::to_string(want) + " " + std::to_string(7 * want) +
                               " (workers " + std::to_string(workers) + ")");
  }
  for (unsigned w = 0; w < rt.worker_count(); ++w) {
    taiga::worker_stats st = rt.stats(w);
    std::fprintf(stderr,
                 "pipeline: %u workers: worker %u ran %llu, stole %llu, lost %llu, slept %llu "
                 "times (%.0f ms)\n",
                 workers, w, static_cast<unsigned long long>(st.tasklets_run),
                 static_cast<unsigned long long>(st.steals),
                 static_cast<unsigned long long>(st.stolen),
                 static_cast<unsigned long long>(st.sleeps),
                 std::chrono::duration<double, std::milli>(st.idle_time).count());
    r.steals += st.steals;
    r.sleeps += st.sleeps;
    r.runs += st.tasklets_run;
  }
  return r;
}

// The Go program's best time (its stdout line `bench pipeline_go time MS ms`),
// or a negative number when it is not built or fails.
double run_go(unsigned workers, std::int64_t n) {
#ifdef TAIGA_BENCH_PIPELINE_GO
  std::string cmd = std::string(TAIGA_BENCH_PIPELINE_GO) + " -procs " + std::to_string(workers) +
                    " -count " + std::to_string(n);
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[256];
  double ms = -1;
  while (std::fgets(buf, sizeof buf, f))
    if (std::sscanf(buf, "bench pipeline_go time %lf ms", &ms) == 1) break;
  while (std::fgets(buf, sizeof buf, f)) {
  }
  if (::pclose(f) != 0) return -1;
  return ms;
#else
  (void)workers;
  (void)n;
  return -1;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  std::int64_t n = o.count ? o.count : 1'000'000;
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();

  result all = run(workers, n);
  result one = run(1, n);
  double go = run_go(workers, n);
  tb::report("pipeline", "time", all.best_ms, "ms");
  tb::report("pipeline", "time_1w", one.best_ms, "ms");
  tb::report("pipeline", "steals", static_cast<double>(all.steals), "count");
  tb::report("pipeline", "speedup", one.best_ms / all.best_ms, "x");
  if (go > 0) {
    tb::report("pipeline", "time_go", go, "ms");
    tb::report("pipeline", "vs_go", go / all.best_ms, "x");
  } else {
    std::fprintf(stderr,
                 "pipeline: no time_go (Go 1.19 not found at configure time, or it failed)\n");
  }
  std::fprintf(stderr, "pipeline: %u workers: %llu steals, %llu sleeps, %llu tasklet runs\n",
               workers, static_cast<unsigned long long>(all.steals),
               static_cast<unsigned long long>(all.sleeps),
               static_cast<unsigned long long>(all.runs));
  std::fprintf(stderr,
               "pipeline: %lld lines, 1 producer -> %d parsers -> 1 aggregator, channels of "
               "capacity %zu, best of 3; time = %u workers, steals over its 3 rounds\n",
               static_cast<long long>(n), parsers, capacity, workers);
  return 0;
}
