// io_wake_latency: how long after a byte is written by another thread the
// tasklet parked in read_some on the other end of a loopback TCP connection
// runs.
//
// A plain client thread (not a taiga worker; a blocking socket, TCP_NODELAY)
// writes 8 bytes holding CLOCK_MONOTONIC's ns right before send(); the
// server reads them and records now - sent; then it writes a 1-byte ack and
// the client, blocked in recv for it, sends the next sample. One message at
// a time: the server is parked (its read in the reactor, its worker idle)
// when each arrives. `--gap-us G` makes the client wait G us (busy) after
// each ack, so that the server's worker has also finished spinning and
// sleeps in epoll_wait; 0 by default.
//
// Servers, one after the other in this process:
//   taiga: a runtime of W workers; the tasklet reads with
//          tcp_stream::read_some into a 64-byte buffer (each read after a
//          short one goes straight to the reactor: docs/design/net.md, E3
//          and E6). W = 1 (`_1w`) and W = all cores (no suffix).
//   asio:  a plain io_context (concurrency hint 1) run on this thread;
//          async_read_some with a callback that records, writes the ack
//          with a synchronous write_some and starts the next read (`_asio`).
//
// Figures: `p50_us`, `p99_us` (and `_1w`, `_asio`) over `--count` samples
// (20,000) after 2,000 warm-up samples, from the sorted samples.
//
//   bench_io_wake_latency [--count N] [--workers N] [--gap-us G] [--quick]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <taiga/net.hpp>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr const char* bench = "io_wake_latency";

std::uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

struct config {
  std::size_t samples = 20'000;
  std::size_t warmup = 2'000;
  unsigned gap_us = 0;
};

// The client: connects to 127.0.0.1:port, then `total` rounds of "send the
// time, wait for the ack". Any failure is left in `error`.
void client(unsigned short port, std::size_t total, unsigned gap_us, std::string& error) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return;
  }
  for (std::size_t i = 0; i < total; ++i) {
    if (gap_us > 0) {
      std::uint64_t until = mono_ns() + gap_us * 1000ull;
      while (mono_ns() < until) {
      }
    }
    std::uint64_t t = mono_ns();
    if (::send(fd, &t, sizeof t, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof t)) {
      error = std::string("send: ") + std::strerror(errno);
      break;
    }
    char ack;
    ssize_t r = ::recv(fd, &ack, 1, MSG_WAITALL);
    if (r != 1) {
      error = r == 0 ? "the server closed the connection"
                     : std::string("recv: ") + std::strerror(errno);
      break;
    }
  }
  ::close(fd);
}

// Collects 8-byte timestamps from a stream of bytes that may (rarely) split
// or merge them; returns the samples completed by these bytes.
struct assembler {
  unsigned char pending[8];
  std::size_t have = 0;
  template <class F>
  void feed(const unsigned char* p, std::size_t n, F&& on_sample) {
    while (n > 0) {
      std::size_t k = std::min(n, sizeof pending - have);
      std::memcpy(pending + have, p, k);
      have += k;
      p += k;
      n -= k;
      if (have == sizeof pending) {
        std::uint64_t t;
        std::memcpy(&t, pending, sizeof t);
        on_sample(t);
        have = 0;
      }
    }
  }
};

std::vector<std::uint32_t> run_taiga(unsigned workers, const config& c) {
  std::vector<std::uint32_t> lat;
  std::size_t total = c.samples + c.warmup;
  lat.reserve(total);
  std::thread cl;
  std::string client_error, server_error;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = workers});
    rt.run([&] {
      auto l = taiga::net::tcp_listener::bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
      unsigned short port = l.local_endpoint().port();
      cl = std::thread([&, port] { client(port, total, c.gap_us, client_error); });
      taiga::net::tcp_stream s = l.accept();
      s.no_delay(true);
      unsigned char buf[64];
      assembler a;
      boost::system::error_code ec;
      std::size_t got = 0;
      const char ack = 'k';
      while (got < total) {
        std::size_t n = s.read_some(asio::buffer(buf), ec);
        std::uint64_t now = mono_ns();
        if (ec) {
          server_error = "read: " + ec.message();
          return;
        }
        std::size_t before = got;
        a.feed(buf, n, [&](std::uint64_t t) {
          lat.push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(now - t, UINT32_MAX)));
          ++got;
        });
        for (; before < got; ++before) {
          s.write_all(asio::buffer(&ack, 1), ec);
          if (ec) {
            server_error = "write: " + ec.message();
            return;
          }
        }
      }
    });
  }
  if (cl.joinable()) cl.join();
  if (!client_error.empty() || !server_error.empty())
    tb::fail(bench, "taiga, " + std::to_string(workers) + " workers: " + client_error + " " +
                        server_error);
  return lat;
}

