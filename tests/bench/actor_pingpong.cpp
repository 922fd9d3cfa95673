// actor_pingpong: two actors on one worker bounce a counter: `ping` tells
// pong i and receives i + 1. round_trip = total time / M (two tells, two
// receives). In the same run: the same bounce over two rendezvous channels
// (round_trip_channel, bench_pingpong's program: the bound is 1.5x
// of it), 1,000 pairs on every core (msgs_per_s), and the CAF 0.17 peers
// (*_caf) when CAF was found.
//
//   bench_actor_pingpong [--count M]   (M defaults to 1,000,000)
#include <taiga/channels.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "bench_util.hpp"
#if defined(TAIGA_BENCH_HAVE_CAF)
#include "peers/caf_actors.hpp"
#endif

namespace tb = taiga_bench;

namespace {

void pong(taiga::actor_self<std::int64_t>& self, taiga::actor_ref<std::int64_t> back) {
  for (;;) {
    std::int64_t v = self.receive();
    if (v < 0) return;
    (void)back.tell(v + 1);
  }
}

// One ping actor: m round trips with its own pong; returns the wrong answers.
std::int64_t ping(taiga::actor_self<std::int64_t>& self, std::int64_t m) {
  auto p = taiga::spawn_actor(pong, self.ref());
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    (void)p.tell(i);
    if (self.receive() != i + 1) ++bad;
  }
  (void)p.tell(std::int64_t{-1});
  p.join();
  return bad;
}

// `pairs` ping actors; returns ns for all, counting wrong answers in `bad`.
double run_pairs(int pairs, std::int64_t m, std::int64_t& bad) {
  std::vector<taiga::actor_ref<int>> pings;
  auto t0 = tb::clock_type::now();
  std::atomic<std::int64_t> wrong{0};
  for (int i = 0; i < pairs; ++i)
    pings.push_back(taiga::spawn_actor<int>([m, &wrong](taiga::actor_self<int>&) {
      // A ping of its own type: the pong answers on an int64 mailbox.
      auto inner = taiga::spawn_actor(
          [m, &wrong](taiga::actor_self<std::int64_t>& s) { wrong += ping(s, m); });
      inner.join();
    }));
  for (auto& p : pings) p.join();
  bad = wrong.load();
  return tb::ns_since(t0);
}

double channel_round_trip(std::int64_t m) {
  taiga::channel<std::int64_t> a, b;  // capacity 0: rendezvous
  auto t0 = tb::clock_type::now();
  auto pong_t = taiga::spawn([a, b]() mutable {
    for (std::int64_t v : a)
      if (b.send(v + 1) != taiga::channel_status::ok) return;
  });
  for (std::int64_t i = 0; i < m; ++i) {
    (void)a.send(i);
    (void)b.receive();
  }
  a.close();
  pong_t.join();
  return tb::ns_since(t0) / static_cast<double>(m);
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const std::int64_t m = o.count ? o.count : 1'000'000;
  const int pairs = 1000;
  const std::int64_t per_pair = 1000;

  double actor_ns = 0, chan_ns = 0;
  std::int64_t bad = 0;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    rt.run([&] {
      chan_ns = channel_round_trip(m);
      auto t0 = tb::clock_type::now();
      auto p =
          taiga::spawn_actor([m, &bad](taiga::actor_self<std::int64_t>& s) { bad = ping(s, m); });
      p.join();
      actor_ns = tb::ns_since(t0) / static_cast<double>(m);
    });
  }
  if (bad != 0) tb::fail("actor_pingpong", std::to_string(bad) + " round trips wrong");
  tb::report("actor_pingpong", "round_trip", actor_ns, "ns");
  tb::report("actor_pingpong", "round_trip_channel", chan_ns, "ns");
  tb::report("actor_pingpong", "ratio_to_channel", actor_ns / chan_ns, "x");

  double pairs_ns = 0;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = o.workers ? o.workers : tb::all_cores()});
    rt.run([&] { pairs_ns = run_pairs(pairs, per_pair, bad); });
  }
  if (bad != 0) tb::fail("actor_pingpong", std::to_string(bad) + " pair round trips wrong");
  tb::report("actor_pingpong", "msgs_per_s", 2.0 * pairs * per_pair / (pairs_ns / 1e9), "msg/s");

#if defined(TAIGA_BENCH_HAVE_CAF)
  tb::report("actor_pingpong", "round_trip_caf", caf_peer::pingpong_ns(m), "ns");
  tb::report("actor_pingpong", "msgs_per_s_caf",
             caf_peer::pairs_msgs_per_s(pairs, per_pair, o.workers ? o.workers : tb::all_cores()),
             "msg/s");
#endif
  return 0;
}
