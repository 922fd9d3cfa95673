// steal: a spawner pinned on worker 0 spawns N tasklets of uneven work
// (tasklet i burns (i % 100) * 200 ns of CPU), then joins them. Measures the
// wall time on one worker and on N workers, and the fraction of tasklets that
// ran on a worker other than the spawner's (stolen, or taken from the shared
// inject queue that a full local queue overflows into).
//
//   bench_steal [--workers N] [--count N]   (defaults: all cores, 100,000)
#include <taiga/runtime.hpp>

#include <atomic>
#include <cstdint>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

// The sink is local: a shared one would bounce its cache line between the
// workers and measure that instead of the scheduler.
void burn(std::uint64_t iters) {
  volatile std::uint64_t sink = 0;
  for (std::uint64_t i = 0; i < iters; ++i) sink = sink + i;
}

// Loop iterations per 200 ns of CPU on this machine.
std::uint64_t calibrate() {
  const std::uint64_t probe = 20'000'000;
  burn(probe / 10);  // warm up
  auto t0 = tb::clock_type::now();
  burn(probe);
  double ns = tb::ns_since(t0);
  auto per = static_cast<std::uint64_t>(static_cast<double>(probe) * 200.0 / ns);
  return per == 0 ? 1 : per;
}

struct result {
  double ms;
  long long elsewhere;  // tasklets that ran on a worker other than the spawner's
  long long done;
  std::uint64_t steals;
};

result run(unsigned workers, long long n, std::uint64_t unit) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  result r = rt.run([&] {
    return taiga::spawn(taiga::spawn_options{.name = "spawner", .pinned = true, .worker = 0},
                        [&] {
                          std::atomic<long long> elsewhere{0}, done{0};
                          const int home = taiga::this_tasklet::worker();
                          std::vector<taiga::tasklet<void>> handles;
                          handles.reserve(static_cast<std::size_t>(n));
                          auto t0 = tb::clock_type::now();
                          for (long long i = 0; i < n; ++i)
                            handles.push_back(taiga::spawn([&, i] {
                              if (taiga::this_tasklet::worker() != home)
                                elsewhere.fetch_add(1, std::memory_order_relaxed);
                              burn(static_cast<std::uint64_t>(i % 100) * unit);
                              done.fetch_add(1, std::memory_order_relaxed);
                            }));
                          for (auto& h : handles) h.join();
                          double ms = tb::ms_since(t0);
                          return result{ms, elsewhere.load(), done.load(), 0};
                        })
        .join();
  });
  for (unsigned w = 0; w < rt.worker_count(); ++w) r.steals += rt.stats(w).steals;
  if (r.done != n)
    tb::fail("steal", std::to_string(r.done) + " of " + std::to_string(n) + " tasklets ran");
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const long long n = o.count ? o.count : 100'000;
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();
  const std::uint64_t unit = calibrate();

  result one = run(1, n, unit);
  result many = run(workers, n, unit);
  if (one.elsewhere != 0) tb::fail("steal", "tasklets left the only worker");

  tb::report("steal", "stolen_fraction",
             static_cast<double>(many.elsewhere) / static_cast<double>(n), "ratio");
  tb::report("steal", "speedup", one.ms / many.ms, "x");
  tb::report("steal", "time_1w", one.ms, "ms");
  tb::report("steal", "time", many.ms, "ms");
  std::fprintf(stderr,
               "steal: %lld tasklets, %u workers, %llu iterations per 200 ns, "
               "runtime stats: %llu steals (tasklets taken from the shared inject queue,\n"
               "  where a full local queue overflows, are not counted as steals)\n",
               n, workers, static_cast<unsigned long long>(unit),
               static_cast<unsigned long long>(many.steals));
  return 0;
}
