// spawn_join: spawn N empty tasklets from the main tasklet, keep the handles,
// then join them all. Reports the cost per tasklet (spawn + run + join) on one
// worker and on all workers, and the process's peak RSS (all N queued at once).
//
//   bench_spawn_join [--count N] [--workers N]   (N defaults: 1,000,000; all cores)
//
// Each figure is the first round in a fresh runtime. On one worker nothing
// runs until the main tasklet joins, so all N tasklet blocks (96 B each) are
// allocated at once from fresh memory (the slab's 2 MiB chunks: one
// MADV_POPULATE_WRITE each, most of them made ahead by the slab's filler
// thread on another core). A second round in the same runtime reuses those
// blocks: ns_per_tasklet_warm. cpu_per_tasklet is the process's CPU time
// (every thread) over the first round on one worker, per tasklet.
#include <taiga/runtime.hpp>

#include <cstdint>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

struct figures {
  double ns, cpu_ns;  // per tasklet: wall clock, and the process's CPU time
};

figures one_round(long long n) {
  // The handles are the benchmark's own storage, not the runtime's: built
  // (and their 8 MB of fresh pages touched) before the clock starts.
  std::vector<taiga::tasklet<int>> handles(static_cast<std::size_t>(n));
  double cpu0 = tb::process_cpu_ns();
  auto t0 = tb::clock_type::now();
  for (long long i = 0; i < n; ++i)
    handles[static_cast<std::size_t>(i)] =
        taiga::spawn([](int v) { return v & 1; }, static_cast<int>(i));
  double spawn_ns = tb::ns_since(t0);
  std::int64_t odd = 0;
  for (auto& h : handles) odd += h.join();
  double ns = tb::ns_since(t0);
  double cpu_ns = tb::process_cpu_ns() - cpu0;
  if (odd != n / 2) tb::fail("spawn_join", "joined results sum to " + std::to_string(odd));
  std::fprintf(stderr, "spawn_join: %u worker(s): spawn %.0f ns + run/join %.0f ns per tasklet\n",
               taiga::runtime::current()->worker_count(), spawn_ns / static_cast<double>(n),
               (ns - spawn_ns) / static_cast<double>(n));
  return {ns / static_cast<double>(n), cpu_ns / static_cast<double>(n)};
}

struct rounds {
  figures first, second;
};

rounds ns_per_tasklet(unsigned workers, long long n) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  return rt.run([n] {
    figures first = one_round(n);
    figures second = one_round(n);
    return rounds{first, second};
  });
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  long long n = o.count ? o.count : 1'000'000;
  unsigned all = o.workers_given ? o.workers : tb::all_cores();

  rounds one = ns_per_tasklet(1, n);
  long rss = tb::peak_rss_kib();
  tb::report("spawn_join", "ns_per_tasklet", one.first.ns, "ns");
  tb::report("spawn_join", "ns_per_tasklet_warm", one.second.ns, "ns");
  // Every thread's CPU time over the first round, the slab's filler
  // included (it populates chunks ahead on another core: slab.cpp).
  tb::report("spawn_join", "cpu_per_tasklet", one.first.cpu_ns, "ns");
  tb::report("spawn_join", "peak_rss", static_cast<double>(rss) / 1024.0, "MiB");

  rounds many = ns_per_tasklet(all, n);
  tb::report("spawn_join", "ns_per_tasklet_all", many.first.ns, "ns");
  tb::report("spawn_join", "ns_per_tasklet_all_warm", many.second.ns, "ns");
  std::fprintf(stderr, "spawn_join: %lld tasklets, all = %u workers\n", n, all);
  return 0;
}
