// wake_latency: how long after its wake-up condition a parked tasklet runs.
//  - timer: a tasklet sleeps until an absolute deadline T (sleep_until) and
//    records now() - T when it resumes; repeated R times (deadlines 100 us to
//    1 ms ahead). p50 / p99.
//  - spawn_on: a tasklet pinned on worker 0 stamps the time, spawn_on(1, fn)
//    starts fn on worker 1, fn returns now() - stamp; the spawner joins it and
//    repeats. Back to back (worker 1 is hot: spinning or just asleep) and with
//    a 1 ms pause first (worker 1 has gone to sleep and must be woken).
//  - the timer measurement again with the threads' timer slack set to 1 ns
//    (p50_slack1ns / p99_slack1ns).
//
//   bench_wake_latency [--workers N] [--count R]   (defaults: all cores but at least 2, 2,000)
#include <sys/prctl.h>
#include <taiga/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;
using namespace std::chrono_literals;

namespace {

double pct(std::vector<std::int64_t> v, double p) {
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return static_cast<double>(v[i]);
}

std::int64_t ns_between(tb::clock_type::time_point a, tb::clock_type::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

std::vector<std::int64_t> spawn_on_latencies(long long reps, bool pause) {
  std::vector<std::int64_t> lat;
  lat.reserve(static_cast<std::size_t>(reps));
  for (long long i = 0; i < reps; ++i) {
    if (pause) taiga::this_tasklet::sleep_for(1ms);
    auto stamp = tb::clock_type::now();
    auto t = taiga::spawn_on(1, [stamp] {
      if (taiga::this_tasklet::worker() != 1) return std::int64_t{-1};
      return ns_between(stamp, tb::clock_type::now());
    });
    std::int64_t v = t.join();
    if (v < 0) tb::fail("wake_latency", "spawn_on(1, fn) ran fn on another worker");
    lat.push_back(v);
  }
  return lat;
}

struct result {
  std::vector<std::int64_t> timer, hot, idle;
};

result measure(unsigned workers, long long reps, bool with_spawn_on) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  return rt.run([reps, with_spawn_on] {
    result res;
    res.timer = taiga::spawn([reps] {
                  std::vector<std::int64_t> lat;
                  lat.reserve(static_cast<std::size_t>(reps));
                  for (long long i = 0; i < reps; ++i) {
                    auto deadline = tb::clock_type::now() + 100us + (i % 10) * 100us;
                    taiga::this_tasklet::sleep_until(deadline);
                    std::int64_t v = ns_between(deadline, tb::clock_type::now());
                    if (v < 0) tb::fail("wake_latency", "sleep_until returned before its deadline");
                    lat.push_back(v);
                  }
                  return lat;
                }).join();
    if (!with_spawn_on) return res;
    auto pinned0 = taiga::spawn_options{.name = "stamper", .pinned = true, .worker = 0};
    res.hot = taiga::spawn(pinned0, [reps] { return spawn_on_latencies(reps, false); }).join();
    res.idle = taiga::spawn(pinned0, [reps] { return spawn_on_latencies(reps, true); }).join();
    return res;
  });
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const long long reps = o.count ? o.count : 2'000;
  unsigned workers = std::max(2u, o.workers_given ? o.workers : tb::all_cores());

  result r = measure(workers, reps, true);
  // Same timer measurement with the worker threads' timer slack at 1 ns
  // (threads inherit it from their creator): separates the runtime's own
  // wake-up cost from the kernel's default 50 us slack on timed futex waits.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  result tight = measure(workers, reps, false);

  tb::report("wake_latency", "p50", pct(r.timer, 0.50), "ns");
  tb::report("wake_latency", "p99", pct(r.timer, 0.99), "ns");
  tb::report("wake_latency", "spawn_on_p50", pct(r.hot, 0.50), "ns");
  tb::report("wake_latency", "spawn_on_p99", pct(r.hot, 0.99), "ns");
  tb::report("wake_latency", "spawn_on_idle_p50", pct(r.idle, 0.50), "ns");
  tb::report("wake_latency", "spawn_on_idle_p99", pct(r.idle, 0.99), "ns");
  tb::report("wake_latency", "p50_slack1ns", pct(tight.timer, 0.50), "ns");
  tb::report("wake_latency", "p99_slack1ns", pct(tight.timer, 0.99), "ns");
  std::fprintf(stderr, "wake_latency: %lld samples each, %u workers\n", reps, workers);
  return 0;
}
