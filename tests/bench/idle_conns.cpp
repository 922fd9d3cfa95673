// idle_conns: the memory an idle connection costs a taiga server: N
// loopback TCP connections (10,000), each served by a tasklet parked in
// tcp_stream::wait_readable() (no read buffer held while idle: the 1-byte
// buffer it reads into is touched only once data came).
//
// The server is this process: a runtime of W workers (all cores), an accept
// tasklet, one detached tasklet per connection. The client is a child
// process (this program re-executed as `bench_idle_conns --client PORT`,
// raw non-blocking sockets and epoll) that holds the other ends, so that
// neither its file descriptors nor its memory count here; it takes commands
// on its stdin and answers on its stdout. The server asks for connections in
// batches of 1,000 (the accept queue never overflows) and waits until each
// batch's tasklets are parked.
//
// Figures:
//   conns         N (smaller than asked when RLIMIT_NOFILE's hard limit is
//                 below N + 100 in either process: a note on stderr says so);
//   rss_per_conn  (RSS with N idle connections, after a 0.5 s settle - RSS
//                 before the first connect) / N, RSS from /proc/self/statm;
//                 the kernel's socket memory is not in it;
//   wake_all_ms   the client writes 1 byte on every connection, each
//                 tasklet reads it and writes it back: the client's time
//                 from its first write to the last echo read. Proves they
//                 are all live.
// Then the client closes every connection with a reset; each tasklet ends
// (its wait_readable returns, the read fails) and closes its socket. The
// self-check: every tasklet ended within 10 s (else the runtime's dump goes
// to stderr), every echo came back, and the server holds as many file
// descriptors as before the first connect.
//
//   bench_idle_conns [--count N] [--workers W] [--quick]
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <taiga/net.hpp>
#include <taiga/runtime.hpp>
#include <vector>

#include "bench_child.hpp"
#include "bench_util.hpp"

namespace tb = taiga_bench;
namespace ch = taiga_bench::child;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr const char* bench = "idle_conns";
constexpr unsigned batch = 1000;

long rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * ::sysconf(_SC_PAGESIZE);
}

long open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  long n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // opendir's own
}

// ---- the client (child process) ----

[[noreturn]] void client_fail(const std::string& why) {
  std::printf("err %s\n", why.c_str());
  std::fflush(stdout);
  std::exit(1);
}

[[noreturn]] void run_client(unsigned short port) {
  ch::die_with_parent();
  ::signal(SIGPIPE, SIG_IGN);
  ch::raise_nofile();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) client_fail(std::string("epoll_create1: ") + std::strerror(errno));
  std::vector<int> fds;
  std::vector<epoll_event> evs(1024);
  auto answer = [](const std::string& s) {
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  };
  answer("ready");
  for (;;) {
    bool ok = false;
    std::string cmd = ch::read_line(STDIN_FILENO, 600s, &ok);
    if (!ok) std::exit(0);  // the server is done with us
    if (cmd.rfind("connect ", 0) == 0) {
      unsigned k = static_cast<unsigned>(std::strtoul(cmd.c_str() + 8, nullptr, 10));
      std::size_t base = fds.size();
      for (unsigned i = 0; i < k; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) client_fail(std::string("socket: ") + std::strerror(errno));
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
            errno != EINPROGRESS)
          client_fail(std::string("connect: ") + std::strerror(errno));
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.u32 = static_cast<std::uint32_t>(fds.size());
        ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        fds.push_back(fd);
      }
      unsigned pending = k;
      auto deadline = tb::clock_type::now() + 10s;
      while (pending > 0) {
        int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
        if (n < 0 && errno != EINTR)
          client_fail(std::string("epoll_wait: ") + std::strerror(errno));
        for (int j = 0; j < n; ++j) {
          int fd = fds[evs[j].data.u32];
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) client_fail(std::string("connect: ") + std::strerror(err));
          ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          --pending;
        }
        if (pending > 0 && tb::clock_type::now() > deadline)
          client_fail(std::to_string(pending) + " connects not done in 10 s");
      }
      (void)base;
      answer("ok " + std::to_string(fds.size()));
    } else if (cmd == "wake") {
      for (std::size_t i = 0; i < fds.size(); ++i) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<std::uint32_t>(i);
        ::epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
      }
      std::vector<char> echoed(fds.size(), 0);
      auto t0 = tb::clock_type::now();
      for (int fd : fds) {
        const char b = 'w';
        if (::send(fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
          client_fail(std::string("send: ") + std::strerror(errno));
      }
      std::size_t pending = fds.size();
      auto deadline = t0 + 10s;
      while (pending > 0) {
        int n = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
        if (n < 0 && errno != EINTR)
          client_fail(std::string("epoll_wait: ") + std::strerror(errno));
        for (int j = 0; j < n; ++j) {
          std::uint32_t i = evs[j].data.u32;
          char b = 0;
          ssize_t r = ::recv(fds[i], &b, 1, MSG_DONTWAIT);
          if (r < 0 && errno == EAGAIN) continue;
          if (r != 1 || b != 'w' || echoed[i])
            client_fail(r == 0 ? "the server closed a connection" : "a wrong echo");
          echoed[i] = 1;
          ::epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], nullptr);
          --pending;
        }
        if (pending > 0 && tb::clock_type::now() > deadline)
          client_fail(std::to_string(pending) + " echoes missing after 10 s");
      }
      char ms[64];
      std::snprintf(ms, sizeof ms, "ok %.3f", tb::ms_since(t0));
      answer(ms);
    } else if (cmd == "close") {
      for (int fd : fds) {
        linger lg{1, 0};  // a reset: no TIME_WAIT left behind
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        ::close(fd);
      }
      fds.clear();
      answer("ok");
    } else {
      client_fail("unknown command \"" + cmd + "\"");
    }
  }
}

