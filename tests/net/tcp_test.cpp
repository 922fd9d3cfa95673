// taiga::net TCP: streams and listeners over loopback, at 1, 2, 4 and 8
// workers; every test ends with no tasklet, I/O wait or fd left.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <vector>

#include "net_fixture.hpp"

namespace net = taiga::net;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using taiga::test::loopback;

namespace {

class tcp : public taiga::test::net_workers {};
TAIGA_WORKER_COUNTS(tcp);

// An echo server on an ephemeral port: one tasklet per connection.
struct echo_server {
  net::tcp_listener l;
  taiga::tasklet<void> acceptor;
  explicit echo_server(int conns) : l(net::tcp_listener::bind(loopback())) {
    acceptor = taiga::spawn([this, conns] {
      std::vector<taiga::tasklet<void>> all;
      for (int i = 0; i < conns; ++i) {
        all.push_back(taiga::spawn([s = l.accept()]() mutable {
          char buf[4096];
          boost::system::error_code ec;
          for (;;) {
            std::size_t n = s.read_some(asio::buffer(buf), ec);
            if (ec) return;
            s.write_all(asio::buffer(buf, n));
          }
        }));
      }
      for (auto& t : all) t.join();
    });
  }
  unsigned short port() const { return l.local_endpoint().port(); }
};

}  // namespace

TEST_P(tcp, echo_many_connections_exact_bytes) {
  rt().run([] {
    const int conns = 20;
    const long rounds = taiga::test::scaled(200);
    echo_server srv(conns);
    std::vector<taiga::tasklet<long>> clients;
    for (int c = 0; c < conns; ++c) {
      clients.push_back(taiga::spawn([&srv, c, rounds] {
        net::tcp_stream s = net::connect(loopback(srv.port()));
        long got = 0;
        for (long r = 0; r < rounds; ++r) {
          std::string msg = "hello " + std::to_string(c) + " " + std::to_string(r);
          s.write_all(asio::buffer(msg));
          std::string back(msg.size(), '\0');
          EXPECT_EQ(s.read_exact(asio::buffer(back)), msg.size());
          EXPECT_EQ(back, msg);
          got += static_cast<long>(back.size());
        }
        return got;
      }));
    }
    for (auto& c : clients) EXPECT_GT(c.join(), 0);
    srv.acceptor.join();
  });
}

TEST_P(tcp, eof_when_the_peer_closes_and_error_code_form) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto t = taiga::spawn([&] {
      net::tcp_stream s = l.accept();
      s.write_all(asio::buffer(std::string("bye")));
    });  // s closes when the tasklet ends
    net::tcp_stream c = net::connect(loopback(l.local_endpoint().port()));
    std::string buf(3, '\0');
    EXPECT_EQ(c.read_exact(asio::buffer(buf)), 3u);
    EXPECT_EQ(buf, "bye");
    t.join();
    boost::system::error_code ec;
    char x;
    EXPECT_EQ(c.read_some(asio::buffer(&x, 1), ec), 0u);
    EXPECT_EQ(ec, asio::error::eof);
    try {
      c.read_some(asio::buffer(&x, 1));
      ADD_FAILURE() << "no throw";
    } catch (const std::system_error& e) {
      EXPECT_NE(std::string(e.what()).find("read from 127.0.0.1:"), std::string::npos) << e.what();
    }
  });
}

TEST_P(tcp, read_until_keeps_what_follows_and_enforces_its_limit) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto t = taiga::spawn([&] {
      net::tcp_stream s = l.accept();
      s.write_all(asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY")));
      s.write_all(asio::buffer(std::string(100, 'z')));
      char x;
      boost::system::error_code ec;
      s.read_some(asio::buffer(&x, 1), ec);  // until the client closes
    });
    net::tcp_stream c = net::connect(loopback(l.local_endpoint().port()));
    std::string buf;
    std::size_t n = c.read_until(buf, "\r\n\r\n", 1024);
    EXPECT_EQ(buf.substr(0, n), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    buf.erase(0, n);
    EXPECT_EQ(buf.substr(0, 4), "BODY");  // kept for the next read
    boost::system::error_code ec;
    c.read_until(buf, "\n", 50, ec);
    EXPECT_EQ(ec, asio::error::message_size);
    EXPECT_GE(buf.size(), 50u);  // what was read stays
    c.close();
    t.join();
  });
}

TEST_P(tcp, connect_refused_and_port_in_use_name_the_endpoint) {
  rt().run([] {
    unsigned short port;
    {
      auto l = net::tcp_listener::bind(loopback());
      port = l.local_endpoint().port();
      try {
        net::tcp_listener::bind(loopback(port), {.reuse_address = false});
        ADD_FAILURE() << "bound twice";
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), std::errc::address_in_use);
        EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)),
                  std::string::npos)
            << e.what();
      }
    }
    try {
      net::connect(loopback(port));
      ADD_FAILURE() << "connected to a closed port";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::connection_refused);
      EXPECT_NE(std::string(e.what()).find("connect to 127.0.0.1:"), std::string::npos) << e.what();
    }
  });
}

