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
// Full duplex, like a tcp_stream: one tasklet may read while another
// writes (a WebSocket's reader and its broadcaster). One read and one write
// at a time: a second reader (or writer) waits for the first. The SSL
// object is shared by both directions, so every OpenSSL call takes a short
// lock that is never held across a park; the TCP reads and writes under
// them park without it (design notes in net/src/tls.cpp).
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

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <taiga/channels/sync.hpp>
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
/// A TLS connection: the TCP stream and OpenSSL's SSL object, which reads
/// and writes records through a BIO pair that this side drains to and fills
/// from the TCP stream (net/src/tls.cpp explains the locking).
struct tls_state {
  tls_state(tcp_stream&& s, ssl::context& ctx);
  ~tls_state();
  tls_state(const tls_state&) = delete;
  tls_state& operator=(const tls_state&) = delete;

  // Each needs its direction's lock (rd, wr) held by the caller.
  std::size_t read_locked(void* p, std::size_t n, error_code& ec, call_site site);
  std::size_t write_locked(const void* p, std::size_t n, error_code& ec, call_site site);
  // Sends what the engine holds for the peer, then releases wr (also when
  // it raises: a write cut by a kill leaves the stream fit only to close).
  void flush_and_release(error_code& ec, call_site site);

  tcp_stream tcp;
  SSL* ssl = nullptr;
  BIO* net_bio = nullptr;           // our end of the pair: records to send, records received
  std::mutex engine;                // guards ssl and the pair; never held across a park
  taiga::mutex rd, wr;              // one reader, one writer (wr also orders the bytes sent)
  std::unique_ptr<char[]> in, out;  // 17 KiB each, made on first use
  std::string peer;                 // "127.0.0.1:443", for errors
  std::string server_name;          // set_server_name's
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

  bool is_open() const noexcept { return st_ && st_->tcp.is_open(); }

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
    detail::tls_state& st = state();
    std::unique_lock g(st.rd);  // a park point, before anything is taken
    auto first = first_buffer(asio::buffer_sequence_begin(b), asio::buffer_sequence_end(b));
    return st.read_locked(first.data(), first.size(), ec, site);
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
    detail::tls_state& st = state();
    std::unique_lock g(st.rd);
    ec = {};
    std::size_t got = 0;
    for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it) {
      asio::mutable_buffer m(*it);
      while (m.size() > 0) {
        std::size_t n = st.read_locked(m.data(), m.size(), ec, site);
        got += n;
        m += n;
        if (ec) return got;
      }
    }
    return got;
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
    detail::tls_state& st = state();
    st.wr.lock();  // released by flush_and_release, whatever happens
    auto first = first_buffer(asio::buffer_sequence_begin(b), asio::buffer_sequence_end(b));
    std::size_t n = write_one(st, first.data(), first.size(), ec, site);
    return ec ? 0 : n;
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
    detail::tls_state& st = state();
    st.wr.lock();  // one writer for the whole buffer: its records go out in order
    ec = {};
    std::size_t done = 0;
    write_guard g{st};
    for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b) && !ec;
         ++it) {
      asio::const_buffer c(*it);
      while (c.size() > 0) {
        std::size_t n = st.write_locked(c.data(), c.size(), ec, site);
        if (ec) break;
        done += n;
        c += n;
      }
    }
    g.released = true;
    error_code fe;
    st.flush_and_release(fe, site);
    if (!ec) ec = fe;
    return done;
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
  tcp_stream& next_layer() { return state().tcp; }
  const tcp_stream& next_layer() const { return state().tcp; }
  lowest_layer_type& lowest_layer() { return next_layer().lowest_layer(); }
  const lowest_layer_type& lowest_layer() const { return next_layer().lowest_layer(); }
  /// OpenSSL's SSL object, for what this class does not wrap.
  /// Not while another tasklet's operation may run on the stream.
  SSL* native_handle() { return state().ssl; }

 private:
  // Releases wr, unflushed, when a write raises (the stream is then fit
  // only to be closed); on the normal path flush_and_release does.
  struct write_guard {
    detail::tls_state& st;
    bool released = false;
    ~write_guard() {
      if (!released) st.wr.unlock();
    }
  };
  static std::size_t write_one(detail::tls_state& st, const void* p, std::size_t n, error_code& ec,
                               call_site site) {
    write_guard g{st};
    n = st.write_locked(p, n, ec, site);
    g.released = true;
    error_code fe;
    st.flush_and_release(fe, site);
    if (!ec) ec = fe;
    return n;
  }
  // The first non-empty buffer of a sequence (TLS reads and writes one, as
  // asio::ssl::stream does), or an empty one.
  template <class It>
  static auto first_buffer(It it, It end) {
    using B = std::conditional_t<std::is_convertible_v<decltype(*it), asio::mutable_buffer>,
                                 asio::mutable_buffer, asio::const_buffer>;
    for (; it != end; ++it)
      if (B(*it).size() > 0) return B(*it);
    return B();
  }

  detail::tls_state& state() const {
    if (!st_) throw usage_error("taiga::net: operation on a tls_stream that is not connected");
    return *st_;
  }
  [[noreturn]] void fail(const error_code& ec, const char* what) const;

  std::unique_ptr<detail::tls_state> st_;
};

}  // namespace taiga::net
