// pingpong_x: pingpong across threads: the two tasklets are pinned on
// different workers (a runtime with 2 workers, spawn_options{.pinned = true,
// .worker = 0 / 1}), so every rendezvous wakes a tasklet on the other
// worker. round_trip = total time / M.
//
//   bench_pingpong_x [--count M]   (M defaults to 100,000)
#include <taiga/channels.hpp>

#include <atomic>
#include <cstdint>
#include <string>

#include "bench_util.hpp"

namespace tb = taiga_bench;

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  if (o.workers_given && o.workers != 2)
    std::fprintf(stderr, "pingpong_x: --workers ignored; this benchmark runs on two workers\n");
  const std::int64_t m = o.count ? o.count : 100'000;

  taiga::runtime rt(taiga::runtime_config{.workers = 2});
  struct result {
    double ns;
    std::int64_t bad;
    std::int64_t misplaced;  // iterations that ran on the wrong worker
  };
  result r = rt.run([m] {
    taiga::channel<std::int64_t> a, b;
    std::atomic<std::int64_t> misplaced{0};
    auto t0 = tb::clock_type::now();
    auto pong = taiga::spawn(taiga::spawn_options{.name = "pong", .pinned = true, .worker = 1},
                             [a, b, &misplaced]() mutable {
                               for (std::int64_t v : a) {
                                 if (taiga::this_tasklet::worker() != 1) ++misplaced;
                                 if (b.send(v + 1) != taiga::channel_status::ok) return;
                               }
                             });
    auto ping = taiga::spawn(taiga::spawn_options{.name = "ping", .pinned = true, .worker = 0},
                             [a, b, m, &misplaced]() mutable {
                               std::int64_t bad = 0;
                               for (std::int64_t i = 0; i < m; ++i) {
                                 if (a.send(i) != taiga::channel_status::ok) return m;
                                 std::optional<std::int64_t> v = b.receive();
                                 if (!v || *v != i + 1) ++bad;
                                 if (taiga::this_tasklet::worker() != 0) ++misplaced;
                               }
                               a.close();
                               return bad;
                             });
    std::int64_t bad = ping.join();
    pong.join();
    return result{tb::ns_since(t0), bad, misplaced.load()};
  });
  if (r.bad != 0)
    tb::fail("pingpong_x",
             std::to_string(r.bad) + " of " + std::to_string(m) + " round trips wrong");
  if (r.misplaced != 0)
    tb::fail("pingpong_x", std::to_string(r.misplaced) + " iterations ran off their pinned worker");
  tb::report("pingpong_x", "round_trip", r.ns / static_cast<double>(m), "ns");
  return 0;
}
