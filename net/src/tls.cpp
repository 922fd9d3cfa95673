// tls.cpp: contexts and the untemplated part of tls_stream
// (net/include/taiga/net/tls.hpp).
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <climits>
#include <taiga/net/detail/read_until.hpp>
#include <taiga/net/tls.hpp>
#include <taiga/runtime/park.hpp>

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
//
// A TLS connection is OpenSSL's SSL object with a BIO pair for transport:
// SSL_read and SSL_write turn records into plaintext and back inside the
// pair, and this file moves the records between the pair and the TCP stream,
// parking on the TCP stream's reads and writes. That is what Asio's
// synchronous ssl::stream does, with one difference that makes the stream
// full duplex: Asio runs each operation start to end on the SSL object, so
// a reader parked for a record would keep a writer out; here the SSL object
// is locked only across OpenSSL calls, and a reader parked in a TCP read
// holds no lock a writer needs.
//
// Invariants:
//   T1 Every OpenSSL call on a connection's SSL object or its pair holds
//      `engine`, and `engine` is never held across a park (OpenSSL's objects
//      are not thread-safe; tasklets of one connection run on any worker).
//   T2 Records leave the pair only under `wr`, and are sent before `wr` is
//      released: the peer receives them in the order OpenSSL made them. The
//      last check that the pair holds nothing more and the release of `wr`
//      happen under one hold of `engine` (flush_and_release).
//   T3 A reader whose SSL_read made records to send (an alert, a KeyUpdate's
//      answer) try-locks `wr` under `engine`. If another tasklet holds it,
//      that holder sends them before it releases (T2 orders the two), so a
//      reader never waits for a writer: a peer that reads only after it
//      wrote cannot deadlock the connection.
//   T4 Records enter the pair only under `rd` (a reader, or a handshake,
//      shutdown or renegotiating write that took it), in the order received.
//   T5 A read returns as soon as SSL_read gives plaintext; anything it left
//      to send goes with the next operation, and every read sends what is
//      pending before it parks for input (T3), so no answer waits for the
//      peer.
// Kills and timeouts: a read parks only in the TCP read of feed(), before
// SSL has seen the bytes, so an interrupted read leaves the stream usable
// (the TCP read's E4 keeps the bytes). A write, handshake or shutdown cut
// in the middle of a record's TCP write leaves the stream fit only to close.

