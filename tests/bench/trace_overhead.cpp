// trace_overhead: what recording a trace costs. skynet (a spawn-and-join
// tree) and pingpong (channel rendezvous on one worker) run alternately
// with the trace off and on (into a sink that only counts, so no disk is
// timed), `rounds` times each; the medians give
//
//   on_pct, on_pct_pingpong   (median on / median off - 1) * 100
//   bytes_per_event           trace bytes / events written
//   events_per_s              events written / second of traced skynet
//   skynet_off, pingpong_off  the untraced medians (ms, ns per round trip):
//                             against the same program built with
//                             -DTAIGA_TRACE_POINTS=OFF they give off_pct
//                             (scripts/trace-overhead runs both builds)
//
//   bench_trace_overhead [--workers N] [--count LEAVES] [--rounds R] [--round-trips M]
#include <taiga/channels.hpp>
#include <taiga/runtime/trace.hpp>
#include <taiga/runtime/trace_format.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;
namespace tf = taiga::trace_format;

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

// Counts bytes and, from the 'E' frames, events written and dropped. The
// recorder hands whole frames (the header, then whole generations).
struct counting_sink {
  struct totals {
    std::uint64_t bytes = 0, events = 0, dropped = 0;
  };
  std::shared_ptr<totals> t = std::make_shared<totals>();
  taiga::trace::sink sink() const {
    return [t = t](std::string_view b) {
      t->bytes += b.size();
      const auto* p = reinterpret_cast<const std::uint8_t*>(b.data());
      const auto* end = p + b.size();
      while (end - p >= 5) {
        std::uint32_t len = p[1] | (p[2] << 8) | (p[3] << 16) | (std::uint32_t(p[4]) << 24);
        const std::uint8_t* q = p + 5;
        if (p[0] == static_cast<std::uint8_t>(tf::frame_kind::generation_end)) {
          tf::get_varint(q, q + len);  // generation
          t->events += tf::get_varint(q, p + 5 + len).value_or(0);
          t->dropped += tf::get_varint(q, p + 5 + len).value_or(0);
        }
        p += 5 + len;
      }
    };
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double skynet_ms(unsigned workers, std::int64_t leaves, counting_sink* traced) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  if (traced) taiga::trace::start(rt, traced->sink());
  auto t0 = tb::clock_type::now();
  std::int64_t sum = rt.run([leaves] { return skynet(0, leaves); });
  double ms = tb::ms_since(t0);
  if (traced) taiga::trace::stop(rt);
  if (sum != leaves * (leaves - 1) / 2) tb::fail("trace_overhead", "skynet's sum is wrong");
  return ms;
}

double pingpong_ns(std::int64_t m, counting_sink* traced) {
  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  if (traced) taiga::trace::start(rt, traced->sink());
  double ns = rt.run([m] {
    taiga::channel<std::int64_t> a, b;
    auto t0 = tb::clock_type::now();
    auto pong = taiga::spawn([a, b]() mutable {
      for (std::int64_t v : a)
        if (b.send(v + 1) != taiga::channel_status::ok) return;
    });
    auto ping = taiga::spawn([a, b, m]() mutable {
      for (std::int64_t i = 0; i < m; ++i) {
        (void)a.send(i);
        (void)b.receive();
      }
      a.close();
    });
    ping.join();
    pong.join();
    return tb::ns_since(t0) / static_cast<double>(m);
  });
  if (traced) taiga::trace::stop(rt);
  return ns;
}

}  // namespace

int main(int argc, char** argv) {
  // --rounds is ours; the rest is bench_util's.
  int rounds = 5;
  std::int64_t m = 500'000;
  std::vector<char*> args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (std::string(argv[i]) == "--round-trips" && i + 1 < argc) {
      m = std::max(1, std::atoi(argv[++i]));
    } else {
      args.push_back(argv[i]);
    }
  }
  tb::options o = tb::parse(static_cast<int>(args.size()), args.data());
  std::int64_t leaves = o.count ? o.count : 1'000'000;
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();

  std::vector<double> sk_off, sk_on, pp_off, pp_on;
  counting_sink sk_sink, pp_sink;
  double sk_on_total_ms = 0;
  skynet_ms(workers, leaves, nullptr);  // warm the stack pool and the slab
  for (int r = 0; r < rounds; ++r) {
    sk_off.push_back(skynet_ms(workers, leaves, nullptr));
    sk_on.push_back(skynet_ms(workers, leaves, &sk_sink));
    sk_on_total_ms += sk_on.back();
    pp_off.push_back(pingpong_ns(m, nullptr));
    pp_on.push_back(pingpong_ns(m, &pp_sink));
  }
  double sk_o = median(sk_off), sk_n = median(sk_on);
  double pp_o = median(pp_off), pp_n = median(pp_on);
  tb::report("trace_overhead", "on_pct", (sk_n / sk_o - 1) * 100, "%");
  tb::report("trace_overhead", "on_pct_pingpong", (pp_n / pp_o - 1) * 100, "%");
  tb::report("trace_overhead", "skynet_off", sk_o, "ms");
  tb::report("trace_overhead", "skynet_on", sk_n, "ms");
  tb::report("trace_overhead", "pingpong_off", pp_o, "ns");
  tb::report("trace_overhead", "pingpong_on", pp_n, "ns");
  auto& t = *sk_sink.t;
  if (t.events > 0) {
    tb::report("trace_overhead", "bytes_per_event",
               static_cast<double>(t.bytes) / static_cast<double>(t.events), "B");
    tb::report("trace_overhead", "events_per_s",
               static_cast<double>(t.events) / (sk_on_total_ms / 1000.0), "1/s");
  }
  tb::report("trace_overhead", "dropped", static_cast<double>(t.dropped + pp_sink.t->dropped),
             "events");
  std::fprintf(stderr,
               "trace_overhead: skynet %lld leaves on %u workers, pingpong %lld, %d rounds\n",
               static_cast<long long>(leaves), workers, static_cast<long long>(m), rounds);
  return 0;
}
