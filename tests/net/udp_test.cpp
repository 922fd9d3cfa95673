// taiga::net UDP: datagrams over loopback at 1, 2, 4 and 8 workers; every
// test ends with no tasklet, I/O wait or fd left.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <vector>

#include "net_fixture.hpp"

namespace net = taiga::net;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

class udp : public taiga::test::net_workers {};
TAIGA_WORKER_COUNTS(udp);

net::udp::endpoint loopback_udp(unsigned short port = 0) {
  return {asio::ip::address_v4::loopback(), port};
}

std::string text(const char* p, std::size_t n) {
  return std::string(p, n);
}

}  // namespace

TEST_P(udp, ping_pong_with_many_clients) {
  rt().run([] {
    const int clients = 8;
    const long rounds = taiga::test::scaled(200);
    auto srv = net::udp_socket::bind(loopback_udp());
    auto server = taiga::spawn([&] {
      char buf[256];
      for (long i = 0; i < clients * rounds; ++i) {
        net::udp_datagram d = srv.receive_from(asio::buffer(buf));
        EXPECT_FALSE(d.truncated);
        srv.send_to(asio::buffer(buf, d.size), d.sender);
      }
    });
    std::vector<taiga::tasklet<long>> all;
    for (int c = 0; c < clients; ++c) {
      all.push_back(taiga::spawn([&, c] {
        auto s = net::udp_socket::open();
        long ok = 0;
        for (long r = 0; r < rounds; ++r) {
          std::string msg = "ping " + std::to_string(c) + " " + std::to_string(r);
          EXPECT_EQ(s.send_to(asio::buffer(msg), srv.local_endpoint()), msg.size());
          char buf[256];
          net::udp_datagram d = s.receive_from(asio::buffer(buf));
          EXPECT_EQ(d.sender, srv.local_endpoint());
          EXPECT_EQ(text(buf, d.size), msg);  // loopback neither drops nor reorders here
          ok += text(buf, d.size) == msg;
        }
        return ok;
      }));
    }
    for (auto& t : all) EXPECT_EQ(t.join(), rounds);
    server.join();
  });
}

TEST_P(udp, connected_socket_talks_to_its_peer_only) {
  rt().run([] {
    auto a = net::udp_socket::bind(loopback_udp());
    auto b = net::udp_socket::bind(loopback_udp());
    auto stranger = net::udp_socket::open();
    a.connect(b.local_endpoint());
    b.connect(a.local_endpoint());
    EXPECT_EQ(a.remote_endpoint(), b.local_endpoint());
    // The kernel drops what a connected socket gets from elsewhere.
    stranger.send_to(asio::buffer(std::string("noise")), a.local_endpoint());
    b.send(asio::buffer(std::string("hello")));
    char buf[16];
    net::udp_datagram d = a.receive(asio::buffer(buf));
    EXPECT_EQ(text(buf, d.size), "hello");
    EXPECT_EQ(d.sender, b.local_endpoint());
    a.send(asio::buffer(std::string("back")));
    d = b.receive(asio::buffer(buf));
    EXPECT_EQ(text(buf, d.size), "back");
  });
}

TEST_P(udp, connected_to_a_closed_port_the_receive_is_refused_naming_the_peer) {
  rt().run([] {
    unsigned short port;
    {
      auto gone = net::udp_socket::bind(loopback_udp());
      port = gone.local_endpoint().port();
    }
    auto s = net::udp_socket::open();
    s.connect(loopback_udp(port));
    s.send(asio::buffer(std::string("anyone?")));  // ICMP port unreachable comes back
    char buf[16];
    try {
      s.receive(asio::buffer(buf));
      ADD_FAILURE() << "no error";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::connection_refused);
      EXPECT_NE(std::string(e.what()).find("receive from udp 127.0.0.1:" + std::to_string(port)),
                std::string::npos)
          << e.what();
    }
  });
}

