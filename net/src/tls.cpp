// tls.cpp: contexts and the untemplated part of tls_stream
// (net/include/taiga/net/tls.hpp).
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <taiga/net/tls.hpp>

namespace taiga::net {

// ---- tls_context ---------------------------------------------------------------

namespace {

void check(const error_code& ec, const char* what) {
  if (ec) detail::throw_error(ec, what, "");
}

/// An OpenSSL failure of a call that reports none through Asio.
[[noreturn]] void throw_openssl(const char* what) {
  unsigned long e = ::ERR_get_error();
  ::ERR_clear_error();
  error_code ec = asio::error::invalid_argument;
  if (e) ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
  detail::throw_error(ec, what, "");
}

ssl::context base(ssl::context::method m) {
  ssl::context ctx(m);
  if (::SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1)
    throw_openssl("tls_context: TLS 1.2 minimum");
  return ctx;
}

ssl::context server_of(ssl::context ctx) {
  if (::SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw_openssl("tls_context::server: the key does not match the certificate;");
  return ctx;
}

}  // namespace

ssl::context tls_context::client() {
  ssl::context ctx = base(ssl::context::tls_client);
  error_code ec;
  ctx.set_default_verify_paths(ec);
  check(ec, "tls_context::client: default verify paths");
  ctx.set_verify_mode(ssl::verify_peer, ec);
  check(ec, "tls_context::client: verify_peer");
  return ctx;
}

ssl::context tls_context::client(std::string_view ca_pem) {
  ssl::context ctx = base(ssl::context::tls_client);
  trust(ctx, ca_pem);
  error_code ec;
  ctx.set_verify_mode(ssl::verify_peer, ec);
  check(ec, "tls_context::client: verify_peer");
  return ctx;
}

ssl::context tls_context::server(std::string_view cert_chain_pem, std::string_view key_pem) {
  ssl::context ctx = base(ssl::context::tls_server);
  error_code ec;
  ctx.use_certificate_chain(asio::buffer(cert_chain_pem.data(), cert_chain_pem.size()), ec);
  check(ec, "tls_context::server: certificate chain");
  ctx.use_private_key(asio::buffer(key_pem.data(), key_pem.size()), ssl::context::pem, ec);
  check(ec, "tls_context::server: private key");
  return server_of(std::move(ctx));
}

ssl::context tls_context::server_from_files(const std::string& cert_chain_file,
                                            const std::string& key_file) {
  ssl::context ctx = base(ssl::context::tls_server);
  error_code ec;
  ctx.use_certificate_chain_file(cert_chain_file, ec);
  if (ec) detail::throw_error(ec, "tls_context::server: certificate chain", cert_chain_file);
  ctx.use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) detail::throw_error(ec, "tls_context::server: private key", key_file);
  return server_of(std::move(ctx));
}

void tls_context::trust(ssl::context& ctx, std::string_view ca_pem) {
  error_code ec;
  ctx.add_certificate_authority(asio::buffer(ca_pem.data(), ca_pem.size()), ec);
  check(ec, "tls_context: CA certificates");
  // OpenSSL caches a certificate's decoded extensions (key identifiers,
  // basic constraints, its SHA-1) on first use, under the certificate's
  // lock, then reads them lock-free. Computing them here, before any
  // handshake shares the context, spares the first handshakes that work
  // and ThreadSanitizer a report it cannot see through (OpenSSL's atomics
  // are not instrumented).
  STACK_OF(X509_OBJECT)* objs =
      ::X509_STORE_get0_objects(::SSL_CTX_get_cert_store(ctx.native_handle()));
  for (int i = 0; i < sk_X509_OBJECT_num(objs); ++i)
    if (X509* x = ::X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i)))
      ::X509_check_purpose(x, -1, 0);
}

// ---- tls_stream ------------------------------------------------------------------

namespace detail {

namespace {
std::string peer_of(tcp_stream& s) {
  if (!s.is_open()) throw usage_error("taiga::net: tls_stream over a tcp_stream not connected");
  error_code ec;
  auto ep = s.socket().remote_endpoint(ec);
  return ec ? std::string() : describe(ep);
}
}  // namespace

tls_state::tls_state(tcp_stream&& s, ssl::context& ctx)
    : ssl(tls_transport{std::move(s), {}}, ctx), peer(peer_of(ssl.next_layer().tcp)) {}

}  // namespace detail

tls_stream::tls_stream(tcp_stream&& s, ssl::context& ctx)
    : st_(std::make_unique<detail::tls_state>(std::move(s), ctx)) {}

tls_stream::~tls_stream() = default;

tls_stream::op::op(tls_stream& t, call_site site) : s(t.state()) {
  if (s.busy.exchange(true, std::memory_order_acquire)) {
    throw usage_error(
        "taiga::net: a tls_stream used by two tasklets at once (one operation at a time, "
        "reads and writes included: see taiga/net/tls.hpp)");
  }
  s.ssl.next_layer().site = site;
}

