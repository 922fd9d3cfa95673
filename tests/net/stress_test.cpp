// taiga::net under stress, at 1, 2, 4 and 8 workers: connections reset
// mid-read and mid-write, ~10,000 connections open at once, kills and
// timeouts racing the completions of reads, writes, accepts and connects
// (no byte lost or duplicated, no fd or tasklet leaked), ping-pong with no
// lost wake-up, idle connections that are not a deadlock, and a killed
// reader whose writer goes on. Loops are smaller under sanitizers
// (taiga::test::scaled); the hang_guard fails a test that would hang.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <thread>
#include <vector>

#include "hang_guard.hpp"
#include "net_fixture.hpp"

namespace net = taiga::net;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using taiga::test::loopback;

namespace {

class net_stress : public taiga::test::net_workers {};
TAIGA_WORKER_COUNTS(net_stress);

// The byte at offset k of a test stream: a loss, a duplicate or a reorder
// shows as a mismatch (and in the count).
inline char pattern(std::uint64_t k) {
  return static_cast<char>((k * 0x9E3779B97F4A7C15ull) >> 56);
}

// Checks n received bytes against the pattern from offset `at`; returns the
// mismatches.
inline std::uint64_t check(const char* p, std::size_t n, std::uint64_t at) {
  std::uint64_t bad = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != pattern(at + i)) ++bad;
  return bad;
}

// A connected pair over loopback.
std::pair<net::tcp_stream, net::tcp_stream> connected_pair() {
  auto l = net::tcp_listener::bind(loopback());
  auto acc = taiga::spawn([&] { return l.accept(); });
  net::tcp_stream c = net::connect(loopback(l.local_endpoint().port()));
  net::tcp_stream s = acc.join();
  return {std::move(c), std::move(s)};
}

// Closes with a reset (SO_LINGER {1, 0}): the peer gets connection_reset,
// and no TIME_WAIT is left to use up the ephemeral ports.
void abort_close(net::tcp_stream& s) {
  error_code ec;
  s.socket().set_option(asio::socket_base::linger(true, 0), ec);
  s.close();
}

// A few microseconds of spinning (0-50 us): where a kill lands.
void spin_us(unsigned us) {
  auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < end) {
  }
}

// SIGPIPE at its default action (the process dies on one) while it lives.
class sigpipe_default {
 public:
  sigpipe_default() {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGPIPE, &sa, &saved_);
  }
  ~sigpipe_default() { ::sigaction(SIGPIPE, &saved_, nullptr); }

 private:
  struct sigaction saved_ {};
};

// Raises RLIMIT_NOFILE's soft limit to the hard one while it lives.
class nofile_at_hard_limit {
 public:
  nofile_at_hard_limit() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit r = saved_;
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  ~nofile_at_hard_limit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  rlim_t limit() const { return saved_.rlim_max; }

 private:
  rlimit saved_{};
};

// Iterations per test instance of each racing kind: 100,000 in all over
// the four kinds and the four worker counts.
constexpr long read_races = 10000, write_races = 10000, accept_races = 2500, connect_races = 2500;

// How an iteration ends the racing operation: a kill from another tasklet
// after 0-50 us, or the operation's own timeout_scope of 0-50 us.
struct racer {
  std::minstd_rand rng;
  explicit racer(unsigned seed) : rng(seed) {}
  bool use_kill() { return rng() % 2 == 0; }
  unsigned us() { return rng() % 51; }
};

}  // namespace

// ---- resets -------------------------------------------------------------------

TEST_P(net_stress, a_reset_mid_read_is_connection_reset) {
  taiga::test::hang_guard hg("net_stress.reset_mid_read");
  sigpipe_default sp;
  rt().run([] {
    const long rounds = taiga::test::scaled(200);
    for (long i = 0; i < rounds; ++i) {
      auto [a, b] = connected_pair();
      auto r = taiga::spawn([&a = a] {
        char buf[64];
        error_code ec;
        a.read_some(asio::buffer(buf), ec);
        return ec;
      });
      if (i % 2 == 0) taiga::test::wait_parked(r);  // parked, or racing the reset
      abort_close(b);
      EXPECT_EQ(r.join(), asio::error::connection_reset);
    }
  });
}

