// actor_ring: N actors (default 10,000) in a ring pass a token R times
// around (default 100): the last member counts the rounds down, and in the
// final round each member forwards it once more and ends, so the ring
// carries N * R messages. ns_per_hop = total / (N * R), on every core. The
// CAF 0.17 peer (ns_per_hop_caf) when CAF was found.
//
//   bench_actor_ring [--count R] [--workers W]
#include <cstdint>
#include <memory>
#include <string>
#include <taiga/channels.hpp>
#include <variant>
#include <vector>

#include "bench_util.hpp"
#if defined(TAIGA_BENCH_HAVE_CAF)
#include "peers/caf_actors.hpp"
#endif

namespace tb = taiga_bench;

namespace {
using ring_msg = std::variant<std::int64_t, taiga::any_actor_ref>;

void member(taiga::actor_self<ring_msg>& self, bool last) {
  // The next member comes first, as an untyped ref.
  auto next = taiga::actor_ref_cast<ring_msg>(std::get<taiga::any_actor_ref>(self.receive()));
  for (;;) {
    std::int64_t rounds = std::get<std::int64_t>(self.receive());
    if (last) {
      if (rounds == 0) return;
      (void)next.tell(rounds - 1);
    } else {
      (void)next.tell(rounds);
      if (rounds == 0) return;
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const int n = 10'000;
  const int rounds = o.count ? static_cast<int>(o.count) : 100;
  const unsigned workers = o.workers ? o.workers : tb::all_cores();
  double ns = 0;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = workers});
    rt.run([&] {
      std::vector<taiga::actor_ref<ring_msg>> ring;
      ring.reserve(n);
      for (int i = 0; i < n; ++i) ring.push_back(taiga::spawn_actor(member, i == n - 1));
      for (int i = 0; i < n; ++i) (void)ring[i].tell(taiga::any_actor_ref(ring[(i + 1) % n]));
      auto t0 = tb::clock_type::now();
      (void)ring[0].tell(std::int64_t{rounds - 1});
      for (auto& r : ring) r.join();
      ns = tb::ns_since(t0) / (static_cast<double>(n) * rounds);
    });
  }
  tb::report("actor_ring", "ns_per_hop", ns, "ns");
#if defined(TAIGA_BENCH_HAVE_CAF)
  tb::report("actor_ring", "ns_per_hop_caf", caf_peer::ring_ns_per_hop(n, rounds, workers), "ns");
#endif
  return 0;
}