TEST_P(tcp, a_killed_reader_leaves_its_writer_running) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    net::tcp_stream peer;
    auto acc = taiga::spawn([&] { peer = l.accept(); });
    net::tcp_stream c = net::connect(loopback(l.local_endpoint().port()));
    acc.join();
    auto reader = taiga::spawn([&] {
      char buf[16];
      c.read_some(asio::buffer(buf));  // parks: nothing comes
    });
    taiga::test::wait_parked(reader);
    reader.kill();
    EXPECT_THROW(reader.join(), taiga::tasklet_killed);
    // The write direction was not cancelled; the stream still works both ways.
    c.write_all(asio::buffer(std::string("ping")));
    std::string got(4, '\0');
    peer.read_exact(asio::buffer(got));
    EXPECT_EQ(got, "ping");
    peer.write_all(asio::buffer(std::string("pong")));
    c.read_exact(asio::buffer(got));
    EXPECT_EQ(got, "pong");
  });
}

TEST_P(tcp, a_read_timed_out_by_its_scope_loses_no_byte) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    net::tcp_stream peer;
    auto acc = taiga::spawn([&] { peer = l.accept(); });
    net::tcp_stream c = net::connect(loopback(l.local_endpoint().port()));
    acc.join();
    char buf[8];
    EXPECT_THROW(
        {
          taiga::timeout_scope t(20ms);
          c.read_some(asio::buffer(buf));
        },
        taiga::timeout_error);
    peer.write_all(asio::buffer(std::string("late")));
    std::string got(4, '\0');
    c.read_exact(asio::buffer(got));
    EXPECT_EQ(got, "late");
  });
}

TEST_P(tcp, closing_the_listener_wakes_a_parked_accept) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto t = taiga::spawn([&] {
      boost::system::error_code ec;
      net::tcp_stream s = l.accept(ec);
      return ec;
    });
    taiga::test::wait_parked(t);
    l.close();
    EXPECT_EQ(t.join(), asio::error::operation_aborted);
    EXPECT_FALSE(l.is_open());
  });
}

TEST_P(tcp, a_slow_reader_parks_the_writer_and_gets_every_byte) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    const std::size_t total = 8u << 20;  // far more than the socket buffers
    auto w = taiga::spawn([&] {
      net::tcp_stream s = l.accept();
      std::vector<char> chunk(64 * 1024);
      for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 7);
      for (std::size_t sent = 0; sent < total; sent += chunk.size())
        s.write_all(asio::buffer(chunk));
    });
    net::tcp_stream c = net::connect(loopback(l.local_endpoint().port()));
    std::vector<char> buf(1000);
    std::size_t got = 0;
    std::uint64_t bad = 0;
    while (got < total) {
      if (got % (1u << 20) < 1000) taiga::this_tasklet::sleep_for(1ms);  // slow now and then
      std::size_t n = c.read_some(asio::buffer(buf));
      for (std::size_t i = 0; i < n; ++i)
        if (buf[i] != static_cast<char>(((got + i) % (64 * 1024)) * 7)) ++bad;
      got += n;
    }
    EXPECT_EQ(got, total);
    EXPECT_EQ(bad, 0u);
    w.join();
  });
}

TEST_P(tcp, resolve_and_connect_by_name) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto t = taiga::spawn([&] { net::tcp_stream s = l.accept(); });
    auto eps = net::resolve("localhost", std::to_string(l.local_endpoint().port()));
    EXPECT_FALSE(eps.empty());
    net::tcp_stream c =
        net::connect("127.0.0.1", std::to_string(l.local_endpoint().port()), {.no_delay = true});
    EXPECT_TRUE(c.is_open());
    t.join();
  });
}

// tcp_listener's default constructor and move operations are defined out of
// line: defaulted in the header they needed the complete (private) state
// type in the caller's translation unit, so a listener could neither be
// moved nor default-constructed by user code.
TEST_P(tcp, a_listener_moves_and_the_moved_to_one_accepts) {
  rt().run([] {
    auto first = net::tcp_listener::bind(loopback());
    net::tcp_listener l(std::move(first));
    EXPECT_FALSE(first.is_open());
    net::tcp_listener other;
    other = std::move(l);
    auto t = taiga::spawn([&] { net::tcp_stream s = other.accept(); });
    net::tcp_stream c = net::connect(loopback(other.local_endpoint().port()));
    t.join();
    EXPECT_TRUE(c.is_open());
  });
}
