// TLS over taiga::net's TCP streams (OpenSSL 3 through boost::asio::ssl): a
// client, a server, certificate verification, SNI, the peer's certificate
// and a clean close, each parking the calling tasklet while it waits, as a
// tcp_stream's operations do.
//
//     // A client: the system's trust store; the server's certificate must
//     // name "example.com" (SNI says so too).
//     boost::asio::ssl::context ctx = taiga::net::tls_context::client();
//     taiga::net::tls_stream s = taiga::net::tls_stream::connect("example.com", "443", ctx);
//     s.write_all(boost::asio::buffer(request));
//     std::size_t n = s.read_some(boost::asio::buffer(buf));
//     s.shutdown();                       // close_notify, both ways
//
//     // A server: one context for every connection.
//     auto ctx = taiga::net::tls_context::server(cert_chain_pem, key_pem);
//     taiga::spawn([&ctx, t = listener.accept()]() mutable {
//       taiga::net::tls_stream s(std::move(t), ctx);
//       s.handshake(taiga::net::tls_stream::server);
//       ...
//     });
//
// Contexts are plain boost::asio::ssl::context objects: tls_context only
// builds the usual ones. Anything else (client certificates, ciphers,
// ALPN) goes through ssl::context's own API or its native_handle(), before
// the first stream uses it; from then on many streams on any worker may
// share it (OpenSSL's SSL_CTX is safe to share once configured).
//
// Errors throw std::system_error naming the operation and the peer (the
// error_code& forms set the code instead). A failed handshake says why in
// OpenSSL's words: "certificate verify failed" with the verifier's reason
// ("self-signed certificate", "certificate has expired", "hostname
// mismatch"), "wrong version number" for a peer that does not speak TLS,
// the peer's alert ("tlsv1 alert unknown ca") on the side that was
// rejected. Codes are in boost::asio::error::get_ssl_category(); a peer
// that closed the connection without TLS's close_notify reads
// boost::asio::ssl::error::stream_truncated (its data may have been cut
// short), one that sent close_notify reads asio::error::eof.
//
// One tasklet at a time: unlike a tcp_stream, a tls_stream does not take a
// reader and a writer at once (OpenSSL's SSL object and ssl::stream's
// buffers are shared by both directions). A second tasklet that calls in
// while an operation is in progress gets taiga::usage_error. Hand the
// stream over, or serialize its users with a taiga::mutex (a full-duplex
// protocol then has a parked read hold off writes until its data came).
//
// A kill, a throw_into or an expired timeout_scope ends a parked TLS
// operation as it ends a tcp_stream's (E4 in taiga/net/detail/io.hpp: the
// TCP read or write under it is cancelled and its completion awaited, then
// the interruption raises). A read so ended while it waited for data
// leaves the stream usable; an interrupted handshake, write or shutdown
// leaves it fit only to be closed (a TLS record half sent cannot be taken
// back). A stream's destructor closes the socket without close_notify:
// call shutdown() first where the peer must know that nothing was cut.
//
// tls_stream models Asio's SyncReadStream and SyncWriteStream and has
// get_executor(), next_layer() and lowest_layer(): Boost.Beast's
// synchronous HTTP and WebSocket code runs on it (taiga/net/beast.hpp has
// the WebSocket teardown).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <taiga/net/stream.hpp>
#include <taiga/net/tcp.hpp>

