// connect_storm: how many short connections per second a server accepts
// and serves over loopback TCP, for taiga (an accept loop and one tasklet
// per connection over taiga::net: tcp_echo_taiga.cpp) and a plain
// Boost.Asio callback server (peers/asio_echo_server.cpp): bench_tcp_echo's
// echo servers, each run in a child process of its own (this program
// re-executed as `bench_connect_storm --serve taiga|asio --threads W`).
//
// The client (this process, one thread, raw non-blocking sockets and epoll)
// keeps C connections (64) in flight: each connects, writes 1 byte, reads
// its echo and closes with a reset (SO_LINGER {1, 0}: no TIME_WAIT, so the
// ephemeral ports, net.ipv4.ip_local_port_range, are never exhausted); a
// finished connection is replaced at once, until M connections (20,000)
// have finished. 1,000 connections first warm the server up, uncounted.
//
// Figures: `conns_per_s` (M / the time from the first connect to the last
// close) and `cpu_us_per_conn` (the server's utime + stime from
// /proc/PID/task/*/schedstat over that window / M); `_asio` for the Asio
// server.
// W = all cores by default (taiga workers = Asio threads, each Asio thread
// with its own acceptor on the port, SO_REUSEPORT). Each figure is the
// median of `--rounds` runs (3; `--quick`: 1 run of 5,000), the servers'
// order reversed every other round.
//
//   bench_connect_storm [--count M] [--concurrency C] [--workers W] [--rounds R]
//                       [--servers taiga,asio] [--quick]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench_child.hpp"
#include "bench_util.hpp"
#include "tcp_echo_servers.hpp"

namespace tb = taiga_bench;
namespace ch = taiga_bench::child;

namespace {

constexpr const char* bench = "connect_storm";

struct options {
  unsigned long count = 20'000;
  unsigned long warmup = 1'000;
  unsigned concurrency = 64;
  unsigned workers = tb::all_cores();
  unsigned rounds = 3;
  std::vector<std::string> servers = {"taiga", "asio"};
};

// ---- the client ----

struct storm_result {
  double seconds = 0;
  unsigned long done = 0;
  unsigned long retries = 0;
  std::string error;
};

// `total` connections to 127.0.0.1:port, `conc` at a time.
storm_result storm(unsigned short port, unsigned long total, unsigned conc) {
  storm_result res;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    res.error = std::string("epoll_create1: ") + std::strerror(errno);
    return res;
  }
  struct slot {
    int fd = -1;
    bool sent = false;
  };
  std::vector<slot> slots(conc);
  unsigned long started = 0;
  const unsigned long max_retries = 100 + total / 100;