// ---- the server (this process) ----

struct counters {
  std::atomic<long> live{0};     // connection tasklets alive
  std::atomic<long> waiting{0};  // of them, in (or entering) wait_readable
  std::atomic<long> echoed{0};   // bytes echoed
  std::atomic<long> errors{0};   // a failed wait, read or write other than the peer's reset
};

void serve_conn(taiga::net::tcp_stream s, counters& c) {
  struct alive {
    counters& c;
    ~alive() { c.live.fetch_sub(1); }
  } guard{c};
  boost::system::error_code ec;
  for (;;) {
    c.waiting.fetch_add(1);
    s.wait_readable(ec);
    c.waiting.fetch_sub(1);
    if (ec) break;
    char b;
    s.read_some(asio::buffer(&b, 1), ec);
    if (ec) break;
    s.write_all(asio::buffer(&b, 1), ec);
    if (ec) break;
    c.echoed.fetch_add(1);
  }
  if (ec != asio::error::eof && ec != asio::error::connection_reset) {
    c.errors.fetch_add(1);
    std::fprintf(stderr, "idle_conns: a connection ended with %s\n", ec.message().c_str());
  }
}

struct results {
  long conns = 0;
  long rss_before = 0, rss_idle = 0, rss_after = 0;
  double connect_ms = 0, wake_ms = 0, close_ms = 0;
};

// Parks (1 ms sleeps) until pred() holds, for at most `limit`; on timeout,
// dumps the runtime's tasklets to stderr and fails.
template <class Pred>
void wait_for(Pred pred, std::chrono::milliseconds limit, const std::string& what) {
  auto deadline = tb::clock_type::now() + limit;
  while (!pred()) {
    if (tb::clock_type::now() > deadline) {
      std::fprintf(stderr, "idle_conns: timed out waiting for %s; the runtime's tasklets:\n",
                   what.c_str());
      taiga::runtime::current()->dump(std::cerr);
      std::cerr.flush();
      tb::fail(bench, "timed out waiting for " + what);
    }
    taiga::this_tasklet::sleep_for(1ms);
  }
}

