// select: one tasklet selects over 4 receive cases.
//
// * ns_per_select / ns_per_select_1w: 4 producers each send M/4 numbers on
//   their own unbuffered channel and close it; the selector takes whichever
//   is ready (a closed channel's case is disabled with .when(false)) until
//   all 4 are closed. Time / M, on all workers and on one worker. Self-check:
//   every number arrives once, in order per channel.
// * ns_per_select_ready: no partner tasklets: 4 buffered channels (capacity
//   64) start full; each select takes a value from one of them and the
//   handler puts it back with try_send, so every case is always ready (the
//   select's random choice among ready cases). One worker. Self-check: each
//   channel is chosen at least 1/8 of the time.
//
//   bench_select [--workers N] [--count M]   (M defaults to 1,000,000)
#include <taiga/channels.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

constexpr int fanin = 4;
using chan = taiga::channel<std::int64_t>;

double fed(unsigned workers, std::int64_t m) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  const std::int64_t per = m / fanin;
  std::string err;
  double ns = rt.run([&] {
    std::array<chan, fanin> ch;
    std::vector<taiga::tasklet<void>> ps;
    auto t0 = tb::clock_type::now();
    for (int p = 0; p < fanin; ++p)
      ps.push_back(taiga::spawn([c = ch[p], per]() mutable {
        for (std::int64_t i = 0; i < per; ++i)
          if (c.send(i) != taiga::channel_status::ok) return;
        c.close();
      }));
    std::array<std::int64_t, fanin> next{};
    std::array<bool, fanin> open{true, true, true, true};
    int open_count = fanin;
    auto on = [&](int i) {
      return taiga::on_receive(ch[i],
                               [&, i](std::optional<std::int64_t> v) {
                                 if (!v) {
                                   open[i] = false;
                                   --open_count;
                                 } else if (*v != next[i]++) {
                                   err = "channel " + std::to_string(i) + " out of order";
                                 }
                               })
          .when(open[i]);
    };
    while (open_count > 0 && err.empty()) taiga::select(on(0), on(1), on(2), on(3));
    for (auto& t : ps) t.join();
    double ns = tb::ns_since(t0);
    for (int i = 0; i < fanin && err.empty(); ++i)
      if (next[i] != per)
        err = "channel " + std::to_string(i) + " delivered " + std::to_string(next[i]) + " of " +
              std::to_string(per);
    return ns;
  });
  if (!err.empty()) tb::fail("select", err + " (workers " + std::to_string(workers) + ")");
  return ns / static_cast<double>(per * fanin);
}

double ready(std::int64_t m) {
  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  std::string err;
  double ns = rt.run([&] {
    constexpr std::size_t cap = 64;
    std::array<chan, fanin> ch{chan(cap), chan(cap), chan(cap), chan(cap)};
    for (auto& c : ch)
      for (std::size_t i = 0; i < cap; ++i)
        if (c.try_send(static_cast<std::int64_t>(i)) != taiga::channel_status::ok) err = "prefill";
    std::array<std::int64_t, fanin> chosen{};
    auto on = [&](int i) {
      return taiga::on_receive(ch[i], [&, i](std::optional<std::int64_t> v) {
        ++chosen[i];
        if (!v || ch[i].try_send(*v) != taiga::channel_status::ok) err = "put back failed";
      });
    };
    auto t0 = tb::clock_type::now();
    for (std::int64_t k = 0; k < m && err.empty(); ++k) taiga::select(on(0), on(1), on(2), on(3));
    double ns = tb::ns_since(t0);
    for (int i = 0; i < fanin && err.empty(); ++i)
      if (chosen[i] < m / (2 * fanin))
        err = "case " + std::to_string(i) + " chosen only " + std::to_string(chosen[i]) +
              " times of " + std::to_string(m);
    return ns;
  });
  if (!err.empty()) tb::fail("select", "ready: " + err);
  return ns / static_cast<double>(m);
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const std::int64_t m = o.count ? o.count : 1'000'000;
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();
  tb::report("select", "ns_per_select", fed(workers, m), "ns");
  tb::report("select", "ns_per_select_1w", fed(1, m), "ns");
  tb::report("select", "ns_per_select_ready", ready(m), "ns");
  std::fprintf(stderr, "select: %lld selects per run, ns_per_select = %u workers\n",
               static_cast<long long>(m), workers);
  return 0;
}
