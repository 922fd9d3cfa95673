// Boost.Beast on taiga::net streams. Beast's synchronous HTTP code needs
// nothing more than a stream's read_some and write_some: it runs on a
// tcp_stream, unix_stream or tls_stream (by reference) unchanged,
//
//     boost::beast::flat_buffer buf;
//     boost::beast::http::request<boost::beast::http::string_body> req;
//     boost::beast::http::read(stream, buf, req);          // parks the tasklet
//     boost::beast::http::write(stream, response);
//
// and so does its synchronous WebSocket code, once this header is
// included: a websocket::stream's close() ends the connection with
// teardown(role, next_layer, ec), which Beast finds by argument-dependent
// lookup and provides only for Asio's own sockets and ssl::stream.
//
//     boost::beast::websocket::stream<taiga::net::tcp_stream&> ws(s);   // or tls_stream&
//     ws.accept();                     // or ws.handshake(host, "/")
//     ws.read(buf);  ws.write(...);  ws.close(boost::beast::websocket::close_code::normal);
//
// Only the synchronous API: Beast's async_ functions need Asio completion
// handlers, which taiga::net's streams do not take (their operations park
// instead). A stream's timeouts are timeout_scope's, not Beast's
// (websocket::stream_base::timeout applies to asynchronous operations).
#pragma once

#include <boost/asio/socket_base.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <taiga/net/stream.hpp>
#include <taiga/net/tls.hpp>

namespace taiga::net {

/// WebSocket teardown over TCP or a Unix socket, as Beast's own for an Asio
/// socket: the server half-closes first, the client after the peer did;
/// each drains what is left until end of stream, then closes.
template <class Protocol>
void teardown(boost::beast::role_type role, basic_stream<Protocol>& s, error_code& ec) {
  auto& sock = s.socket();
  ec = {};
  if (role == boost::beast::role_type::server) sock.shutdown(asio::socket_base::shutdown_send, ec);
  if (ec) return;
  for (;;) {
    char buf[2048];
    s.read_some(asio::buffer(buf), ec);  // parks
    if (ec) {
      if (ec != asio::error::eof) return;
      ec = {};
      break;
    }
  }
  if (role == boost::beast::role_type::client) sock.shutdown(asio::socket_base::shutdown_send, ec);
  if (ec) return;
  s.close();
}

/// WebSocket teardown over TLS: close_notify both ways (tls_stream::
/// shutdown), then the TCP teardown above; the first error is reported.
inline void teardown(boost::beast::role_type role, tls_stream& s, error_code& ec) {
  s.shutdown(ec);
  error_code ec2;
  teardown(role, s.next_layer(), ec ? ec2 : ec);
}

}  // namespace taiga::net