tls_stream tls_stream::connect(std::string_view host, std::string_view service, ssl::context& ctx,
                               const tls_options& o, call_site site) {
  tls_stream s(net::connect(host, service, o.tcp, site), ctx);
  s.set_server_name(o.server_name.empty() ? host : std::string_view(o.server_name), o.verify_host);
  s.handshake(client, site);
  return s;
}

tls_stream tls_stream::connect(const tcp::endpoint& ep, ssl::context& ctx, const tls_options& o,
                               call_site site) {
  tls_stream s(net::connect(ep, o.tcp, site), ctx);
  std::string name = o.server_name.empty() ? ep.address().to_string() : o.server_name;
  s.set_server_name(name, o.verify_host);
  s.handshake(client, site);
  return s;
}

void tls_stream::set_server_name(std::string_view name, bool verify) {
  detail::tls_state& s = state();
  SSL* ssl = s.ssl.native_handle();
  std::string n(name);
  error_code ec;
  asio::ip::make_address(n, ec);
  bool is_address = !ec;
  if (!is_address && ::SSL_set_tlsext_host_name(ssl, n.c_str()) != 1)
    throw_openssl("tls_stream::set_server_name: SNI");
  if (verify) {
    if (is_address) {
      if (::X509_VERIFY_PARAM_set1_ip_asc(::SSL_get0_param(ssl), n.c_str()) != 1)
        throw_openssl("tls_stream::set_server_name: IP address to verify");
    } else {
      ::SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (::SSL_set1_host(ssl, n.c_str()) != 1)
        throw_openssl("tls_stream::set_server_name: host name to verify");
    }
  }
  s.server_name = std::move(n);
}

void tls_stream::handshake(handshake_type t, error_code& ec, call_site site) {
  op g(*this, site);
  g.s.ssl.handshake(t, ec);
}

void tls_stream::handshake(handshake_type t, call_site site) {
  error_code ec;
  handshake(t, ec, site);
  if (ec) fail(ec, "TLS handshake with");
}

std::size_t tls_stream::read_until(std::string& buf, std::string_view delim, std::size_t max,
                                   error_code& ec, call_site site) {
  op g(*this, site);
  ec = {};
  std::size_t searched = 0;
  for (;;) {
    std::size_t from = searched >= delim.size() ? searched - delim.size() + 1 : 0;
    std::size_t pos = buf.find(delim, from);
    if (pos != std::string::npos) return pos + delim.size();
    searched = buf.size();
    if (buf.size() >= max) {
      ec = asio::error::message_size;
      return 0;
    }
    std::size_t old = buf.size();
    std::size_t chunk = std::min<std::size_t>(max - old, 4096);
    buf.resize(old + chunk);
    std::size_t n = g.s.ssl.read_some(asio::buffer(buf.data() + old, chunk), ec);
    buf.resize(old + n);
    if (ec) return 0;
  }
}

void tls_stream::shutdown(error_code& ec, call_site site) {
  op g(*this, site);
  g.s.ssl.shutdown(ec);
  // Our close_notify went out and the peer closed the connection rather
  // than answer with its own: the close is complete all the same.
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated) ec = {};
}

void tls_stream::shutdown(call_site site) {
  error_code ec;
  shutdown(ec, site);
  if (ec) fail(ec, "TLS shutdown with");
}

void tls_stream::close() noexcept {
  if (st_) st_->ssl.next_layer().tcp.close();
}

x509_ptr tls_stream::peer_certificate() const {
  return x509_ptr(::SSL_get1_peer_certificate(state().ssl.native_handle()));
}

std::string tls_stream::peer_subject() const {
  x509_ptr cert = peer_certificate();
  if (!cert) return {};
  BIO* bio = ::BIO_new(::BIO_s_mem());
  if (!bio) throw std::bad_alloc();
  ::X509_NAME_print_ex(bio, ::X509_get_subject_name(cert.get()), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, len > 0 ? static_cast<std::size_t>(len) : 0);
  ::BIO_free(bio);
  return out;
}

std::string tls_stream::server_name() const {
  const char* n = ::SSL_get_servername(state().ssl.native_handle(), TLSEXT_NAMETYPE_host_name);
  return n ? std::string(n) : state().server_name;
}

std::string tls_stream::protocol() const {
  return ::SSL_get_version(state().ssl.native_handle());
}

std::string tls_stream::cipher() const {
  const char* c = ::SSL_get_cipher_name(state().ssl.native_handle());
  return c ? c : "";
}

void tls_stream::fail(const error_code& ec, const char* what) const {
  std::string where;
  if (st_) {
    where = st_->peer;
    if (!st_->server_name.empty() && st_->server_name != where)
      where += " (" + st_->server_name + ")";
    // "certificate verify failed" says little: add the verifier's reason.
    if (ec.category() == asio::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      long v = ::SSL_get_verify_result(st_->ssl.native_handle());
      if (v != X509_V_OK) where += std::string(" [") + ::X509_verify_cert_error_string(v) + "]";
    }
  }
  detail::throw_error(ec, what, where);
}

}  // namespace taiga::net
