// fan_in: 8 producers send M messages in all to one consumer over one
// channel, buffered (capacity 128) and unbuffered; then MPMC: 4 producers
// and 4 consumers share one buffered channel (capacity 128), closed once the
// producers are done (the consumers range-for over it). Self-check: every
// message arrives exactly once, and each producer's messages arrive in the
// order it sent them (fan-in runs). All workers (or --workers N).
//
//   bench_fan_in [--workers N] [--count M]   (M defaults to 2,000,000 per run)
#include <taiga/channels.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

constexpr int seq_bits = 40;  // message = producer << seq_bits | sequence number

// One consumer (the main tasklet), `producers` senders; returns msgs/s.
double fan_in(unsigned workers, std::int64_t m, int producers, std::size_t capacity,
              const char* metric) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  const std::int64_t per = m / producers;
  std::string err;
  double ns = rt.run([&] {
    taiga::channel<std::int64_t> ch(capacity);
    std::vector<taiga::tasklet<void>> ps;
    auto t0 = tb::clock_type::now();
    for (int p = 0; p < producers; ++p)
      ps.push_back(taiga::spawn([ch, p, per]() mutable {
        for (std::int64_t i = 0; i < per; ++i)
          if (ch.send(std::int64_t{p} << seq_bits | i) != taiga::channel_status::ok) return;
      }));
    std::vector<std::int64_t> next(static_cast<std::size_t>(producers), 0);
    for (std::int64_t got = 0; got < per * producers; ++got) {
      std::optional<std::int64_t> v = ch.receive();
      if (!v) {
        err = "channel closed early";
        break;
      }
      auto p = static_cast<std::size_t>(*v >> seq_bits);
      std::int64_t seq = *v & ((std::int64_t{1} << seq_bits) - 1);
      if (p >= next.size() || seq != next[p]) {
        err = "producer " + std::to_string(p) + " message " + std::to_string(seq) + " out of order";
        break;
      }
      ++next[p];
    }
    for (auto& t : ps) t.join();
    double ns = tb::ns_since(t0);
    if (err.empty() && ch.try_receive()) err = "extra message";
    return ns;
  });
  if (!err.empty()) tb::fail("fan_in", std::string(metric) + ": " + err);
  return static_cast<double>(per * producers) / (ns * 1e-9);
}

double mpmc(unsigned workers, std::int64_t m, int producers, int consumers) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  const std::int64_t per = m / producers;
  struct tally {
    std::int64_t count = 0;
    std::int64_t sum = 0;
  };
  struct result {
    double ns;
    tally total;
  };
  result r = rt.run([&] {
    taiga::channel<std::int64_t> ch(128);
    std::vector<taiga::tasklet<void>> ps;
    std::vector<taiga::tasklet<tally>> cs;
    auto t0 = tb::clock_type::now();
    for (int c = 0; c < consumers; ++c)
      cs.push_back(taiga::spawn([ch]() mutable {
        tally t;
        for (std::int64_t v : ch) {
          ++t.count;
          t.sum += v;
        }
        return t;
      }));
    for (int p = 0; p < producers; ++p)
      ps.push_back(taiga::spawn([ch, p, per]() mutable {
        for (std::int64_t i = 0; i < per; ++i)
          if (ch.send(p * per + i) != taiga::channel_status::ok) return;
      }));
    for (auto& t : ps) t.join();
    ch.close();
    tally total;
    for (auto& t : cs) {
      tally x = t.join();
      total.count += x.count;
      total.sum += x.sum;
    }
    return result{tb::ns_since(t0), total};
  });
  const std::int64_t n = per * producers;
  if (r.total.count != n || r.total.sum != n * (n - 1) / 2)
    tb::fail("fan_in", "mpmc: received " + std::to_string(r.total.count) + " messages, sum " +
                           std::to_string(r.total.sum) + "; expected " + std::to_string(n) +
                           ", sum " + std::to_string(n * (n - 1) / 2));
  return static_cast<double>(n) / (r.ns * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const std::int64_t m = o.count ? o.count : 2'000'000;
  unsigned workers = o.workers_given ? o.workers : tb::all_cores();
  tb::report("fan_in", "msgs_per_s_buffered", fan_in(workers, m, 8, 128, "buffered"), "msg/s");
  tb::report("fan_in", "msgs_per_s_unbuffered", fan_in(workers, m, 8, 0, "unbuffered"), "msg/s");
  tb::report("fan_in", "msgs_per_s_mpmc", mpmc(workers, m, 4, 4), "msg/s");
  std::fprintf(stderr, "fan_in: %lld messages per run, %u workers\n", static_cast<long long>(m),
               workers);
  return 0;
}