TEST_P(udp, truncation_is_reported_with_exact_sizes) {
  rt().run([] {
    auto r = net::udp_socket::bind(loopback_udp());
    auto s = net::udp_socket::open();
    std::string big(1000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    s.send_to(asio::buffer(big), r.local_endpoint());
    s.send_to(asio::buffer(big.data(), 40), r.local_endpoint());
    s.send_to(asio::buffer(std::string()), r.local_endpoint());  // an empty datagram
    std::array<char, 40> buf{};
    net::udp_datagram d = r.receive_from(asio::buffer(buf));
    EXPECT_TRUE(d.truncated);
    EXPECT_EQ(d.size, 40u);
    EXPECT_EQ(d.full_size, 1000u);
    EXPECT_EQ(text(buf.data(), 40), big.substr(0, 40));
    // The next datagram is whole: exactly the buffer's size is no truncation.
    d = r.receive_from(asio::buffer(buf));
    EXPECT_FALSE(d.truncated);
    EXPECT_EQ(d.size, 40u);
    EXPECT_EQ(d.full_size, 40u);
    d = r.receive_from(asio::buffer(buf));
    EXPECT_FALSE(d.truncated);
    EXPECT_EQ(d.size, 0u);
    EXPECT_EQ(d.sender.port(), s.local_endpoint().port());
  });
}

TEST_P(udp, scatter_receive_and_gather_send) {
  rt().run([] {
    auto r = net::udp_socket::bind(loopback_udp());
    auto s = net::udp_socket::open();
    std::string head = "HEAD:", body = "the body";
    std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(body)};
    EXPECT_EQ(s.send_to(out, r.local_endpoint()), head.size() + body.size());
    char h[5], b[64];
    std::array<asio::mutable_buffer, 2> in{asio::buffer(h), asio::buffer(b)};
    net::udp_datagram d = r.receive_from(in);
    EXPECT_EQ(d.size, head.size() + body.size());
    EXPECT_EQ(text(h, 5), head);
    EXPECT_EQ(text(b, body.size()), body);
  });
}

TEST_P(udp, an_oversize_datagram_fails_with_message_size_naming_the_destination) {
  rt().run([] {
    auto r = net::udp_socket::bind(loopback_udp());
    auto s = net::udp_socket::open();
    std::vector<char> huge(70000, 'x');  // over IPv4's 65507-byte payload
    boost::system::error_code ec;
    EXPECT_EQ(s.send_to(asio::buffer(huge), r.local_endpoint(), ec), 0u);
    EXPECT_EQ(ec, asio::error::message_size);
    try {
      s.send_to(asio::buffer(huge), r.local_endpoint());
      ADD_FAILURE() << "no error";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::message_size);
      EXPECT_NE(std::string(e.what()).find("send_to udp 127.0.0.1:" +
                                           std::to_string(r.local_endpoint().port())),
                std::string::npos)
          << e.what();
    }
    // The socket still works.
    s.send_to(asio::buffer(std::string("ok")), r.local_endpoint());
    char buf[8];
    EXPECT_EQ(r.receive_from(asio::buffer(buf)).size, 2u);
  });
}

TEST_P(udp, a_killed_receive_loses_no_datagram) {
  rt().run([] {
    auto r = net::udp_socket::bind(loopback_udp());
    auto s = net::udp_socket::open();
    auto t = taiga::spawn([&] {
      char buf[16];
      r.receive_from(asio::buffer(buf));  // parks: nothing comes
      ADD_FAILURE() << "received";
    });
    taiga::test::wait_parked(t);
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
    s.send_to(asio::buffer(std::string("after")), r.local_endpoint());
    char buf[16];
    net::udp_datagram d = r.receive_from(asio::buffer(buf));
    EXPECT_EQ(text(buf, d.size), "after");
  });
}

