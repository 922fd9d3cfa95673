// skynet_chan: the classic skynet written with channels exactly like
// tests/bench/go/skynet.go: every node makes an unbuffered channel, spawns
// its 10 children (detached) which send their sums on it, receives 10
// values and sends their sum on its parent's channel; leaves send their
// index. The root checks the sum (499999500000 for 1,000,000 leaves). Run
// on all workers (or --workers N) and on one worker; best of 3 rounds each,
// like the Go program.
//
//   bench_skynet_chan [--workers N] [--count LEAVES]   (a power of 10, default 1,000,000)
#include <taiga/channels.hpp>

#include <algorithm>
#include <cstdint>
#include <string>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

void skynet(taiga::channel<std::int64_t> c, std::int64_t num, std::int64_t size) {
  if (size == 1) {
    (void)c.send(num);
    return;
  }
  taiga::channel<std::int64_t> rc;
  std::int64_t sub = size / 10;
  for (int i = 0; i < 10; ++i) taiga::spawn(skynet, rc, num + i * sub, sub).detach();
  std::int64_t sum = 0;
  for (int i = 0; i < 10; ++i) sum += rc.receive().value_or(0);
  (void)c.send(sum);
}

double best_ms(unsigned workers, std::int64_t leaves) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  double best = 1e300;
  for (int round = 0; round < 3; ++round) {
    auto t0 = tb::clock_type::now();
    std::int64_t sum = rt.run([leaves] {
      taiga::channel<std::int64_t> c;
      taiga::spawn(skynet, c, std::int64_t{0}, leaves).detach();
      return c.receive().value_or(-1);
    });
    double ms = tb::ms_since(t0);
    std::int64_t want = leaves * (leaves - 1) / 2;
    if (sum != want)
      tb::fail("skynet_chan", "sum " + std::to_string(sum) + " != " + std::to_string(want) +
                                  " (workers " + std::to_string(workers) + ")");
    best = std::min(best, ms);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  std::int64_t leaves = o.count ? o.count : 1'000'000;
  for (std::int64_t l = leaves; l > 1; l /= 10)
    if (l % 10 != 0) {
      std::fprintf(stderr, "skynet_chan: --count must be a power of 10\n");
      return 2;
    }
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();

  double all = best_ms(workers, leaves);
  double one = best_ms(1, leaves);
  tb::report("skynet_chan", "time", all, "ms");
  tb::report("skynet_chan", "time_1w", one, "ms");
  tb::report("skynet_chan", "peak_rss", static_cast<double>(tb::peak_rss_kib()) / 1024.0, "MiB");
  std::fprintf(stderr, "skynet_chan: %lld leaves, best of 3, time = %u workers\n",
               static_cast<long long>(leaves), workers);
  return 0;
}
