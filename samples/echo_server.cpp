// A TCP echo server on taiga::net::serve: one tasklet per connection,
// code that reads as blocking, a connection limit and a graceful stop.
//
//   echo_server [--port P] [--workers N] [--max-connections M]
//       serves until SIGINT or SIGTERM, then stops gracefully (2 s for the
//       connections in flight, then kills the rest)
//   echo_server --self-test [--workers N]
//       serves on an ephemeral port, runs clients against it (messages of
//       many sizes, each echo checked byte for byte), stops gracefully and
//       exits 0 when everything came back.
//
// (UDP echo joins it once taiga::net's UDP sockets are in.)
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <thread>
#include <vector>

namespace net = taiga::net;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct options {
  unsigned short port = 7007;
  unsigned workers = taiga::all_cores;
  std::size_t max_connections = 10000;
  bool self_test = false;
};

// [doc:echo_handler]
// One connection: what comes in goes back out, until the client closes.
void echo(net::tcp_stream& s) {
  s.no_delay(true);  // an echo is a reply: no Nagle delay
  char buf[16 * 1024];
  boost::system::error_code ec;
  for (;;) {
    std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) return;  // end of stream or reset: the connection is over
    s.write_all(asio::buffer(buf, n));
  }
}
// [/doc]

// A client: `messages` messages of sizes 1 to 64 KiB, each echo compared.
// Returns the number of bytes that came back wrong or not at all.
std::size_t client(unsigned short port, int id, int messages) {
  net::tcp_stream c = net::connect({asio::ip::address_v4::loopback(), port}, {.no_delay = true});
  std::size_t bad = 0;
  std::string msg, back;
  for (int m = 0; m < messages; ++m) {
    std::size_t len =
        1 +
        (static_cast<std::size_t>(id) * 7919 + static_cast<std::size_t>(m) * 104729) % (64 * 1024);
    msg.resize(len);
    for (std::size_t i = 0; i < len; ++i) msg[i] = static_cast<char>('a' + (id + m + i) % 26);
    c.write_all(asio::buffer(msg));
    back.assign(len, '\0');
    boost::system::error_code ec;
    std::size_t got = c.read_exact(asio::buffer(back), ec);
    bad += len - got;
    for (std::size_t i = 0; i < got; ++i) bad += back[i] != msg[i];
    if (ec) break;
  }
  return bad;
}

int self_test(taiga::runtime& rt) {
  return rt.run([] {
    // [doc:serve]
    auto listener = net::tcp_listener::bind({asio::ip::address_v4::loopback(), 0});
    net::server srv = net::serve(listener, echo, {.max_connections = 64});
    // [/doc]
    unsigned short port = srv.local_endpoint().port();
    const int clients = 16, messages = 50;
    std::vector<taiga::tasklet<std::size_t>> cs;
    for (int i = 0; i < clients; ++i)
      cs.push_back(taiga::spawn([port, i] { return client(port, i, messages); }));
    std::size_t bad = 0;
    for (auto& c : cs) bad += c.join();
    // [doc:stop]
    srv.stop(2s);  // no more accepts; 2 s for connections in flight; then kill
    net::serve_stats st = srv.stats();
    // [/doc]
    std::printf(
        "echo_server self-test: %d clients x %d messages, %zu bad bytes; accepted %llu, "
        "peak %llu, killed %llu, handler errors %llu\n",
        clients, messages, bad, static_cast<unsigned long long>(st.accepted),
        static_cast<unsigned long long>(st.peak), static_cast<unsigned long long>(st.killed),
        static_cast<unsigned long long>(st.handler_errors));
    bool ok = bad == 0 && st.accepted == static_cast<std::uint64_t>(clients) && st.killed == 0 &&
              st.handler_errors == 0 && st.active == 0;
    return ok ? 0 : 1;
  });
}

int serve_until_signalled(taiga::runtime& rt, const options& o) {
  // SIGINT and SIGTERM go to a plain thread that waits for them (blocked
  // here, before the workers start, so every thread inherits the mask).
  taiga::event stop_requested;
  std::thread waiter([&] {
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, SIGINT);
    ::sigaddset(&set, SIGTERM);
    int sig = 0;
    ::sigwait(&set, &sig);
    stop_requested.set();
  });
  int rc = rt.run([&] {
    net::server srv = net::serve(net::tcp_listener::bind({asio::ip::tcp::v4(), o.port}), echo,
                                 {.max_connections = o.max_connections});
    std::printf("echo_server: TCP echo on port %u\n", srv.local_endpoint().port());
    std::fflush(stdout);
    stop_requested.wait();
    srv.stop(2s);
    auto st = srv.stats();
    std::printf("echo_server: stopped; %llu connections, peak %llu, %llu killed at the deadline\n",
                static_cast<unsigned long long>(st.accepted),
                static_cast<unsigned long long>(st.peak),
                static_cast<unsigned long long>(st.killed));
    return 0;
  });
  waiter.join();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    auto arg = [&](const char* name) { return std::strcmp(argv[i], name) == 0 && i + 1 < argc; };
    if (std::strcmp(argv[i], "--self-test") == 0) {
      o.self_test = true;
    } else if (arg("--port")) {
      o.port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (arg("--workers")) {
      o.workers = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (arg("--max-connections")) {
      o.max_connections = static_cast<std::size_t>(std::atol(argv[++i]));
    } else {
      std::fprintf(stderr,
                   "usage: echo_server [--port P] [--workers N] [--max-connections M] "
                   "[--self-test]\n");
      return 2;
    }
  }
  if (!o.self_test) {
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, SIGINT);
    ::sigaddset(&set, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
  taiga::runtime rt(taiga::runtime_config{.workers = o.workers, .name = "echo_server"});
  return o.self_test ? self_test(rt) : serve_until_signalled(rt, o);
}
