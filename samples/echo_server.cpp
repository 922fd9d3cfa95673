// A TCP and UDP echo server on taiga::net: one tasklet per TCP connection
// (taiga::net::serve), one for the UDP socket, code that reads as
// blocking, a connection limit and a graceful stop on SIGINT or SIGTERM.
//
//   echo_server [--port P] [--workers N] [--max-connections M]
//       serves until SIGINT or SIGTERM, then stops gracefully (2 s for the
//       connections in flight, then kills the rest)
//   echo_server --self-test [--workers N]
//       serves on an ephemeral port, runs clients against it (messages of
//       many sizes, each echo checked byte for byte), stops gracefully and
//       exits 0 when everything came back.
//
// UDP echo runs beside it on the same port number: each datagram goes back
// to its sender.
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

// [doc:udp_echo]
// UDP: every datagram goes back to its sender, until the socket is closed.
void udp_echo(net::udp_socket& s) {
  char buf[64 * 1024];
  boost::system::error_code ec;
  for (;;) {
    net::udp_datagram d = s.receive_from(asio::buffer(buf), ec);
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return;
    if (ec) continue;  // an ICMP error for an earlier reply: not ours to end on
    s.send_to(asio::buffer(buf, d.size), d.sender, ec);
  }
}
// [/doc]

// A UDP client: `n` datagrams, each echo compared; returns the bad ones.
int udp_client(unsigned short port, int n) {
  net::udp_socket c = net::udp_socket::bind({asio::ip::address_v4::loopback(), 0});
  int bad = 0;
  for (int i = 0; i < n; ++i) {
    std::string msg = "datagram " + std::to_string(i);
    c.send_to(asio::buffer(msg), {asio::ip::address_v4::loopback(), port});
    char back[128];
    taiga::timeout_scope t(2s);  // UDP may drop: a lost datagram counts as bad, never hangs
    try {
      net::udp_datagram d = c.receive_from(asio::buffer(back));
      bad += std::string(back, d.size) != msg;
    } catch (const taiga::timeout_error&) {
      ++bad;
    }
  }
  return bad;
}

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
    net::udp_socket udp = net::udp_socket::bind({asio::ip::address_v4::loopback(), port});
    auto udp_server = taiga::spawn([&udp] { udp_echo(udp); });
    int udp_bad = udp_client(port, 200);
    udp.close();  // ends udp_echo's receive
    udp_server.join();
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
        "peak %llu, killed %llu, handler errors %llu; UDP: 200 datagrams, %d bad\n",
        clients, messages, bad, static_cast<unsigned long long>(st.accepted),
        static_cast<unsigned long long>(st.peak), static_cast<unsigned long long>(st.killed),
        static_cast<unsigned long long>(st.handler_errors), udp_bad);
    bool ok = bad == 0 && udp_bad == 0 && st.accepted == static_cast<std::uint64_t>(clients) &&
              st.killed == 0 && st.handler_errors == 0 && st.active == 0;
    return ok ? 0 : 1;
  });
}

int serve_until_signalled(taiga::runtime& rt, const options& o) {
  return rt.run([&] {
    // Registered first, so a signal that comes while the server starts is kept.
    net::signal_listener signals({SIGINT, SIGTERM});
    net::server srv = net::serve(net::tcp_listener::bind({asio::ip::tcp::v4(), o.port}), echo,
                                 {.max_connections = o.max_connections});
    unsigned short port = srv.local_endpoint().port();
    net::udp_socket udp = net::udp_socket::bind({asio::ip::udp::v4(), port});
    auto udp_server = taiga::spawn([&udp] { udp_echo(udp); });
    std::printf("echo_server: TCP and UDP echo on port %u\n", port);
    std::fflush(stdout);
    // [doc:signals]
    int sig = signals.wait();  // parks this tasklet until SIGINT or SIGTERM
    // [/doc]
    std::printf("echo_server: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    udp.close();
    udp_server.join();
    srv.stop(2s);
    auto st = srv.stats();
    std::printf("echo_server: stopped; %llu connections, peak %llu, %llu killed at the deadline\n",
                static_cast<unsigned long long>(st.accepted),
                static_cast<unsigned long long>(st.peak),
                static_cast<unsigned long long>(st.killed));
    return 0;
  });
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
  taiga::runtime rt(taiga::runtime_config{.workers = o.workers, .name = "echo_server"});
  return o.self_test ? self_test(rt) : serve_until_signalled(rt, o);
}
