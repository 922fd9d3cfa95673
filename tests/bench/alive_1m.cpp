// alive_1m: N tasklets alive at once, each parked waiting on a gate (the
// runtime's parking API, as a channel receive or an event wait will park).
// The main tasklet waits until all have parked, records the peak RSS, then
// wakes every one and joins it.
//
//   bench_alive_1m [--workers N] [--count N]   (defaults: all cores, 1,000,000)
#include <taiga/runtime.hpp>
#include <taiga/runtime/detail/park.hpp>

#include <atomic>
#include <chrono>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const long long n = o.count ? o.count : 1'000'000;
  unsigned workers = o.workers_given ? o.workers : taiga::all_cores;

  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  struct result {
    long baseline_kib, peak_kib;
    double spawn_park_ms, release_ms;
    long long killed, finished;
  };
  result r = rt.run([n] {
    result res{};
    std::atomic<long long> parked{0};
    // The gate: one published wait point per tasklet.
    std::vector<std::atomic<taiga::detail::wait_point*>> gate(static_cast<std::size_t>(n));
    std::vector<taiga::tasklet<void>> handles;
    handles.reserve(static_cast<std::size_t>(n));
    res.baseline_kib = tb::peak_rss_kib();

    auto t0 = tb::clock_type::now();
    for (long long i = 0; i < n; ++i) {
      handles.push_back(taiga::spawn([&parked, &gate, i] {
        taiga::detail::wait_point w;
        taiga::detail::prepare_wait(w, "gate", &gate);
        gate[static_cast<std::size_t>(i)].store(&w, std::memory_order_release);
        parked.fetch_add(1, std::memory_order_release);
        if (taiga::detail::wait(w) != taiga::detail::wake_status::signaled)
          taiga::detail::throw_interrupt();
      }));
      // A long loop that never parks trips the runtime's watchdog (1 s).
      if ((i & 4095) == 4095) taiga::this_tasklet::yield();
    }
    while (parked.load(std::memory_order_relaxed) < n)
      taiga::this_tasklet::sleep_for(std::chrono::milliseconds(1));
    res.spawn_park_ms = tb::ms_since(t0);
    res.peak_kib = tb::peak_rss_kib();

    auto t1 = tb::clock_type::now();
    for (auto& g : gate) taiga::detail::wake(*g.load(std::memory_order_acquire));
    for (auto& h : handles) {
      h.join();
      ++res.finished;
    }
    res.release_ms = tb::ms_since(t1);
    return res;
  });

  if (r.finished != n)
    tb::fail("alive_1m", std::to_string(r.finished) + " of " + std::to_string(n) + " finished");
  double per = static_cast<double>(r.peak_kib - r.baseline_kib) * 1024.0 / static_cast<double>(n);
  tb::report("alive_1m", "rss_per_tasklet", per, "B");
  tb::report("alive_1m", "time", r.spawn_park_ms + r.release_ms, "ms");
  tb::report("alive_1m", "spawn_park_ms", r.spawn_park_ms, "ms");
  tb::report("alive_1m", "release_ms", r.release_ms, "ms");
  std::fprintf(stderr, "alive_1m: %lld tasklets, %u workers, peak RSS %ld KiB (baseline %ld KiB)\n",
               n, rt.worker_count(), r.peak_kib, r.baseline_kib);
  return 0;
}