TEST_P(net_stress, a_reset_mid_write_is_an_error_not_sigpipe) {
  taiga::test::hang_guard hg("net_stress.reset_mid_write");
  sigpipe_default sp;
  rt().run([] {
    const long rounds = taiga::test::scaled(200);
    std::vector<char> chunk(256 * 1024, 'x');
    for (long i = 0; i < rounds; ++i) {
      auto [a, b] = connected_pair();
      a.socket().set_option(asio::socket_base::send_buffer_size(8192));
      auto w = taiga::spawn([&a = a, &chunk] {
        error_code ec;
        while (!ec) a.write_some(asio::buffer(chunk), ec);  // fills the buffers, parks
        return ec;
      });
      if (i % 2 == 0) taiga::test::wait_parked(w);
      abort_close(b);
      error_code ec = w.join();
      EXPECT_TRUE(ec == asio::error::connection_reset || ec == asio::error::broken_pipe) << ec;
      // Writing on: broken_pipe (an error code, not a signal).
      a.write_some(asio::buffer(chunk), ec);
      EXPECT_TRUE(ec == asio::error::connection_reset || ec == asio::error::broken_pipe) << ec;
    }
  });
}

// ---- many connections ------------------------------------------------------------

TEST_P(net_stress, ten_thousand_connections_open_at_once) {
  taiga::test::hang_guard hg("net_stress.ten_thousand_connections");
  nofile_at_hard_limit nofile;
  rt().run([&] {
    // Two fds a connection (both ends are here), and room for the rest.
    long room = static_cast<long>(nofile.limit()) - taiga::test::open_fds() - 256;
    const long n = std::min(taiga::test::scaled(10000), room / 2);
    if (n < taiga::test::scaled(10000))
      std::fprintf(stderr, "RLIMIT_NOFILE hard limit %lu: %ld connections\n",
                   static_cast<unsigned long>(nofile.limit()), n);
    auto l = net::tcp_listener::bind(loopback());
    auto port = l.local_endpoint().port();
    auto srv = net::serve(l, [](net::tcp_stream& s) {
      s.write_all(asio::buffer("x", 1));
      char c;
      error_code ec;
      s.read_some(asio::buffer(&c, 1), ec);  // until the client resets
    });
    const int dialers = 16;
    std::vector<taiga::tasklet<std::vector<net::tcp_stream>>> ds;
    for (int d = 0; d < dialers; ++d) {
      ds.push_back(taiga::spawn([port, count = n / dialers + (d < n % dialers ? 1 : 0)] {
        std::vector<net::tcp_stream> mine;
        for (long i = 0; i < count; ++i) {
          mine.push_back(net::connect(loopback(port)));
          char c;
          mine.back().read_exact(asio::buffer(&c, 1));  // served
        }
        return mine;
      }));
    }
    std::vector<net::tcp_stream> all;
    for (auto& d : ds)
      for (auto& s : d.join()) all.push_back(std::move(s));
    EXPECT_EQ(static_cast<long>(all.size()), n);
    auto st = srv.stats();
    EXPECT_EQ(static_cast<long>(st.active), n);
    EXPECT_EQ(static_cast<long>(st.peak), n);
    EXPECT_EQ(st.accept_errors, 0u);
    for (auto& s : all) abort_close(s);
    for (int i = 0; i < 10000 && srv.stats().active != 0; ++i) taiga::this_tasklet::sleep_for(1ms);
    EXPECT_EQ(srv.stats().active, 0u);
    srv.stop(5s);
    EXPECT_EQ(srv.stats().killed, 0u);
  });
}

// ---- kills and timeouts racing completions ---------------------------------------