results run_server(long n, unsigned workers) {
  counters c;
  results res;
  res.conns = n;
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  rt.run([&] {
    auto l = taiga::net::tcp_listener::bind(
        asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0), {.backlog = 4096});
    unsigned short port = l.local_endpoint().port();
    ch::process p = ch::start(bench, {"--client", std::to_string(port)}, true);
    auto ask = [&](const std::string& cmd) {
      std::string reply = taiga::blocking([&] {
        if (!cmd.empty() && !ch::write_line(p.to_child, cmd)) return std::string("(write failed)");
        bool ok = false;
        std::string r = ch::read_line(p.from_child, 60s, &ok);
        return ok ? r : "(no answer: " + r + ")";
      });
      if (reply.rfind("ok", 0) != 0 && reply != "ready")
        tb::fail(bench, "client, \"" + cmd + "\": " + reply);
      return reply;
    };
    ask("");  // "ready" (and the blocking pool's thread now exists)

    std::atomic<long> accepted{0};
    std::atomic<bool> accept_failed{false};
    boost::system::error_code accept_ec;  // read once accept_failed is set
    auto acceptor = taiga::spawn([&] {
      for (long i = 0; i < n; ++i) {
        boost::system::error_code ec;
        taiga::net::tcp_stream s = l.accept(ec);
        if (ec) {
          accept_ec = ec;
          accept_failed.store(true);
          return;
        }
        c.live.fetch_add(1);
        taiga::spawn([s = std::move(s), &c]() mutable { serve_conn(std::move(s), c); }).detach();
        accepted.fetch_add(1);
        if ((i & 63) == 63) taiga::this_tasklet::yield();
      }
    });

    taiga::this_tasklet::sleep_for(200ms);
    long fds_before = open_fds();
    res.rss_before = rss_bytes();

    auto t0 = tb::clock_type::now();
    for (long done = 0; done < n;) {
      long k = std::min<long>(batch, n - done);
      ask("connect " + std::to_string(k));
      done += k;
      wait_for([&] { return c.waiting.load() >= done || accept_failed.load(); }, 10s,
               std::to_string(done) + " connections parked");
      if (accept_failed.load()) tb::fail(bench, "accept: " + accept_ec.message());
    }
    res.connect_ms = tb::ms_since(t0);
    acceptor.join();
    taiga::this_tasklet::sleep_for(500ms);  // settle
    res.rss_idle = rss_bytes();

    std::string woke = ask("wake");
    res.wake_ms = std::strtod(woke.c_str() + 3, nullptr);
    wait_for([&] { return c.echoed.load() >= n && c.waiting.load() >= n; }, 10s,
             "every tasklet to echo and park again");

    auto t1 = tb::clock_type::now();
    ask("close");
    wait_for([&] { return c.live.load() == 0; }, 10s, "every connection tasklet to end");
    res.close_ms = tb::ms_since(t1);
    long fds_after = open_fds();
    res.rss_after = rss_bytes();
    l.close();
    int status = ch::stop(p, false);
    if (c.echoed.load() != n)
      tb::fail(bench, std::to_string(c.echoed.load()) + " echoes for " + std::to_string(n));
    if (c.errors.load() != 0)
      tb::fail(bench, std::to_string(c.errors.load()) + " connection errors");
    if (fds_after != fds_before)
      tb::fail(bench, "the server holds " + std::to_string(fds_after) +
                          " file descriptors after every connection ended, " +
                          std::to_string(fds_before) + " before");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      tb::fail(bench, "the client exited with status " + std::to_string(status));
  });
  return res;
}

[[noreturn]] void usage(const char* prog) {
  std::fprintf(stderr, "usage: %s [--count N] [--workers W] [--quick]\n", prog);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--client")
    run_client(static_cast<unsigned short>(std::strtoul(argv[2], nullptr, 10)));
  long n = 10'000;
  unsigned workers = taiga::all_cores;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> unsigned long {
      if (i + 1 >= argc) usage(argv[0]);
      char* end = nullptr;
      unsigned long v = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || v == 0) usage(argv[0]);
      return v;
    };
    if (a == "--count")
      n = static_cast<long>(value());
    else if (a == "--workers")
      workers = static_cast<unsigned>(value());
    else if (a == "--quick")
      n = 2'000;
    else
      usage(argv[0]);
  }
  ::signal(SIGPIPE, SIG_IGN);
  ch::install_cleanup();
  // Each process holds one end of every connection (the client is a child
  // process with the same limits), plus a few descriptors of its own.
  long nofile = static_cast<long>(ch::raise_nofile());
  if (nofile < n + 100) {
    long m = std::max(100L, nofile - 100);
    std::fprintf(stderr,
                 "idle_conns: RLIMIT_NOFILE's hard limit is %ld, below %ld connections + 100: "
                 "running %ld connections instead\n",
                 nofile, n, m);
    n = m;
  }

  results r = run_server(n, workers);
  double per = static_cast<double>(r.rss_idle - r.rss_before) / static_cast<double>(r.conns);
  tb::report(bench, "conns", static_cast<double>(r.conns), "count");
  tb::report(bench, "rss_per_conn", per, "B");
  tb::report(bench, "wake_all_ms", r.wake_ms, "ms");
  std::fprintf(stderr,
               "idle_conns: %ld connections, %s workers: RSS %.1f MiB before, %.1f MiB idle "
               "(+%.0f B per connection), %.1f MiB after every connection ended (+%.0f B per "
               "connection still held); connect + accept + park %.0f ms, wake all %.1f ms, "
               "close all %.0f ms\n",
               r.conns,
               workers == taiga::all_cores ? std::to_string(tb::all_cores()).c_str()
                                           : std::to_string(workers).c_str(),
               r.rss_before / 1048576.0, r.rss_idle / 1048576.0, per, r.rss_after / 1048576.0,
               static_cast<double>(r.rss_after - r.rss_before) / static_cast<double>(r.conns),
               r.connect_ms, r.wake_ms, r.close_ms);
  return 0;
}
