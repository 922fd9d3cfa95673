// skynet: a 10-ary tree of tasklets, depth 6 (1,000,000 leaves). Each leaf
// returns its index, each inner node spawns its 10 children and sums their
// join() results; the root checks the sum. Run on all workers (or --workers
// N) and on one worker.
//
//   bench_skynet [--workers N] [--count LEAVES]   (LEAVES: a power of 10, default 1,000,000)
#include <taiga/runtime.hpp>

#include <array>
#include <cstdint>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

std::int64_t skynet(std::int64_t num, std::int64_t size) {
  if (size == 1) return num;
  std::int64_t sub = size / 10;
  std::array<taiga::tasklet<std::int64_t>, 10> kids;
  for (int i = 0; i < 10; ++i) kids[i] = taiga::spawn(skynet, num + i * sub, sub);
  std::int64_t sum = 0;
  for (auto& k : kids) sum += k.join();
  return sum;
}

double run_ms(unsigned workers, std::int64_t leaves) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  auto t0 = tb::clock_type::now();
  std::int64_t sum = rt.run([leaves] { return skynet(0, leaves); });
  double ms = tb::ms_since(t0);
  std::int64_t want = leaves * (leaves - 1) / 2;
  if (sum != want)
    tb::fail("skynet", "sum " + std::to_string(sum) + " != " + std::to_string(want) + " (workers " +
                           std::to_string(workers) + ")");
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  std::int64_t leaves = o.count ? o.count : 1'000'000;
  for (std::int64_t l = leaves; l > 1; l /= 10)
    if (l % 10 != 0) {
      std::fprintf(stderr, "skynet: --count must be a power of 10\n");
      return 2;
    }
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();

  double all = run_ms(workers, leaves);
  double one = run_ms(1, leaves);
  tb::report("skynet", "time", all, "ms");
  tb::report("skynet", "time_1w", one, "ms");
  tb::report("skynet", "peak_rss", static_cast<double>(tb::peak_rss_kib()) / 1024.0, "MiB");
  std::fprintf(stderr, "skynet: %lld leaves, time = %u workers\n", static_cast<long long>(leaves),
               workers);
  return 0;
}
