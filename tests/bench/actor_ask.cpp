// actor_ask: one actor answers requests (request<std::int64_t, std::int64_t>,
// reply v + 1); another asks M times in a row, each ask with its deadline.
// round_trip = total / M, on one worker. CAF 0.17's request(...).then on
// one thread beside it (round_trip_caf) when CAF was found.
//
//   bench_actor_ask [--count M]   (M defaults to 1,000,000)
#include <taiga/channels.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>

#include "bench_util.hpp"
#if defined(TAIGA_BENCH_HAVE_CAF)
#include "peers/caf_actors.hpp"
#endif

namespace tb = taiga_bench;

namespace {
using server_msg = std::variant<taiga::request<std::int64_t, std::int64_t>, bool>;

void server(taiga::actor_self<server_msg>& self) {
  for (;;) {
    server_msg m = self.receive();
    auto* r = std::get_if<0>(&m);
    if (r == nullptr) return;
    r->reply(r->value + 1);
  }
}
}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const std::int64_t m = o.count ? o.count : 1'000'000;
  double ns = 0;
  std::int64_t bad = 0;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    rt.run([&] {
      auto s = taiga::spawn_actor(server);
      auto client = taiga::spawn_actor<int>([&](taiga::actor_self<int>&) {
        auto t0 = tb::clock_type::now();
        for (std::int64_t i = 0; i < m; ++i) {
          auto r = s.ask(i, std::chrono::seconds(10));
          if (!r || *r != i + 1) ++bad;
        }
        ns = tb::ns_since(t0);
      });
      client.join();
      (void)s.tell(false);
      s.join();
    });
  }
  if (bad != 0) tb::fail("actor_ask", std::to_string(bad) + " asks wrong");
  tb::report("actor_ask", "round_trip", ns / static_cast<double>(m), "ns");
#if defined(TAIGA_BENCH_HAVE_CAF)
  tb::report("actor_ask", "round_trip_caf", caf_peer::ask_ns(m), "ns");
#endif
  return 0;
}