namespace taiga::net {

namespace ssl = boost::asio::ssl;

/// Builders of the usual ssl::context objects: TLS 1.2 or later, OpenSSL's
/// default ciphers. Each throws std::system_error with OpenSSL's reason (a
/// PEM that does not parse, a key that does not match its certificate).
struct tls_context {
  tls_context() = delete;
  /// A client that verifies servers against the system's trust store
  /// (OpenSSL's default paths: SSL_CERT_FILE / SSL_CERT_DIR override).
  static ssl::context client();
  /// A client that trusts only the CA certificates in `ca_pem` (one or more
  /// PEM blocks), for a private CA.
  static ssl::context client(std::string_view ca_pem);
  /// A server presenting `cert_chain_pem` (its certificate first, then any
  /// intermediates) with the private key `key_pem` (PEM, unencrypted). It
  /// asks for no client certificate; for mutual TLS add
  ///     tls_context::trust(ctx, client_ca_pem);
  ///     ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  static ssl::context server(std::string_view cert_chain_pem, std::string_view key_pem);
  /// As server(), reading both PEM files.
  static ssl::context server_from_files(const std::string& cert_chain_file,
                                        const std::string& key_file);
  /// Adds the CA certificates in `ca_pem` (one or more PEM blocks) to what
  /// `ctx` trusts, as ssl::context::add_certificate_authority does, and
  /// has OpenSSL compute now what it would compute on a first handshake
  /// and cache in each certificate (so that the first handshakes, on
  /// several workers at once, do not all compute it).
  static void trust(ssl::context& ctx, std::string_view ca_pem);
};

/// Frees an X509 (peer_certificate()'s deleter).
struct x509_free {
  void operator()(X509* x) const noexcept { ::X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;

/// Options of tls_stream::connect.
struct tls_options {
  /// The TCP connect's (its timeout covers the TCP connect only; bound the
  /// handshake with a timeout_scope).
  connect_options tcp{};
  /// The name sent as SNI and checked against the server's certificate;
  /// empty: the host (or address) given to connect. An IP address is checked against
  /// the certificate's IP entries and not sent (RFC 6066 has no SNI for
  /// addresses).
  std::string server_name;
  /// Check the certificate's names (when the context verifies at all, as
  /// tls_context::client's do). Off: any certificate of a trusted CA.
  bool verify_host = true;
};

namespace detail {
/// What ssl::stream reads and writes through: the TCP stream, and the call
/// site of the tls_stream operation in progress, which the TCP waits under
/// it report (dumps, deadlock reports) instead of a line inside Asio.
struct tls_transport {
  using executor_type = tcp_stream::executor_type;
  using lowest_layer_type = tcp_stream::lowest_layer_type;
  tcp_stream tcp;
  call_site site;

  executor_type get_executor() noexcept { return tcp.get_executor(); }
  lowest_layer_type& lowest_layer() noexcept { return tcp.lowest_layer(); }
  const lowest_layer_type& lowest_layer() const noexcept { return tcp.lowest_layer(); }
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& b, error_code& ec) {
    return tcp.read_some(b, ec, site);
  }
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& b, error_code& ec) {
    return tcp.write_some(b, ec, site);
  }
};

struct tls_state {
  tls_state(tcp_stream&& s, ssl::context& ctx);
  ssl::stream<tls_transport> ssl;
  std::string peer;         // "127.0.0.1:443", for errors
  std::string server_name;  // set_server_name's
  std::atomic<bool> busy{false};
};
}  // namespace detail

/// A TLS connection over a tcp_stream.
class tls_stream {
 public:
  using next_layer_type = tcp_stream;
  using lowest_layer_type = tcp_stream::lowest_layer_type;
  using executor_type = tcp_stream::executor_type;
  using handshake_type = ssl::stream_base::handshake_type;
  using call_site = detail::call_site;
  static constexpr handshake_type client = ssl::stream_base::client;
  static constexpr handshake_type server = ssl::stream_base::server;

  /// Not connected (a moved-from stream is too).
  tls_stream() = default;
  /// Takes over a connected TCP stream, to be set up by the context `ctx`
  /// (which must outlive this stream); handshake() starts TLS.
  tls_stream(tcp_stream&& s, ssl::context& ctx);
  tls_stream(tls_stream&&) noexcept = default;
  tls_stream& operator=(tls_stream&&) noexcept = default;
  ~tls_stream();

  /// Connects to `host`:`service` (tcp.hpp's connect), sets the server name
  /// (set_server_name: o.server_name, else `host`) and completes a client
  /// handshake. Throws system_error naming the peer and OpenSSL's reason.
  static tls_stream connect(std::string_view host, std::string_view service, ssl::context& ctx,
                            const tls_options& o = {}, call_site site = call_site::current());
  /// As above, to one endpoint: o.server_name is sent as SNI and checked
  /// (empty: the certificate must name the endpoint's address).
  static tls_stream connect(const tcp::endpoint& ep, ssl::context& ctx, const tls_options& o = {},
                            call_site site = call_site::current());

  /// A client, before its handshake: sends `name` as SNI (unless it is an
  /// IP address) and, with `verify`, requires the server's certificate to
  /// name it (a DNS name or IP address of its subjectAltName).
  void set_server_name(std::string_view name, bool verify = true);

  /// TLS's handshake, as a client or a server. Throws system_error naming
  /// the peer, the server name and why.
  void handshake(handshake_type t, call_site site = call_site::current());
  void handshake(handshake_type t, error_code& ec, call_site site = call_site::current());

  bool is_open() const noexcept { return st_ && st_->ssl.next_layer().tcp.is_open(); }

  // ---- reading ----------------------------------------------------------

