// switch: two tasklets on one worker yield to each other M times each. A
// round trip is one yield by each, i.e. two context switches through the
// scheduler; round_trip = total time / M.
//
//   bench_switch [--count M]   (M defaults to 5,000,000)
#include <taiga/runtime.hpp>

#include <cstdint>

#include "bench_util.hpp"

namespace tb = taiga_bench;

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  if (o.workers_given && o.workers != 1)
    std::fprintf(stderr, "switch: --workers ignored; this benchmark runs on one worker\n");
  const std::int64_t m = o.count ? o.count : 5'000'000;

  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  struct result {
    double ns;
    std::int64_t handoffs;
  };
  result r = rt.run([m] {
    int last = -1;              // which tasklet ran the previous iteration
    std::int64_t handoffs = 0;  // iterations that found the other tasklet ran last
    auto body = [&](int me) {
      for (std::int64_t i = 0; i < m; ++i) {
        if (last != me) ++handoffs;
        last = me;
        taiga::this_tasklet::yield();
      }
    };
    auto t0 = tb::clock_type::now();
    auto a = taiga::spawn(body, 0);
    auto b = taiga::spawn(body, 1);
    a.join();
    b.join();
    return result{tb::ns_since(t0), handoffs};
  });
  // Both tasklets share one worker, so every yield must hand over to the other.
  if (r.handoffs < 2 * m - 2)
    tb::fail("switch", "only " + std::to_string(r.handoffs) + " of " + std::to_string(2 * m) +
                           " yields switched to the other tasklet");
  tb::report("switch", "round_trip", r.ns / static_cast<double>(m), "ns");
  return 0;
}
