// Boost.Beast's synchronous HTTP and WebSocket code, unchanged, on taiga::net
// streams: plain TCP, tls_stream, and Asio's own ssl::stream over a
// tcp_stream, at 1, 2, 4 and 8 workers (taiga/net/beast.hpp supplies the
// WebSocket teardown).
#include <gtest/gtest.h>

#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <string>
#include <taiga/net.hpp>
#include <taiga/net/beast.hpp>
#include <taiga/net/tls.hpp>
#include <vector>

#include "net_fixture.hpp"
#include "test_certs.hpp"

namespace net = taiga::net;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using taiga::test::certs;
using taiga::test::loopback;

namespace {

class beast_net : public taiga::test::net_workers {};
TAIGA_WORKER_COUNTS(beast_net);

constexpr int conns = 4;

// ---- the three kinds of connection --------------------------------------------

/// Plain TCP.
struct plain {
  using stream = net::tcp_stream;
  static net::tcp_stream server(net::tcp_stream t) { return t; }
  static net::tcp_stream client(unsigned short port) { return net::connect(loopback(port)); }
  static void finish(net::tcp_stream& s) { s.shutdown_send(); }
};

/// taiga::net::tls_stream.
struct over_tls {
  using stream = net::tls_stream;
  static ssl::context& sctx() {
    static ssl::context c =
        net::tls_context::server(certs().server.cert_pem, certs().server.key_pem);
    return c;
  }
  static ssl::context& cctx() {
    static ssl::context c = net::tls_context::client(certs().ca.cert_pem);
    return c;
  }
  static net::tls_stream server(net::tcp_stream t) {
    net::tls_stream s(std::move(t), sctx());
    s.handshake(net::tls_stream::server);
    return s;
  }
  static net::tls_stream client(unsigned short port) {
    return net::tls_stream::connect(loopback(port), cctx(), {.server_name = "localhost"});
  }
  static void finish(net::tls_stream& s) { s.shutdown(); }
};

/// Asio's ssl::stream over a tcp_stream (Beast's own ssl teardown, then
/// ours for the tcp_stream under it). Held by unique_ptr: ssl::stream<T&>
/// refers to the tcp_stream, which must not move.
struct asio_ssl {
  struct conn {
    std::unique_ptr<net::tcp_stream> tcp;
    std::unique_ptr<ssl::stream<net::tcp_stream&>> s;
  };
  using stream = ssl::stream<net::tcp_stream&>;
  static conn make(net::tcp_stream t, ssl::context& ctx) {
    conn c;
    c.tcp = std::make_unique<net::tcp_stream>(std::move(t));
    c.s = std::make_unique<ssl::stream<net::tcp_stream&>>(*c.tcp, ctx);
    return c;
  }
  static conn server(net::tcp_stream t) {
    conn c = make(std::move(t), over_tls::sctx());
    c.s->handshake(ssl::stream_base::server);
    return c;
  }
  static conn client(unsigned short port) {
    conn c = make(net::connect(loopback(port)), over_tls::cctx());
    c.s->set_verify_callback(ssl::host_name_verification("localhost"));
    c.s->handshake(ssl::stream_base::client);
    return c;
  }
};

template <class S>
S& stream_of(S& s) {
  return s;
}
inline ssl::stream<net::tcp_stream&>& stream_of(asio_ssl::conn& c) {
  return *c.s;
}

// ---- HTTP ----------------------------------------------------------------------

/// Answers requests on one connection until the client closes it; returns
/// how many it answered.
template <class Stream>
int http_serve(Stream& s) {
  beast::flat_buffer buf;
  int served = 0;
  for (;;) {
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(s, buf, req, ec);
    if (ec == http::error::end_of_stream) break;
    if (ec) {
      ADD_FAILURE() << "server read: " << ec.message();
      break;
    }
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "taiga");
    res.set(http::field::content_type, "text/plain");
    res.keep_alive(req.keep_alive());
    res.body() =
        std::string(req.method_string()) + " " + std::string(req.target()) + " " + req.body();
    res.prepare_payload();
    http::write(s, res);
    ++served;
    if (!res.keep_alive()) break;
  }
  return served;
}