  /// Reads at least one byte of plaintext (parks until a record arrives);
  /// 0 only for an empty buffer. Throws system_error: asio::error::eof
  /// after the peer's close_notify, ssl::error::stream_truncated when the
  /// connection ended without one.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = read_some(b, ec, site);
    if (ec) fail(ec, "TLS read from");
    return n;
  }
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& b, error_code& ec,
                        call_site site = call_site::current()) {
    op g(*this, site);
    return g.s.ssl.read_some(b, ec);
  }

  /// Fills the whole buffer; fewer bytes only with an error (the count read
  /// is returned, the bytes are in the buffer).
  template <class MutableBuffers>
  std::size_t read_exact(const MutableBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = read_exact(b, ec, site);
    if (ec) fail(ec, "TLS read_exact from");
    return n;
  }
  template <class MutableBuffers>
  std::size_t read_exact(const MutableBuffers& b, error_code& ec,
                         call_site site = call_site::current()) {
    op g(*this, site);
    return asio::read(g.s.ssl, b, ec);
  }

  /// Reads into `buf` (appending) until it holds `delim`; returns the
  /// length up to and including it, bytes after it stay in `buf`.
  /// asio::error::message_size once `buf` would pass `max` bytes without a
  /// delimiter. As tcp_stream::read_until.
  std::size_t read_until(std::string& buf, std::string_view delim, std::size_t max,
                         call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = read_until(buf, delim, max, ec, site);
    if (ec) fail(ec, "TLS read_until from");
    return n;
  }
  std::size_t read_until(std::string& buf, std::string_view delim, std::size_t max, error_code& ec,
                         call_site site = call_site::current());

  // ---- writing ----------------------------------------------------------

  /// Writes at least one byte (one TLS record of at most 16 KiB; parks
  /// while the peer is slow).
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = write_some(b, ec, site);
    if (ec) fail(ec, "TLS write to");
    return n;
  }
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& b, error_code& ec,
                         call_site site = call_site::current()) {
    op g(*this, site);
    return g.s.ssl.write_some(b, ec);
  }

  /// Writes every byte of `b` (all of them unless `ec` is set).
  template <class ConstBuffers>
  std::size_t write_all(const ConstBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = write_all(b, ec, site);
    if (ec) fail(ec, "TLS write to");
    return n;
  }
  template <class ConstBuffers>
  std::size_t write_all(const ConstBuffers& b, error_code& ec,
                        call_site site = call_site::current()) {
    op g(*this, site);
    return asio::write(g.s.ssl, b, ec);
  }

  // ---- the connection ---------------------------------------------------

  /// The clean close of TLS: sends close_notify and parks until the peer's
  /// (the peer's read sees asio::error::eof, not stream_truncated). A peer
  /// that closes the TCP connection instead counts as done too. The TCP
  /// connection stays open: close() or the destructor closes it. A peer
  /// that never answers keeps this waiting: bound it with a timeout_scope.
  void shutdown(call_site site = call_site::current());
  void shutdown(error_code& ec, call_site site = call_site::current());
  /// Closes the TCP connection now, without close_notify. Must not race an
  /// operation of another tasklet.
  void close() noexcept;

  /// The peer's certificate (null if it sent none: a client, unless the
  /// server's context asked for one). Use X509_* on it, or:
  x509_ptr peer_certificate() const;
  /// ... its subject, RFC 2253 style ("CN=localhost,O=example"); empty if
  /// none.
  std::string peer_subject() const;
  /// SNI: on a server, the name the client asked for (empty if none); on a
  /// client, set_server_name's.
  std::string server_name() const;
  /// The protocol agreed ("TLSv1.3") and the cipher suite.
  std::string protocol() const;
  std::string cipher() const;

  /// The peer's address, as errors name it ("127.0.0.1:443").
  const std::string& peer() const { return state().peer; }

  executor_type get_executor() { return next_layer().get_executor(); }
  tcp_stream& next_layer() { return state().ssl.next_layer().tcp; }
  const tcp_stream& next_layer() const { return state().ssl.next_layer().tcp; }
  lowest_layer_type& lowest_layer() { return next_layer().lowest_layer(); }
  const lowest_layer_type& lowest_layer() const { return next_layer().lowest_layer(); }
  /// OpenSSL's SSL object, for what this class does not wrap.
  SSL* native_handle() { return state().ssl.native_handle(); }

 private:
  /// Marks the stream busy for one operation (usage_error if it already
  /// is: another tasklet's operation is in progress) and hands its call
  /// site to the TCP operations under it.
  struct op {
    op(tls_stream& t, call_site site);
    ~op() { s.busy.store(false, std::memory_order_release); }
    op(const op&) = delete;
    op& operator=(const op&) = delete;
    detail::tls_state& s;
  };

  detail::tls_state& state() const {
    if (!st_) throw usage_error("taiga::net: operation on a tls_stream that is not connected");
    return *st_;
  }
  [[noreturn]] void fail(const error_code& ec, const char* what) const;

  std::unique_ptr<detail::tls_state> st_;
};

}  // namespace taiga::net