std::vector<std::uint32_t> run_asio(const config& c) {
  std::vector<std::uint32_t> lat;
  std::size_t total = c.samples + c.warmup;
  lat.reserve(total);
  std::string client_error, server_error;
  asio::io_context io(1);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  unsigned short port = acc.local_endpoint().port();
  std::thread cl([&, port] { client(port, total, c.gap_us, client_error); });
  tcp::socket s = acc.accept();
  s.set_option(tcp::no_delay(true));
  unsigned char buf[64];
  assembler a;
  std::size_t got = 0;
  const char ack = 'k';
  std::function<void()> read;
  read = [&] {
    s.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
      std::uint64_t now = mono_ns();
      if (ec) {
        server_error = "read: " + ec.message();
        return;
      }
      std::size_t before = got;
      a.feed(buf, n, [&](std::uint64_t t) {
        lat.push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(now - t, UINT32_MAX)));
        ++got;
      });
      for (; before < got; ++before) {
        asio::write(s, asio::buffer(&ack, 1), ec);
        if (ec) {
          server_error = "write: " + ec.message();
          return;
        }
      }
      if (got < total) read();
    });
  };
  read();
  io.run();
  cl.join();
  if (!client_error.empty() || !server_error.empty())
    tb::fail(bench, "asio: " + client_error + " " + server_error);
  return lat;
}

struct quantiles {
  double p50_us, p99_us, max_us;
};

quantiles summarize(std::vector<std::uint32_t> lat, const config& c, const char* what) {
  if (lat.size() != c.samples + c.warmup)
    tb::fail(bench, std::string(what) + ": " + std::to_string(lat.size()) + " samples");
  lat.erase(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(c.warmup));
  std::sort(lat.begin(), lat.end());
  auto at = [&](double q) {
    std::size_t i = std::min(lat.size() - 1, static_cast<std::size_t>(q * lat.size()));
    return lat[i] / 1e3;
  };
  quantiles r{at(0.50), at(0.99), lat.back() / 1e3};
  std::fprintf(stderr,
               "io_wake_latency: %-14s p50 %7.1f us  p90 %7.1f us  p99 %7.1f us  max %8.1f us\n",
               what, r.p50_us, at(0.90), r.p99_us, r.max_us);
  return r;
}

[[noreturn]] void usage(const char* prog) {
  std::fprintf(stderr, "usage: %s [--count N] [--workers N] [--gap-us G] [--quick]\n", prog);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  config c;
  unsigned all = tb::all_cores();
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> unsigned long {
      if (i + 1 >= argc) usage(argv[0]);
      char* end = nullptr;
      unsigned long v = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0') usage(argv[0]);
      return v;
    };
    if (a == "--count") {
      c.samples = value();
      if (c.samples == 0) usage(argv[0]);
    } else if (a == "--workers") {
      all = static_cast<unsigned>(value());
      if (all == 0) usage(argv[0]);
    } else if (a == "--gap-us") {
      c.gap_us = static_cast<unsigned>(value());
    } else if (a == "--quick") {
      c.samples = 5'000;
      c.warmup = 500;
    } else {
      usage(argv[0]);
    }
  }
  ::signal(SIGPIPE, SIG_IGN);

  quantiles one = summarize(run_taiga(1, c), c, "taiga 1 worker");
  quantiles many{};
  if (all != 1)
    many = summarize(run_taiga(all, c), c, ("taiga " + std::to_string(all) + " workers").c_str());
  quantiles as = summarize(run_asio(c), c, "asio callback");

  if (all != 1) {
    tb::report(bench, "p50_us", many.p50_us, "us");
    tb::report(bench, "p99_us", many.p99_us, "us");
    tb::report(bench, "p50_us_1w", one.p50_us, "us");
    tb::report(bench, "p99_us_1w", one.p99_us, "us");
  } else {
    tb::report(bench, "p50_us", one.p50_us, "us");
    tb::report(bench, "p99_us", one.p99_us, "us");
  }
  tb::report(bench, "p50_us_asio", as.p50_us, "us");
  tb::report(bench, "p99_us_asio", as.p99_us, "us");
  std::fprintf(stderr,
               "io_wake_latency: %zu samples after %zu warm-up, one 8-byte message at a time over "
               "loopback TCP from a plain client thread, %u us gap; latency = client's "
               "CLOCK_MONOTONIC before send() to the server's right after its read returned\n",
               c.samples, c.warmup, c.gap_us);
  return 0;
}