/// Two requests on one connection (keep-alive), then a clean close.
template <class Stream>
void http_client(Stream& s, int c) {
  beast::flat_buffer buf;
  for (int i = 0; i < 2; ++i) {
    http::request<http::string_body> req{i == 0 ? http::verb::get : http::verb::post,
                                         "/item/" + std::to_string(c), 11};
    req.set(http::field::host, "localhost");
    req.keep_alive(true);
    if (i == 1) req.body() = std::string(20000, 'b');  // several TLS records
    req.prepare_payload();
    http::write(s, req);
    http::response<http::string_body> res;
    http::read(s, buf, res);
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res[http::field::server], "taiga");
    std::string want = (i == 0 ? "GET /item/" : "POST /item/") + std::to_string(c) + " " +
                       (i == 1 ? std::string(20000, 'b') : std::string());
    EXPECT_EQ(res.body(), want);
  }
}

template <class Kind>
void http_round_trip() {
  (void)certs();
  auto l = net::tcp_listener::bind(loopback());
  auto acceptor = taiga::spawn([&] {
    std::vector<taiga::tasklet<int>> all;
    for (int i = 0; i < conns; ++i) {
      all.push_back(taiga::spawn([t = l.accept()]() mutable {
        auto s = Kind::server(std::move(t));
        int n = http_serve(stream_of(s));
        if constexpr (std::is_same_v<Kind, over_tls>) s.shutdown();  // answers close_notify
        return n;
      }));
    }
    int total = 0;
    for (auto& t : all) total += t.join();
    return total;
  });
  std::vector<taiga::tasklet<void>> clients;
  for (int c = 0; c < conns; ++c) {
    clients.push_back(taiga::spawn([&, c] {
      auto s = Kind::client(l.local_endpoint().port());
      http_client(stream_of(s), c);
      Kind::finish(s);
    }));
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(acceptor.join(), 2 * conns);  // two requests per connection
}

// ---- WebSocket -----------------------------------------------------------------

/// Echoes messages until the client closes; returns how many.
template <class Stream>
int ws_serve(Stream& s) {
  websocket::stream<Stream&> ws(s);
  ws.accept();
  beast::flat_buffer buf;
  int n = 0;
  for (;;) {
    boost::system::error_code ec;
    ws.read(buf, ec);
    if (ec == websocket::error::closed) break;  // close handshake and teardown done
    if (ec) {
      ADD_FAILURE() << "server ws read: " << ec.message();
      break;
    }
    ws.text(ws.got_text());
    ws.write(buf.data());
    buf.consume(buf.size());
    ++n;
  }
  EXPECT_EQ(ws.reason().code, websocket::close_code::normal);
  return n;
}

template <class Stream>
void ws_client(Stream& s, int c) {
  websocket::stream<Stream&> ws(s);
  ws.handshake("localhost", "/echo");
  beast::flat_buffer buf;
  for (int i = 0; i < 5; ++i) {
    bool text = i % 2 == 0;
    std::string msg = text ? "hello " + std::to_string(c) + "/" + std::to_string(i)
                           : std::string(70000, static_cast<char>('a' + i));
    ws.text(text);
    ws.write(asio::buffer(msg));
    ws.read(buf);
    EXPECT_EQ(ws.got_text(), text);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), msg);
    buf.consume(buf.size());
  }
  ws.close(websocket::close_code::normal);  // close frames, then teardown
}

template <class Kind>
void ws_round_trip() {
  (void)certs();
  auto l = net::tcp_listener::bind(loopback());
  auto acceptor = taiga::spawn([&] {
    std::vector<taiga::tasklet<int>> all;
    for (int i = 0; i < conns; ++i) {
      all.push_back(taiga::spawn([t = l.accept()]() mutable {
        auto s = Kind::server(std::move(t));
        return ws_serve(stream_of(s));
      }));
    }
    int total = 0;
    for (auto& t : all) total += t.join();
    return total;
  });
  std::vector<taiga::tasklet<void>> clients;
  for (int c = 0; c < conns; ++c) {
    clients.push_back(taiga::spawn([&, c] {
      auto s = Kind::client(l.local_endpoint().port());
      ws_client(stream_of(s), c);
    }));
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(acceptor.join(), 5 * conns);
}

}  // namespace

TEST_P(beast_net, http_keep_alive_plain) {
  rt().run([] { http_round_trip<plain>(); });
}
TEST_P(beast_net, http_keep_alive_tls_stream) {
  rt().run([] { http_round_trip<over_tls>(); });
}
TEST_P(beast_net, websocket_echo_plain) {
  rt().run([] { ws_round_trip<plain>(); });
}
TEST_P(beast_net, websocket_echo_tls_stream) {
  rt().run([] { ws_round_trip<over_tls>(); });
}
TEST_P(beast_net, websocket_echo_asio_ssl_stream_over_tcp_stream) {
  rt().run([] { ws_round_trip<asio_ssl>(); });
}
