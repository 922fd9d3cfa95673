// switch: two tasklets on one worker yield to each other M times each. A
// round trip is one yield by each, i.e. two context switches through the
// scheduler; round_trip = total time / M.
//
//   bench_switch [--count M] [--slices]   (M defaults to 5,000,000)
//
// The floor under that figure is a bare Boost.Context pair: two contexts that
// jump to each other with nothing else (bench_machine's context_round_trip).
// This host's speed moves by up to 1.7x from minute to minute, and within one
// process too, so the pair is timed here in slices between the tasklets'
// slices, and `vs_bare` = round_trip / bare_round_trip relates two terms
// from the same minutes. It is steadier than round_trip, not steady: 2.1 on a
// calm core, up to 3.2 on a core the host shares with another tenant, which
// costs the wide switch path more than the narrow pair (docs/benchmarks.md,
// "Calm and slow minutes"). Compare builds by alternating them
// (scripts/bench-compare).
//
// --slices prints each slice on stderr, with a third probe: a loop of plain
// register arithmetic (no memory, no branches to speak of) that shows, slice
// by slice, whether the host core itself is slower.
#include <taiga/runtime.hpp>

#include <algorithm>
#include <boost/context/detail/fcontext.hpp>
#include <cstdint>
#include <cstring>

#include "bench_util.hpp"

namespace tb = taiga_bench;
namespace bc = boost::context::detail;

namespace {

// Round trips per slice: ~6 ms of yields, then ~3 ms of the bare pair.
constexpr std::int64_t slice = 250'000;

// The bare pair: a context that bounces every jump straight back.
struct bare_pair {
  alignas(64) char stack[64 * 1024];
  bc::fcontext_t ctx = nullptr;

  bare_pair() {
    ctx = bc::make_fcontext(stack + sizeof stack, sizeof stack, [](bc::transfer_t t) {
      for (;;) t = bc::jump_fcontext(t.fctx, nullptr);  // left suspended at exit
    });
    ctx = bc::jump_fcontext(ctx, nullptr).fctx;
  }
  // ns spent on `n` round trips.
  double run(std::int64_t n) {
    auto t0 = tb::clock_type::now();
    for (std::int64_t i = 0; i < n; ++i) ctx = bc::jump_fcontext(ctx, nullptr).fctx;
    return tb::ns_since(t0);
  }
};

// ns per iteration of eight add/xor chains: registers only, no memory.
double alu_probe() {
  constexpr long n = 2'000'000;
  std::uint64_t a0 = 1, a1 = 2, a2 = 3, a3 = 4, a4 = 5, a5 = 6, a6 = 7, a7 = 8;
  auto t0 = tb::clock_type::now();
  for (long k = 0; k < n; ++k) {
    const auto u = static_cast<std::uint64_t>(k);
    a0 += u, a1 ^= u, a2 += a0 >> 1, a3 ^= a1 << 1, a4 += u ^ 3, a5 ^= a4 >> 2, a6 += a2, a7 ^= a3;
    asm volatile(""
                 : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5), "+r"(a6), "+r"(a7));
  }
  return tb::ns_since(t0) / n;
}

}  // namespace

int main(int argc, char** argv) {
  bool slices = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--slices") == 0) {
      slices = true;
      std::copy(argv + i + 1, argv + argc, argv + i);
      --argc;
      break;
    }
  }
  tb::options o = tb::parse(argc, argv);
  if (o.workers_given && o.workers != 1)
    std::fprintf(stderr, "switch: --workers ignored; this benchmark runs on one worker\n");
  const std::int64_t m = o.count ? o.count : 5'000'000;

  static bare_pair bare;  // 64 KiB: not on a tasklet's stack
  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  struct result {
    double ns;       // the yields alone
    double bare_ns;  // the bare pair's slices
    std::int64_t bare_trips;
    std::int64_t handoffs;
  };
  result r = rt.run([m, slices] {
    int last = -1;              // which tasklet ran the previous iteration
    std::int64_t handoffs = 0;  // iterations that found the other tasklet ran last
    double bare_ns = 0;
    double aside_ns = 0;  // not yields: bare_ns and, with --slices, the rest
    std::int64_t bare_trips = 0;
    auto body = [&](int me) {
      // In slices, so that the inner loop is the plain one (its cost is part
      // of the figure). The first slice of the pair comes before any yield:
      // a count under one slice still has a floor, and two counts differ by
      // yields only (the callgrind recipe in docs/benchmarks.md).
      auto slice_t0 = tb::clock_type::now();
      for (std::int64_t done = 0; done < m;) {
        if (me == 0) {
          const auto aside_t0 = tb::clock_type::now();
          const double yields_ns = tb::ns_since(slice_t0);
          const double ns = bare.run(slice);
          bare_ns += ns;
          bare_trips += slice;
          if (slices && done > 0)
            std::fprintf(stderr, "slice %lld round_trip %.1f bare %.1f alu %.2f ns\n",
                         static_cast<long long>(done / slice), yields_ns / slice, ns / slice,
                         alu_probe());
          slice_t0 = tb::clock_type::now();
          aside_ns += tb::ns_since(aside_t0);  // the pair, the probe, the print
        }
        const std::int64_t n = std::min(slice, m - done);
        for (std::int64_t i = 0; i < n; ++i) {
          if (last != me) ++handoffs;
          last = me;
          taiga::this_tasklet::yield();
        }
        done += n;
      }
    };
    auto t0 = tb::clock_type::now();
    auto a = taiga::spawn(body, 0);
    auto b = taiga::spawn(body, 1);
    a.join();
    b.join();
    return result{tb::ns_since(t0) - aside_ns, bare_ns, bare_trips, handoffs};
  });
  // Both tasklets share one worker, so every yield must hand over to the other.
  if (r.handoffs < 2 * m - 2)
    tb::fail("switch", "only " + std::to_string(r.handoffs) + " of " + std::to_string(2 * m) +
                           " yields switched to the other tasklet");
  const double round_trip = r.ns / static_cast<double>(m);
  const double bare_round_trip = r.bare_ns / static_cast<double>(r.bare_trips);
  tb::report("switch", "round_trip", round_trip, "ns");
  tb::report("switch", "bare_round_trip", bare_round_trip, "ns");
  tb::report("switch", "vs_bare", round_trip / bare_round_trip, "x");
  return 0;
}