TEST_P(net_stress, kill_or_timeout_racing_a_read_loses_and_duplicates_no_byte) {
  taiga::test::hang_guard hg("net_stress.read_races");
  rt().run([&] {
    auto [a, b] = connected_pair();
    racer rc(GetParam() * 7919u + 1);
    std::uint64_t sent = 0, got = 0, bad = 0, completed = 0;
    const long rounds = taiga::test::scaled(read_races);
    for (long i = 0; i < rounds; ++i) {
      bool kill = rc.use_kill();
      unsigned us = rc.us();
      auto r = taiga::spawn([&a = a, &got, &bad, &completed, kill, us] {
        char buf[48];
        std::size_t n;
        try {
          if (kill) {
            n = a.read_some(asio::buffer(buf));
          } else {
            taiga::timeout_scope t{std::chrono::microseconds(us)};
            n = a.read_some(asio::buffer(buf));
          }
        } catch (const taiga::timeout_error&) {
          return;
        }
        // Completed (maybe with a kill pending: it raises at the next park).
        bad += check(buf, n, got);
        got += n;
        ++completed;
      });
      // The peer writes at about the same moment.
      std::string chunk(1 + rc.rng() % 32, '\0');
      for (std::size_t k = 0; k < chunk.size(); ++k) chunk[k] = pattern(sent + k);
      if (rc.rng() % 2) taiga::this_tasklet::yield();
      b.write_all(asio::buffer(chunk));
      sent += chunk.size();
      if (kill) {
        spin_us(us);
        r.kill();
      }
      try {
        r.join();
      } catch (const taiga::tasklet_killed&) {
      }
    }
    // What no read returned is still there, in order.
    b.shutdown_send();
    char buf[4096];
    for (;;) {
      error_code ec;
      std::size_t n = a.read_some(asio::buffer(buf), ec);
      if (ec) {
        EXPECT_EQ(ec, asio::error::eof);
        break;
      }
      bad += check(buf, n, got);
      got += n;
    }
    EXPECT_EQ(got, sent);
    EXPECT_EQ(bad, 0u);
    EXPECT_GT(completed, 0u);
  });
}

TEST_P(net_stress, kill_or_timeout_racing_a_write_loses_and_duplicates_no_byte) {
  taiga::test::hang_guard hg("net_stress.write_races");
  rt().run([&] {
    auto [a, b] = connected_pair();
    // Small buffers: writes park often, while the reader drains.
    a.socket().set_option(asio::socket_base::send_buffer_size(4096));
    b.socket().set_option(asio::socket_base::receive_buffer_size(4096));
    std::uint64_t got = 0, bad = 0;
    auto reader = taiga::spawn([&b = b, &got, &bad] {
      std::minstd_rand rng(3);
      char buf[1500];
      for (;;) {
        error_code ec;
        std::size_t n = b.read_some(asio::buffer(buf, 1 + rng() % sizeof buf), ec);
        if (ec) return ec;
        bad += check(buf, n, got);
        got += n;
        if (rng() % 4 == 0) taiga::this_tasklet::yield();
      }
    });
    racer rc(GetParam() * 104729u + 5);
    std::uint64_t sent = 0, parked_kills = 0;
    std::vector<char> chunk(16384);
    const long rounds = taiga::test::scaled(write_races);
    for (long i = 0; i < rounds; ++i) {
      bool kill = rc.use_kill();
      unsigned us = rc.us();
      std::size_t len = 1 + rc.rng() % chunk.size();
      for (std::size_t k = 0; k < len; ++k) chunk[k] = pattern(sent + k);
      auto w = taiga::spawn([&a = a, &chunk, &sent, len, kill, us] {
        try {
          std::size_t n;
          if (kill) {
            n = a.write_some(asio::buffer(chunk.data(), len));
          } else {
            taiga::timeout_scope t{std::chrono::microseconds(us)};
            n = a.write_some(asio::buffer(chunk.data(), len));
          }
          sent += n;  // written: counted before any further park
        } catch (const taiga::timeout_error&) {
        }
      });
      if (kill) {
        spin_us(us);
        if (w.state() == taiga::tasklet_state::parked) ++parked_kills;
        w.kill();
      }
      try {
        w.join();
      } catch (const taiga::tasklet_killed&) {
      }
    }
    a.shutdown_send();
    EXPECT_EQ(reader.join(), asio::error::eof);
    EXPECT_EQ(got, sent);
    EXPECT_EQ(bad, 0u);
    EXPECT_GT(sent, 0u);
  });
}