  auto close_reset = [](int fd) {
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
  };
  // Starts the next connection in slot i (if any is left).
  auto launch = [&](std::uint32_t i) -> bool {
    slot& s = slots[i];
    s.fd = -1;
    s.sent = false;
    if (started >= total) return true;
    ++started;
    s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) {
      res.error = std::string("socket: ") + std::strerror(errno);
      return false;
    }
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS) {
      res.error = std::string("connect: ") + std::strerror(errno);
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u32 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev) != 0) {
      res.error = std::string("epoll_ctl: ") + std::strerror(errno);
      return false;
    }
    return true;
  };
  // A failed connection: closed and started again (counts as a retry).
  auto retry = [&](std::uint32_t i, const char* what, int err) -> bool {
    close_reset(slots[i].fd);
    --started;
    if (++res.retries > max_retries) {
      res.error = std::string(what) + ": " + std::strerror(err) + " (too many retries)";
      return false;
    }
    return launch(i);
  };

  auto t0 = tb::clock_type::now();
  bool ok = true;
  for (std::uint32_t i = 0; i < conc && ok; ++i) ok = launch(i);
  std::vector<epoll_event> evs(conc);
  auto last_progress = tb::clock_type::now();
  while (ok && res.done < total) {
    int k = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
    if (k < 0) {
      if (errno == EINTR) continue;
      res.error = std::string("epoll_wait: ") + std::strerror(errno);
      break;
    }
    if (k > 0) last_progress = tb::clock_type::now();
    if (tb::clock_type::now() - last_progress > std::chrono::seconds(10)) {
      res.error = "no progress in 10 s (" + std::to_string(res.done) + " connections done)";
      break;
    }
    for (int j = 0; j < k && ok; ++j) {
      std::uint32_t i = evs[j].data.u32;
      slot& s = slots[i];
      if (!s.sent) {  // connecting: writable once connected
        const char x = 'x';
        if (::send(s.fd, &x, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
          int err = errno;
          if (err == EAGAIN) continue;
          ok = retry(i, "connect/send", err);
          continue;
        }
        s.sent = true;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
        continue;
      }
      char y = 0;
      ssize_t r = ::recv(s.fd, &y, 1, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r != 1 || y != 'x') {
        int err = r == 0 ? ECONNRESET : errno;
        if (r == 1) {
          res.error = "a wrong echo";
          ok = false;
          break;
        }
        ok = retry(i, "recv", err);
        continue;
      }
      close_reset(s.fd);  // also leaves the epoll set
      ++res.done;
      ok = launch(i);
    }
  }
  res.seconds = std::chrono::duration<double>(tb::clock_type::now() - t0).count();
  for (slot& s : slots)
    if (s.fd >= 0) close_reset(s.fd);
  ::close(ep);
  return res;
}

// ---- one run against one server ----

struct figures {
  double conns_per_s = 0, cpu_us_per_conn = 0;
};

figures run_one(const std::string& server, const options& o) {
  ch::process p =
      ch::start(bench, {"--serve", server, "--threads", std::to_string(o.workers)}, false);
  bool got = false;
  std::string line = ch::read_line(p.from_child, std::chrono::seconds(20), &got);
  unsigned port = 0;
  long spid = 0;
  if (!got || std::sscanf(line.c_str(), "%u %ld", &port, &spid) != 2 || port == 0 || port > 65535)
    tb::fail(bench, server + " server: no port reported (\"" + line + "\")");
  auto sport = static_cast<unsigned short>(port);

  storm_result warm = storm(sport, o.warmup, o.concurrency);
  if (!warm.error.empty()) tb::fail(bench, server + " server, warm-up: " + warm.error);
  double cpu0 = ch::process_cpu_us_fine(p.pid);
  storm_result r = storm(sport, o.count, o.concurrency);
  double cpu = ch::process_cpu_us_fine(p.pid) - cpu0;
  int status = ch::stop(p);
  if (!r.error.empty()) tb::fail(bench, server + " server: " + r.error);
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    tb::fail(bench, server + " server exited with status " + std::to_string(WEXITSTATUS(status)));
  figures f;
  f.conns_per_s = static_cast<double>(r.done) / r.seconds;
  f.cpu_us_per_conn = cpu / static_cast<double>(r.done);
  std::fprintf(stderr,
               "connect_storm: %-5s W=%u C=%u %lu connections in %.3f s: %8.0f conn/s, server "
               "%.1f us CPU per connection (%.0f%% of a core)%s\n",
               server.c_str(), o.workers, o.concurrency, r.done, r.seconds, f.conns_per_s,
               f.cpu_us_per_conn, 100 * cpu / 1e6 / r.seconds,
               r.retries ? (", " + std::to_string(r.retries) + " retried").c_str() : "");
  return f;
}

// ---- the servers: `--serve KIND --threads N` ----

void report_port(unsigned short port) {
  std::printf("%u %ld\n", static_cast<unsigned>(port), static_cast<long>(::getpid()));
  std::fflush(stdout);
}

[[noreturn]] void serve(std::string_view what, unsigned threads) {
  ch::die_with_parent();
  ::signal(SIGPIPE, SIG_IGN);
  ch::raise_nofile();
  if (what == "asio") tb::serve_asio_echo(threads, report_port);
  if (what == "taiga") serve_taiga_echo(threads, report_port);
  std::fprintf(stderr, "connect_storm: no server \"%.*s\"\n", static_cast<int>(what.size()),
               what.data());
  std::exit(2);
}