TEST_P(udp, a_receive_timed_out_by_its_scope_leaves_the_sender_running) {
  rt().run([] {
    auto a = net::udp_socket::bind(loopback_udp());
    auto b = net::udp_socket::bind(loopback_udp());
    char buf[16];
    EXPECT_THROW(
        {
          taiga::timeout_scope ts(20ms);
          a.receive_from(asio::buffer(buf));
        },
        taiga::timeout_error);
    // A receiver parked on a while its sender sends: the two directions.
    auto rx = taiga::spawn([&] {
      char in[16];
      net::udp_datagram d = a.receive_from(asio::buffer(in));
      return text(in, d.size);
    });
    taiga::test::wait_parked(rx);
    a.send_to(asio::buffer(std::string("to b")), b.local_endpoint());
    net::udp_datagram d = b.receive_from(asio::buffer(buf));
    EXPECT_EQ(text(buf, d.size), "to b");
    b.send_to(asio::buffer(std::string("late")), a.local_endpoint());
    EXPECT_EQ(rx.join(), "late");
  });
}

TEST_P(udp, multicast_on_loopback) {
  rt().run([] {
    const auto group = asio::ip::make_address_v4("239.255.42.99");
    const auto lo = asio::ip::address_v4::loopback();
    auto r1 = net::udp_socket::bind({asio::ip::address_v4::any(), 0}, {.reuse_address = true});
    unsigned short port = r1.local_endpoint().port();
    auto r2 = net::udp_socket::bind({asio::ip::address_v4::any(), port}, {.reuse_address = true});
    try {
      r1.join_group(group, lo);
      r2.join_group(group, lo);
    } catch (const std::system_error& e) {
      GTEST_SKIP() << "no multicast on loopback here: " << e.what();
    }
    auto s = net::udp_socket::open();
    s.outbound_interface(lo);
    s.multicast_loopback(true);
    s.multicast_ttl(1);
    boost::system::error_code ec;
    s.send_to(asio::buffer(std::string("to the group")), {group, port}, ec);
    if (ec) GTEST_SKIP() << "no multicast route here: " << ec.message();
    for (auto* r : {&r1, &r2}) {  // every member gets it
      char buf[32];
      net::udp_datagram d;
      try {
        taiga::timeout_scope ts(5s);
        d = r->receive_from(asio::buffer(buf));
      } catch (const taiga::timeout_error&) {
        GTEST_SKIP() << "multicast on loopback is not delivered here";
      }
      EXPECT_EQ(text(buf, d.size), "to the group");
      EXPECT_EQ(d.sender.port(), s.local_endpoint().port());
    }
    r2.leave_group(group, lo);
    try {
      r2.leave_group(group, lo);  // not a member any more
      ADD_FAILURE() << "left twice";
    } catch (const std::system_error& e) {
      EXPECT_NE(std::string(e.what()).find("leave_group group 239.255.42.99 on udp 0.0.0.0:" +
                                           std::to_string(port)),
                std::string::npos)
          << e.what();
    }
  });
}

TEST_P(udp, bind_errors_name_the_endpoint) {
  rt().run([] {
    auto a = net::udp_socket::bind(loopback_udp());
    unsigned short port = a.local_endpoint().port();
    try {
      net::udp_socket::bind(loopback_udp(port));
      ADD_FAILURE() << "bound twice";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::address_in_use);
      EXPECT_NE(std::string(e.what()).find("bind udp 127.0.0.1:" + std::to_string(port)),
                std::string::npos)
          << e.what();
    }
    // An address this host does not have (TEST-NET-3).
    try {
      net::udp_socket::bind({asio::ip::make_address("203.0.113.7"), 0});
      ADD_FAILURE() << "bound a foreign address";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::address_not_available);
      EXPECT_NE(std::string(e.what()).find("bind udp 203.0.113.7:0"), std::string::npos)
          << e.what();
    }
    boost::system::error_code ec;
    net::udp_socket none = net::udp_socket::bind(loopback_udp(port), {}, ec);
    EXPECT_EQ(ec, asio::error::address_in_use);
    EXPECT_FALSE(none.is_open());
    // SO_REUSEPORT: two sockets on one port.
    auto p1 = net::udp_socket::bind(loopback_udp(), {.reuse_port = true});
    auto p2 = net::udp_socket::bind(loopback_udp(p1.local_endpoint().port()), {.reuse_port = true});
    EXPECT_EQ(p1.local_endpoint(), p2.local_endpoint());
  });
}