TEST_P(net_stress, kill_or_timeout_racing_an_accept_loses_no_connection) {
  taiga::test::hang_guard hg("net_stress.accept_races");
  rt().run([&] {
    auto l = net::tcp_listener::bind(loopback());
    auto port = l.local_endpoint().port();
    std::map<unsigned short, net::tcp_stream> pending;  // clients not yet accepted, by port
    std::uint64_t accepted = 0, unknown = 0;
    auto take = [&](net::tcp_stream& s) {
      auto it = pending.find(s.remote_endpoint().port());
      if (it == pending.end()) {
        ++unknown;
      } else {
        abort_close(it->second);
        pending.erase(it);
      }
      ++accepted;
      abort_close(s);
    };
    racer rc(GetParam() * 31u + 9);
    const long rounds = taiga::test::scaled(accept_races);
    for (long i = 0; i < rounds; ++i) {
      bool kill = rc.use_kill();
      unsigned us = rc.us();
      auto t = taiga::spawn([&l, kill, us]() -> net::tcp_stream {
        try {
          if (kill) return l.accept();
          taiga::timeout_scope ts{std::chrono::microseconds(us)};
          return l.accept();
        } catch (const taiga::timeout_error&) {
          return {};
        }
      });
      net::tcp_stream c = net::connect(loopback(port));
      auto cport = c.local_endpoint().port();
      pending.emplace(cport, std::move(c));
      if (kill) {
        spin_us(us);
        t.kill();
      }
      try {
        net::tcp_stream s = t.join();
        if (s.is_open()) take(s);
      } catch (const taiga::tasklet_killed&) {
      }
    }
    // Every connection not accepted in its round is still in the backlog.
    while (!pending.empty()) {
      taiga::timeout_scope ts(5s);
      net::tcp_stream s = l.accept();
      take(s);
    }
    EXPECT_EQ(accepted, static_cast<std::uint64_t>(rounds));
    EXPECT_EQ(unknown, 0u);
  });
}

TEST_P(net_stress, kill_or_timeout_racing_a_connect_leaks_nothing) {
  taiga::test::hang_guard hg("net_stress.connect_races");
  rt().run([&] {
    auto l = net::tcp_listener::bind(loopback());
    auto port = l.local_endpoint().port();
    auto srv = net::serve(l, [](net::tcp_stream& s) {
      char c;
      error_code ec;
      s.read_some(asio::buffer(&c, 1), ec);  // until the client goes
    });
    racer rc(GetParam() * 13u + 2);
    std::uint64_t connected = 0;
    const long rounds = taiga::test::scaled(connect_races);
    for (long i = 0; i < rounds; ++i) {
      bool kill = rc.use_kill();
      unsigned us = rc.us();
      auto t = taiga::spawn([port, kill, us, &connected] {
        net::tcp_stream s;
        try {
          if (kill) {
            s = net::connect(loopback(port));
          } else {
            taiga::timeout_scope ts{std::chrono::microseconds(us)};
            s = net::connect(loopback(port));
          }
        } catch (const taiga::timeout_error&) {
          return;
        }
        EXPECT_TRUE(s.is_open());
        ++connected;
        abort_close(s);
      });
      if (kill) {
        spin_us(us);
        t.kill();
      }
      try {
        t.join();
      } catch (const taiga::tasklet_killed&) {
      }
    }
    EXPECT_GT(connected, 0u);
    srv.stop(10s);  // the clients are gone: every handler ends on its own
    EXPECT_EQ(srv.stats().killed, 0u);
    EXPECT_EQ(srv.stats().handler_errors, 0u);
  });
}

// ---- wake-ups, idleness, a killed reader ----------------------------------------

