// pingpong: two tasklets on one worker bounce a counter over two unbuffered
// channels: `ping` sends i on `a` and receives i + 1 from `b`; `pong`
// receives from `a` and sends the value + 1 on `b`. A round trip is two
// rendezvous (two sends, two receives); round_trip = total time / M.
//
//   bench_pingpong [--count M]   (M defaults to 2,000,000)
#include <taiga/channels.hpp>

#include <cstdint>
#include <string>

#include "bench_util.hpp"

namespace tb = taiga_bench;

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  if (o.workers_given && o.workers != 1)
    std::fprintf(stderr, "pingpong: --workers ignored; this benchmark runs on one worker\n");
  const std::int64_t m = o.count ? o.count : 2'000'000;

  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  struct result {
    double ns;
    std::int64_t bad;
  };
  result r = rt.run([m] {
    taiga::channel<std::int64_t> a, b;  // capacity 0: rendezvous
    auto t0 = tb::clock_type::now();
    auto pong = taiga::spawn([a, b]() mutable {
      for (std::int64_t v : a)
        if (b.send(v + 1) != taiga::channel_status::ok) return;
    });
    auto ping = taiga::spawn([a, b, m]() mutable {
      std::int64_t bad = 0;
      for (std::int64_t i = 0; i < m; ++i) {
        if (a.send(i) != taiga::channel_status::ok) return m;
        std::optional<std::int64_t> v = b.receive();
        if (!v || *v != i + 1) ++bad;
      }
      a.close();  // ends pong's range-for
      return bad;
    });
    std::int64_t bad = ping.join();
    pong.join();
    return result{tb::ns_since(t0), bad};
  });
  if (r.bad != 0)
    tb::fail("pingpong", std::to_string(r.bad) + " of " + std::to_string(m) + " round trips wrong");
  tb::report("pingpong", "round_trip", r.ns / static_cast<double>(m), "ns");
  return 0;
}