namespace detail {

namespace {
constexpr std::size_t record_buffer = 17 * 1024;  // a TLS record and its header

std::string peer_of(tcp_stream& s) {
  if (!s.is_open()) throw usage_error("taiga::net: tls_stream over a tcp_stream not connected");
  error_code ec;
  auto ep = s.socket().remote_endpoint(ec);
  return ec ? std::string() : describe(ep);
}

}  // namespace

// What an OpenSSL call's failure means, as Asio's engine maps it.
error_code ssl_error(int err, unsigned long code) {
  switch (err) {
    case SSL_ERROR_ZERO_RETURN:
      return asio::error::eof;
    case SSL_ERROR_SSL:
      return error_code(static_cast<int>(code), asio::error::get_ssl_category());
    case SSL_ERROR_SYSCALL:
      return code ? error_code(static_cast<int>(code), asio::error::get_ssl_category())
                  : error_code(ssl::error::unspecified_system_error);
    default:
      return ssl::error::unexpected_result;
  }
}

// One OpenSSL call under `engine` (T1): its result, SSL_get_error's verdict
// and the error queue's first entry, read on this thread before any park
// (the queue is per thread, and a tasklet may move).
struct ssl_call {
  int result;
  int err;
  unsigned long code;
};
template <class F>
ssl_call call(SSL* ssl, F&& f) {
  ::ERR_clear_error();
  int r = f();
  int e = ::SSL_get_error(ssl, r);
  unsigned long c = ::ERR_get_error();
  ::ERR_clear_error();
  return {r, e, c};
}

// Releases wr, unflushed, when a handshake or shutdown raises.
struct tls_write_guard {
  tls_state& st;
  bool released = false;
  ~tls_write_guard() {
    if (!released) st.wr.unlock();
  }
};

tls_state::tls_state(tcp_stream&& s, ssl::context& ctx) : tcp(std::move(s)) {
  peer = peer_of(tcp);
  ssl = ::SSL_new(ctx.native_handle());
  if (ssl == nullptr) throw_openssl("tls_stream: SSL_new");
  // As Asio's engine: partial writes (write_some), a retried write may
  // pass a moved buffer, idle connections give back their record buffers.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  // No TLS 1.2 renegotiation: a write would then need the reader's input.
  ::SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  BIO* int_bio = nullptr;
  if (::BIO_new_bio_pair(&int_bio, 0, &net_bio, 0) != 1) {
    ::SSL_free(ssl);
    ssl = nullptr;
    throw_openssl("tls_stream: BIO pair");
  }
  ::SSL_set_bio(ssl, int_bio, int_bio);  // the SSL object owns its end
}

tls_state::~tls_state() {
  if (ssl) ::SSL_free(ssl);
  if (net_bio) ::BIO_free(net_bio);
}

// Reads what the TCP stream has (parks) and puts it into the pair (T4;
// the caller holds rd). An end of the connection is Asio's engine's: eof
// only after the peer's close_notify, stream_truncated otherwise.
void feed(tls_state& st, error_code& ec, call_site site) {
  if (!st.in) st.in = std::make_unique<char[]>(record_buffer);
  std::size_t room;
  {
    std::lock_guard e(st.engine);
    room = std::min<std::size_t>(::BIO_ctrl_get_write_guarantee(st.net_bio), record_buffer);
  }
  if (room == 0) return;  // SSL has input it has not read: let it
  std::size_t n = st.tcp.read_some(asio::buffer(st.in.get(), room), ec, site);
  std::lock_guard e(st.engine);
  if (ec == asio::error::eof) {
    if (BIO_wpending(st.net_bio) != 0 || (::SSL_get_shutdown(st.ssl) & SSL_RECEIVED_SHUTDOWN) == 0)
      ec = ssl::error::stream_truncated;
    return;
  }
  if (ec) return;
  ::BIO_write(st.net_bio, st.in.get(), static_cast<int>(n));  // fits: room was guaranteed
}

// Sends what the pair holds for the peer (wr held; T2), keeping wr.
void send_pending(tls_state& st, error_code& ec, call_site site) {
  if (!st.out) st.out = std::make_unique<char[]>(record_buffer);
  for (;;) {
    int n;
    {
      std::lock_guard e(st.engine);
      n = ::BIO_read(st.net_bio, st.out.get(), static_cast<int>(record_buffer));
    }
    if (n <= 0) return;
    st.tcp.write_all(asio::buffer(st.out.get(), static_cast<std::size_t>(n)), ec, site);
    if (ec) return;
  }
}

void tls_state::flush_and_release(error_code& ec, call_site site) {
  ec = {};
  try {
    if (!out) out = std::make_unique<char[]>(record_buffer);
    std::unique_lock e(engine);
    for (;;) {
      int n = ::BIO_read(net_bio, out.get(), static_cast<int>(record_buffer));
      if (n <= 0) {
        wr.unlock();  // T2: nothing left, checked and released under engine
        return;
      }
      e.unlock();
      tcp.write_all(asio::buffer(out.get(), static_cast<std::size_t>(n)), ec, site);
      e.lock();
      if (ec) {
        wr.unlock();
        return;
      }
    }
  } catch (...) {
    wr.unlock();  // a kill in the TCP write: the stream is fit only to close
    throw;
  }
}

std::size_t tls_state::read_locked(void* p, std::size_t n, error_code& ec, call_site site) {
  ec = {};
  if (n == 0) return 0;
  const int len = static_cast<int>(std::min<std::size_t>(n, INT_MAX));
  for (;;) {
    ssl_call c;
    bool mine = false;  // T3: we hold wr and send what SSL_read left
    {
      std::lock_guard e(engine);
      c = call(ssl, [&] { return ::SSL_read(ssl, p, len); });
      if (c.result <= 0 && ::BIO_ctrl_pending(net_bio) > 0) {
        taiga::interruption_mask m;  // nothing may raise here
        mine = wr.try_lock();
      }
    }
    if (c.result > 0) return static_cast<std::size_t>(c.result);  // T5
    if (mine) {
      error_code fe;
      flush_and_release(fe, site);
      if (fe && c.err == SSL_ERROR_WANT_READ) {
        ec = fe;
        return 0;
      }
    }
    switch (c.err) {
      case SSL_ERROR_WANT_READ:
        feed(*this, ec, site);
        if (ec) return 0;
        continue;
      case SSL_ERROR_WANT_WRITE: {  // the pair is full: its sender is slow
        wr.lock();
        error_code fe;
        flush_and_release(fe, site);
        if (fe) {
          ec = fe;
          return 0;
        }
        continue;
      }
      default:
        ec = ssl_error(c.err, c.code);
        return 0;
    }
  }
}

std::size_t tls_state::write_locked(const void* p, std::size_t n, error_code& ec, call_site site) {
  ec = {};
  if (n == 0) return 0;
  const int len = static_cast<int>(std::min<std::size_t>(n, 16 * 1024));  // one record
  for (;;) {
    ssl_call c;
    {
      std::lock_guard e(engine);
      c = call(ssl, [&] { return ::SSL_write(ssl, p, len); });
    }
    if (c.result > 0) {
      send_pending(*this, ec, site);  // keeps the pair from filling
      return ec ? 0 : static_cast<std::size_t>(c.result);
    }
    switch (c.err) {
      case SSL_ERROR_WANT_WRITE:
        send_pending(*this, ec, site);
        if (ec) return 0;
        continue;
      case SSL_ERROR_WANT_READ: {  // a handshake message first (no renegotiation: rare)
        send_pending(*this, ec, site);
        if (ec) return 0;
        std::unique_lock r(rd);
        feed(*this, ec, site);
        if (ec) return 0;
        continue;
      }
      default: {
        error_code fe;
        send_pending(*this, fe, site);  // an alert, as Asio's engine sends it
        ec = ssl_error(c.err, c.code);
        return 0;
      }
    }
  }
}

}  // namespace detail