TEST_P(net_stress, ping_pong_loses_no_wake_up) {
  rt().run([] {
    auto [a, b] = connected_pair();
    a.no_delay(true);
    b.no_delay(true);
    // A million in all over the four worker counts.
    const long rounds = taiga::test::scaled(250000);
    auto pong = taiga::spawn([&b = b, rounds] {
      char c;
      for (long i = 0; i < rounds; ++i) {
        b.read_exact(asio::buffer(&c, 1));
        b.write_all(asio::buffer(&c, 1));
      }
    });
    long bad = 0;
    // A lost wake-up hangs a round trip: each chunk of 25,000 (a quarter
    // second here) has a hang_guard of its own, so a slow, loaded machine
    // does not fail the test, a hang does.
    const long chunk = 25000;
    for (long from = 0; from < rounds; from += chunk) {
      taiga::test::hang_guard hg("net_stress.ping_pong");
      for (long i = from; i < std::min(rounds, from + chunk); ++i) {
        char c = static_cast<char>(i), back = 0;
        a.write_all(asio::buffer(&c, 1));
        a.read_exact(asio::buffer(&back, 1));
        if (back != c) ++bad;
      }
    }
    taiga::test::hang_guard hg("net_stress.ping_pong (join)");
    pong.join();
    EXPECT_EQ(bad, 0);
  });
}

TEST_P(net_stress, idle_connections_parked_on_io_are_not_a_deadlock) {
  taiga::test::hang_guard hg("net_stress.idle");
  // This test's own runtime: its deadlock handler records.
  std::atomic<int> reports{0};
  rt_.reset();
  taiga::runtime_config c;
  c.workers = GetParam();
  c.name = "net-idle-test";
  c.deadlock_handler = [&](const taiga::deadlock_report& r) {
    std::fprintf(stderr, "%s\n", r.text().c_str());
    reports.fetch_add(1);
  };
  rt_.emplace(std::move(c));
  // A plain thread, outside the runtime, ends the idle time: it connects,
  // waits 3 s and writes a byte that the main tasklet, parked in read,
  // waits for.
  auto l = std::optional<net::tcp_listener>();
  std::atomic<unsigned short> port{0};
  std::thread poker;
  rt().run([&] {
    l.emplace(net::tcp_listener::bind(loopback()));
    port = l->local_endpoint().port();
    auto ls = net::tcp_listener::bind(loopback());
    const int idle = 20;
    auto srv = net::serve(ls,
                          [](net::tcp_stream& s) {
                            char x;
                            error_code ec;
                            s.read_some(asio::buffer(&x, 1), ec);  // idle until the client goes
                          },
                          {.max_connections = idle / 2});  // the accept loop parks at the limit too
    std::vector<taiga::tasklet<void>> clients;
    for (int i = 0; i < idle; ++i) {
      clients.push_back(taiga::spawn([p = ls.local_endpoint().port()] {
        net::tcp_stream s = net::connect(loopback(p));
        char x;
        error_code ec;
        s.read_some(asio::buffer(&x, 1), ec);  // idle: the server never writes
      }));
    }
    while (srv.stats().active < static_cast<std::uint64_t>(idle / 2))
      taiga::this_tasklet::sleep_for(1ms);
    taiga::this_tasklet::sleep_for(20ms);  // the rest settle in the backlog
    poker = std::thread([&port] {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(port.load());
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        std::this_thread::sleep_for(3s);
        (void)::write(fd, "x", 1);
      }
      ::close(fd);
    });
    // Parked on I/O, as every other tasklet: no timer is pending.
    net::tcp_stream s = l->accept();
    char x;
    s.read_exact(asio::buffer(&x, 1));
    EXPECT_EQ(x, 'x');
    for (auto& t : clients) t.kill();
    for (auto& t : clients) {
      try {
        t.join();
      } catch (const taiga::tasklet_killed&) {
      }
    }
    srv.stop(5s);
    l.reset();
  });
  poker.join();
  EXPECT_EQ(reports.load(), 0);
}

