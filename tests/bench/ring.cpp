// ring: N tasklets in a ring of unbuffered channels pass a token L times
// around. Tasklet k receives from ch[k] and sends the token + 1 on ch[k + 1];
// the main tasklet closes the ring (receives from ch[N], sends on ch[0]).
// ns_per_hop = total time / (N * L); the token must come back as N * L.
// Run on one worker (ns_per_hop_1w) and on all workers (ns_per_hop).
//
//   bench_ring [--workers N] [--count TASKLETS]   (default 10,000 tasklets, 100 laps)
#include <taiga/channels.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

constexpr int laps = 100;

double run_ns_per_hop(unsigned workers, std::int64_t n) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  struct result {
    double ns;
    std::int64_t token;
  };
  result r = rt.run([n] {
    std::vector<taiga::channel<std::int64_t>> ch(static_cast<std::size_t>(n + 1));
    std::vector<taiga::tasklet<void>> ring;
    ring.reserve(static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < n; ++k)
      ring.push_back(taiga::spawn([in = ch[k], out = ch[k + 1]]() mutable {
        for (std::int64_t v : in)
          if (out.send(v + 1) != taiga::channel_status::ok) break;
        out.close();  // shuts the ring down link by link
      }));
    auto t0 = tb::clock_type::now();
    std::int64_t token = 0;
    for (int lap = 0; lap < laps; ++lap) {
      if (ch[0].send(token) != taiga::channel_status::ok) return result{0, -1};
      token = ch[static_cast<std::size_t>(n)].receive().value_or(-1);
    }
    double ns = tb::ns_since(t0);
    ch[0].close();
    for (auto& t : ring) t.join();
    return result{ns, token};
  });
  if (r.token != n * laps)
    tb::fail("ring", "token came back as " + std::to_string(r.token) + ", expected " +
                         std::to_string(n * laps) + " (workers " + std::to_string(workers) + ")");
  return r.ns / static_cast<double>(n * laps);
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const std::int64_t n = o.count ? o.count : 10'000;
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();
  double one = run_ns_per_hop(1, n);
  double all = run_ns_per_hop(workers, n);
  tb::report("ring", "ns_per_hop_1w", one, "ns");
  tb::report("ring", "ns_per_hop", all, "ns");
  std::fprintf(stderr, "ring: %lld tasklets, %d laps, ns_per_hop = %u workers\n",
               static_cast<long long>(n), laps, workers);
  return 0;
}