tls_stream::tls_stream(tcp_stream&& s, ssl::context& ctx)
    : st_(std::make_unique<detail::tls_state>(std::move(s), ctx)) {}

tls_stream::~tls_stream() = default;

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
  SSL* ssl = s.ssl;
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
  detail::tls_state& st = state();
  ec = {};
  std::unique_lock r(st.rd);  // T4, then T2: both directions until it is done
  st.wr.lock();
  detail::tls_write_guard g{st};
  {
    std::lock_guard e(st.engine);
    if (t == client) {
      ::SSL_set_connect_state(st.ssl);
    } else {
      ::SSL_set_accept_state(st.ssl);
    }
  }
  for (;;) {
    detail::ssl_call c;
    {
      std::lock_guard e(st.engine);
      c = detail::call(st.ssl, [&] { return ::SSL_do_handshake(st.ssl); });
    }
    error_code se;
    detail::send_pending(st, se, site);  // our flight, or the alert that ends it
    if (c.result == 1) {
      ec = se;
      break;
    }
    if (c.err == SSL_ERROR_WANT_READ && !se) {
      detail::feed(st, ec, site);
      if (ec) break;
      continue;
    }
    if (c.err == SSL_ERROR_WANT_WRITE && !se) continue;
    ec = (c.err == SSL_ERROR_WANT_READ || c.err == SSL_ERROR_WANT_WRITE)
             ? se
             : detail::ssl_error(c.err, c.code);
    break;
  }
  g.released = true;
  error_code fe;
  st.flush_and_release(fe, site);
  if (!ec) ec = fe;
}

void tls_stream::handshake(handshake_type t, call_site site) {
  error_code ec;
  handshake(t, ec, site);
  if (ec) fail(ec, "TLS handshake with");
}

std::size_t tls_stream::read_until(std::string& buf, std::string_view delim, std::size_t max,
                                   error_code& ec, call_site site) {
  detail::tls_state& st = state();
  std::unique_lock r(st.rd);
  return detail::read_until_with(buf, delim, max, ec, [&](char* p, std::size_t n, error_code& e) {
    return st.read_locked(p, n, e, site);
  });
}

void tls_stream::shutdown(error_code& ec, call_site site) {
  detail::tls_state& st = state();
  ec = {};
  st.wr.lock();
  detail::tls_write_guard g{st};
  detail::ssl_call c;
  {
    std::lock_guard e(st.engine);
    c = detail::call(st.ssl, [&] { return ::SSL_shutdown(st.ssl); });
  }
  detail::send_pending(st, ec, site);  // our close_notify
  if (!ec && c.result == 0) {
    // Now the peer's close_notify. A reader of ours may be reading it: rd
    // waits for that read, which then leaves SSL_shutdown done.
    std::unique_lock r(st.rd);
    for (;;) {
      {
        std::lock_guard e(st.engine);
        c = detail::call(st.ssl, [&] { return ::SSL_shutdown(st.ssl); });
      }
      if (c.result == 1) break;
      if (c.err != SSL_ERROR_WANT_READ) {
        ec = detail::ssl_error(c.err, c.code);
        break;
      }
      detail::feed(st, ec, site);
      if (ec) break;
    }
  } else if (!ec && c.result < 0) {
    ec = detail::ssl_error(c.err, c.code);
  }
  g.released = true;
  error_code fe;
  st.flush_and_release(fe, site);
  if (!ec) ec = fe;
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
  if (st_) st_->tcp.close();
}

x509_ptr tls_stream::peer_certificate() const {
  return x509_ptr(::SSL_get1_peer_certificate(state().ssl));
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
  const char* n = ::SSL_get_servername(state().ssl, TLSEXT_NAMETYPE_host_name);
  return n ? std::string(n) : state().server_name;
}

std::string tls_stream::protocol() const {
  return ::SSL_get_version(state().ssl);
}

std::string tls_stream::cipher() const {
  const char* c = ::SSL_get_cipher_name(state().ssl);
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
      long v = ::SSL_get_verify_result(st_->ssl);
      if (v != X509_V_OK) where += std::string(" [") + ::X509_verify_cert_error_string(v) + "]";
    }
  }
  detail::throw_error(ec, what, where);
}

}  // namespace taiga::net