TEST_P(net_stress, killing_a_reader_leaves_its_running_writer_alone) {
  taiga::test::hang_guard hg("net_stress.killed_reader_running_writer");
  rt().run([] {
    auto [a, b] = connected_pair();
    a.socket().set_option(asio::socket_base::send_buffer_size(8192));
    const std::uint64_t total = static_cast<std::uint64_t>(taiga::test::scaled(8 << 20));
    auto writer = taiga::spawn([&a = a, total] {
      std::vector<char> chunk(20000);
      for (std::uint64_t sent = 0; sent < total;) {
        std::size_t len =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), total - sent));
        for (std::size_t k = 0; k < len; ++k) chunk[k] = pattern(sent + k);
        a.write_all(asio::buffer(chunk.data(), len));
        sent += len;
      }
      a.shutdown_send();
    });
    std::uint64_t got = 0, bad = 0;
    auto drain = taiga::spawn([&b = b, &got, &bad] {
      char buf[3000];
      for (;;) {
        error_code ec;
        std::size_t n = b.read_some(asio::buffer(buf), ec);
        if (ec) return;
        bad += check(buf, n, got);
        got += n;
        if (got % 7 == 0) taiga::this_tasklet::sleep_for(50us);  // slow now and then
      }
    });
    // Readers of `a` (whose peer never writes) killed while the writer runs.
    int kills = 0;
    while (writer.alive()) {
      auto r = taiga::spawn([&a = a] {
        char buf[16];
        a.read_some(asio::buffer(buf));
      });
      if (kills % 2 == 0) taiga::test::wait_parked(r);
      r.kill();
      EXPECT_THROW(r.join(), taiga::tasklet_killed);
      ++kills;
    }
    writer.join();
    drain.join();
    EXPECT_EQ(got, total);
    EXPECT_EQ(bad, 0u);
    EXPECT_GT(kills, 0);
  });
}

// tcp_listener::close() racing the accepting tasklet: close() cancels the
// parked accept while that tasklet, seeing the flag, closes the socket
// itself (serve()'s stop does this on every stop). Unordered, the cancel
// read the reactor state the close was freeing (UBSan: a null
// descriptor_state in epoll_reactor::cancel_ops).
TEST_P(net_stress, closing_a_listener_while_it_accepts_races_nothing) {
  taiga::test::hang_guard hg("net_stress.close_while_accepting");
  rt().run([&] {
    racer rc(GetParam() * 17u + 3);
    const long rounds = taiga::test::scaled(2000);
    for (long i = 0; i < rounds; ++i) {
      auto l = net::tcp_listener::bind(loopback());
      auto port = l.local_endpoint().port();
      auto acc = taiga::spawn([&l] {
        for (;;) {
          error_code ec;
          net::tcp_stream s = l.accept(ec);
          if (ec == asio::error::operation_aborted) return;
          if (s.is_open()) abort_close(s);
        }
      });
      error_code ec;  // reset: the accepting side closed first
      net::tcp_stream c = net::connect(loopback(port), {}, ec);
      spin_us(rc.us());
      l.close();
      acc.join();
      if (c.is_open()) abort_close(c);
    }
  });
}

// resolve runs getaddrinfo on the blocking pool; a kill or timeout ends
// the wait at once while the lookup finishes on its thread. Racing the
// lookup's completion thousands of times leaves no tasklet behind, and
// every lookup that finished first returned the loopback address.
TEST_P(net_stress, kill_or_timeout_racing_a_resolve_leaks_nothing) {
  taiga::test::hang_guard hg("net_stress.resolve_races");
  rt().run([&] {
    racer rc(GetParam() * 17u + 5);
    long resolved = 0, interrupted = 0;
    const long rounds = taiga::test::scaled(2500);
    for (long i = 0; i < rounds; ++i) {
      bool kill = rc.use_kill();
      unsigned us = rc.us();
      auto t = taiga::spawn([kill, us, &resolved, &interrupted] {
        try {
          std::optional<taiga::timeout_scope> ts;
          if (!kill) ts.emplace(std::chrono::microseconds(us));
          auto eps = net::resolve("localhost", "80");
          ASSERT_FALSE(eps.empty());
          EXPECT_TRUE(eps.front().address().is_loopback());
          ++resolved;
        } catch (const taiga::timeout_error&) {
          ++interrupted;
        }
      });
      if (kill) {
        spin_us(us);
        t.kill();
      }
      try {
        t.join();
      } catch (const taiga::tasklet_killed&) {
        ++interrupted;
      }
    }
    EXPECT_EQ(resolved + interrupted, rounds);
  });
}