[[noreturn]] void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s [--count M] [--concurrency C] [--workers W] [--rounds R] "
               "[--servers taiga,asio] [--quick]\n",
               prog);
  std::exit(2);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int read_int_file(const char* path, int which) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  int a = -1, b = -1;
  int n = std::fscanf(f, "%d %d", &a, &b);
  std::fclose(f);
  if (n < which + 1) return -1;
  return which == 0 ? a : b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--serve") {
    unsigned threads = 1;
    if (argc >= 5 && std::string_view(argv[3]) == "--threads")
      threads = static_cast<unsigned>(std::strtoul(argv[4], nullptr, 10));
    if (argc < 3) usage(argv[0]);
    serve(argv[2], threads);
  }
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> unsigned long {
      if (i + 1 >= argc) usage(argv[0]);
      char* end = nullptr;
      unsigned long v = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || v == 0) usage(argv[0]);
      return v;
    };
    if (a == "--count") {
      o.count = value();
    } else if (a == "--concurrency") {
      o.concurrency = static_cast<unsigned>(value());
    } else if (a == "--workers") {
      o.workers = static_cast<unsigned>(value());
    } else if (a == "--rounds") {
      o.rounds = static_cast<unsigned>(value());
    } else if (a == "--servers") {
      o.servers.clear();
      if (i + 1 >= argc) usage(argv[0]);
      std::string_view s = argv[++i];
      while (!s.empty()) {
        std::string item(s.substr(0, s.find(',')));
        if (item != "taiga" && item != "asio") usage(argv[0]);
        o.servers.push_back(item);
        s = item.size() == s.size() ? std::string_view{} : s.substr(item.size() + 1);
      }
    } else if (a == "--quick") {
      o.count = 5'000;
      o.warmup = 500;
      o.rounds = 1;
    } else {
      usage(argv[0]);
    }
  }
  if (o.servers.empty()) usage(argv[0]);
  ::signal(SIGPIPE, SIG_IGN);
  ch::install_cleanup();
  ch::raise_nofile();

  int lo = read_int_file("/proc/sys/net/ipv4/ip_local_port_range", 0);
  int hi = read_int_file("/proc/sys/net/ipv4/ip_local_port_range", 1);
  if (lo > 0 && hi >= lo)
    std::fprintf(stderr,
                 "connect_storm: ephemeral ports %d-%d (%d); every connection ends with a reset, "
                 "so none is left in TIME_WAIT\n",
                 lo, hi, hi - lo + 1);

  std::map<std::string, std::vector<figures>> results;
  for (unsigned round = 0; round < o.rounds; ++round) {
    std::vector<std::string> order = o.servers;
    if (round % 2) std::reverse(order.begin(), order.end());
    for (const std::string& s : order) results[s].push_back(run_one(s, o));
  }
  for (const std::string& s : o.servers) {
    std::vector<double> rate, cpu;
    for (const figures& f : results[s]) {
      rate.push_back(f.conns_per_s);
      cpu.push_back(f.cpu_us_per_conn);
    }
    std::string sfx = s == "taiga" ? "" : "_" + s;
    tb::report(bench, ("conns_per_s" + sfx).c_str(), median(rate), "conn/s");
    tb::report(bench, ("cpu_us_per_conn" + sfx).c_str(), median(cpu), "us");
  }
  std::fprintf(
      stderr,
      "connect_storm: each connection: connect, 1 byte out, its echo back, close "
      "(reset); %lu connections (after %lu warm-up), %u at a time, one client thread; "
      "server W=%u in a child process, CPU from /proc/PID/task/*/schedstat; %u round(s), medians\n",
      o.count, o.warmup, o.concurrency, o.workers, o.rounds);
  return 0;
}
