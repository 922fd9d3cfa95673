// Byte streams (TCP, Unix) whose operations park the calling tasklet while
// they wait. Code reads as blocking, one tasklet per connection:
//
//     taiga::net::tcp_stream s = listener.accept();
//     char buf[4096];
//     for (;;) {
//       std::size_t n = s.read_some(boost::asio::buffer(buf));   // parks; eof throws
//       s.write_all(boost::asio::buffer(buf, n));
//     }
//
// Every operation comes in two forms: throwing std::system_error (naming
// the operation and the peer), and taking an error_code&. A kill, a
// throw_into or an expired timeout_scope ends a parked operation by
// cancelling that operation only (the other direction goes on) and raising
// once it is over (docs/design/net.md, E4). A stream models Asio's
// SyncReadStream and SyncWriteStream and exposes get_executor() and
// lowest_layer(), so boost::asio::ssl::stream and Boost.Beast's
// synchronous HTTP and WebSocket code run on it unchanged.
//
// One reader and one writer may use a stream at the same time (two
// tasklets, say); two readers take turns (E2). A stream must be destroyed
// before its runtime.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <taiga/net/detail/io.hpp>
#include <taiga/net/detail/read_until.hpp>
#include <type_traits>

namespace taiga::net {

namespace detail {
using call_site = taiga::detail::call_site;

template <class Protocol>
using socket_of =
    typename Protocol::socket::template rebind_executor<asio::io_context::executor_type>::other;

/// What a stream owns, on the heap so the stream can move while Asio's
/// handlers hold pointers into it.
template <class Protocol>
struct stream_state {
  explicit stream_state(io_poller& p) : home(&p), sock(p.context()) {}
  stream_state(io_poller& p, socket_of<Protocol>&& s) : home(&p), sock(std::move(s)) {}
  io_poller* home;
  socket_of<Protocol> sock;
  direction rd, wr;
};

std::string describe(const asio::ip::tcp::endpoint& e);
std::string describe(const asio::local::stream_protocol::endpoint& e);

/// The state of a stream, for the module's own free functions on streams
/// (fd passing, net/src/unix.cpp): they take the stream's direction gates.
struct stream_access;

/// The time point of an optional duration.
inline std::chrono::steady_clock::time_point after(std::chrono::nanoseconds d) {
  return std::chrono::steady_clock::now() + d;
}
}  // namespace detail

/// A connected byte stream: TCP (tcp_stream) or a Unix socket (unix_stream).
template <class Protocol>
class basic_stream {
 public:
  using protocol_type = Protocol;
  using endpoint_type = typename Protocol::endpoint;
  using socket_type = detail::socket_of<Protocol>;
  using executor_type = asio::io_context::executor_type;
  using lowest_layer_type = typename socket_type::lowest_layer_type;
  using call_site = detail::call_site;

  /// Not connected (a moved-from stream is too).
  basic_stream() = default;
  /// Adopts a connected Asio socket of one of this runtime's contexts.
  basic_stream(detail::io_poller& home, socket_type&& s)
      : st_(std::make_unique<detail::stream_state<Protocol>>(home, std::move(s))) {
    st_->sock.non_blocking(true);
  }
  basic_stream(basic_stream&&) noexcept = default;
  basic_stream& operator=(basic_stream&&) noexcept = default;
  ~basic_stream() = default;

  bool is_open() const noexcept { return st_ && st_->sock.is_open(); }

  // ---- reading ------------------------------------------------------------

  /// Reads at least one byte (parks until some arrive); 0 only for an empty
  /// buffer. Throws system_error; asio::error::eof when the peer closed.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = read_some(b, ec, site);
    if (ec) fail(ec, "read from");
    return n;
  }
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& b, error_code& ec,
                        call_site site = call_site::current()) {
    auto& s = state();
    std::unique_lock g(s.rd.gate);  // E2; an interruption point
    return read_locked(b, ec, site);
  }

  /// Fills the whole buffer (parks as needed). Fewer bytes only with an
  /// error (eof: the peer closed first); the bytes read so far are in the
  /// buffer and the count is returned.
  template <class MutableBuffers>
  std::size_t read_exact(const MutableBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = read_exact(b, ec, site);
    if (ec) fail(ec, "read_exact from");
    return n;
  }
  template <class MutableBuffers>
  std::size_t read_exact(const MutableBuffers& b, error_code& ec,
                         call_site site = call_site::current()) {
    auto& s = state();
    std::unique_lock g(s.rd.gate);
    std::size_t want = asio::buffer_size(b), got = 0;
    boost::beast::buffers_suffix<MutableBuffers> rest(b);
    ec = {};
    while (got < want) {
      std::size_t n = read_locked(rest, ec, site);
      if (ec) break;
      rest.consume(n);
      got += n;
    }
    return got;
  }

  /// Reads into `buf` (appending) until it holds `delim`; returns the
  /// length up to and including the delimiter. Bytes after it stay in `buf`
  /// for the next call. Fails with asio::error::message_size once `buf`
  /// would pass `max` bytes without a delimiter (what was read is kept).
  std::size_t read_until(std::string& buf, std::string_view delim, std::size_t max,
                         call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = read_until(buf, delim, max, ec, site);
    if (ec) fail(ec, "read_until from");
    return n;
  }
  std::size_t read_until(std::string& buf, std::string_view delim, std::size_t max, error_code& ec,
                         call_site site = call_site::current()) {
    auto& s = state();
    std::unique_lock g(s.rd.gate);
    return detail::read_until_with(buf, delim, max, ec, [&](char* p, std::size_t n, error_code& e) {
      return read_locked(asio::buffer(p, n), e, site);
    });
  }

  /// Parks until the stream is readable (data, end of stream or an error),
  /// without a buffer: an idle connection then holds no read buffer
  /// (golang/go#15735). The next read_some finds the data at once.
  void wait_readable(call_site site = call_site::current()) {
    error_code ec;
    wait_readable(ec, site);
    if (ec) fail(ec, "wait_readable on");
  }
  void wait_readable(error_code& ec, call_site site = call_site::current()) {
    auto& s = state();
    std::unique_lock g(s.rd.gate);
    detail::await_op(
        s.rd, *s.home, park_cause(park_reason::io_read, "net wait readable"),
        taiga::fd_object(s.sock.native_handle()), nullptr, ec,
        [&](auto&& h) { s.sock.async_wait(socket_type::wait_read, std::move(h)); }, site);
    s.rd.speculate = true;
  }

  // ---- writing ------------------------------------------------------------

  /// Writes at least one byte (parks until there is room).
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = write_some(b, ec, site);
    if (ec) fail(ec, "write to");
    return n;
  }
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& b, error_code& ec,
                         call_site site = call_site::current()) {
    auto& s = state();
    std::unique_lock g(s.wr.gate);
    return write_locked(b, ec, site);
  }

  /// Writes every byte of `b` (a buffer or a sequence of them: one gather
  /// write when the socket has room), parking while the peer is slow.
  /// Returns the bytes written (all of them unless `ec` is set).
  template <class ConstBuffers>
  std::size_t write_all(const ConstBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = write_all(b, ec, site);
    if (ec) fail(ec, "write to");
    return n;
  }
  template <class ConstBuffers>
  std::size_t write_all(const ConstBuffers& b, error_code& ec,
                        call_site site = call_site::current()) {
    auto& s = state();
    std::unique_lock g(s.wr.gate);
    std::size_t want = asio::buffer_size(b);
    ec = {};
    std::size_t n = write_locked(b, ec, site);  // usually all of it
    if (ec || n == want) return n;
    boost::beast::buffers_suffix<ConstBuffers> rest(b);
    rest.consume(n);
    std::size_t done = n;
    while (done < want) {
      n = write_locked(rest, ec, site);
      if (ec) break;
      rest.consume(n);
      done += n;
    }
    return done;
  }

  /// Parks until the stream is writable.
  void wait_writable(call_site site = call_site::current()) {
    error_code ec;
    auto& s = state();
    std::unique_lock g(s.wr.gate);
    detail::await_op(
        s.wr, *s.home, park_cause(park_reason::io_write, "net wait writable"),
        taiga::fd_object(s.sock.native_handle()), nullptr, ec,
        [&](auto&& h) { s.sock.async_wait(socket_type::wait_write, std::move(h)); }, site);
    if (ec) fail(ec, "wait_writable on");
  }

  // ---- the connection -------------------------------------------------------

  /// Half-close: the peer reads end of stream; reading here goes on.
  void shutdown_send() {
    error_code ec;
    state().sock.shutdown(asio::socket_base::shutdown_send, ec);
    if (ec) fail(ec, "shutdown of");
  }
  /// Closes the socket now (the destructor does too). Must not race an
  /// operation of another tasklet on this stream.
  void close() noexcept {
    if (st_) {
      error_code ec;
      st_->sock.close(ec);
    }
  }
  void no_delay(bool on) { set_option(asio::ip::tcp::no_delay(on), "no_delay on"); }
  void keep_alive(bool on) { set_option(asio::socket_base::keep_alive(on), "keep_alive on"); }

  endpoint_type local_endpoint() const { return state().sock.local_endpoint(); }
  endpoint_type remote_endpoint() const { return state().sock.remote_endpoint(); }
  int native_handle() { return state().sock.native_handle(); }

  executor_type get_executor() noexcept { return state().sock.get_executor(); }
  lowest_layer_type& lowest_layer() noexcept { return state().sock.lowest_layer(); }
  const lowest_layer_type& lowest_layer() const noexcept { return state().sock.lowest_layer(); }
  /// The Asio socket itself, for options this class does not wrap.
  socket_type& socket() noexcept { return state().sock; }

 private:
  detail::stream_state<Protocol>& state() const {
    if (!st_) throw usage_error("taiga::net: operation on a stream that is not connected");
    return *st_;
  }

  template <class MutableBuffers>
  std::size_t read_locked(const MutableBuffers& b, error_code& ec, call_site site) {
    auto& s = *st_;
    std::size_t size = asio::buffer_size(b);
    if (size == 0) {
      ec = {};
      return 0;
    }
    if (s.rd.speculate) {  // E3
      std::size_t n = s.sock.read_some(b, ec);
      if (ec != asio::error::would_block && ec != asio::error::try_again) {
        if (!ec && n < size) s.rd.speculate = false;  // drained: next time, the reactor
        return n;
      }
      s.rd.speculate = false;
    }
    auto start = [&](auto&& h) { s.sock.async_read_some(b, std::move(h)); };
    const void* fd = taiga::fd_object(s.sock.native_handle());  // dumps print "fd N"
    constexpr park_cause read_cause(park_reason::io_read, "net read");
    std::size_t n = s.home->owned_by_caller()
                        ? detail::await_deferred(s.rd, *s.home, read_cause, fd, ec, start, site)
                        : detail::await_op(s.rd, *s.home, read_cause, fd, nullptr, ec, start, site);
    // A full buffer: maybe more. An error or end of stream: the next read
    // must see it again at once (the reactor's edge for it is spent, and
    // Asio skips its own speculative read after one that met end of stream).
    if (ec || n == size) s.rd.speculate = true;
    return n;
  }

  template <class ConstBuffers>
  std::size_t write_locked(const ConstBuffers& b, error_code& ec, call_site site) {
    auto& s = *st_;
    if (asio::buffer_size(b) == 0) {
      ec = {};
      return 0;
    }
    std::size_t n = s.sock.write_some(b, ec);  // E3: a write that fits never parks
    if (ec != asio::error::would_block && ec != asio::error::try_again) return n;
    return detail::await_op(
        s.wr, *s.home, park_cause(park_reason::io_write, "net write"),
        taiga::fd_object(s.sock.native_handle()), nullptr, ec,
        [&](auto&& h) { s.sock.async_write_some(b, std::move(h)); }, site);
  }

  template <class Option>
  void set_option(const Option& o, const char* what) {
    error_code ec;
    state().sock.set_option(o, ec);
    if (ec) fail(ec, what);
  }

  [[noreturn]] void fail(const error_code& ec, const char* op) const {
    std::string where;
    if (st_) {
      error_code e2;
      auto ep = st_->sock.remote_endpoint(e2);
      if (!e2) where = detail::describe(ep);
    }
    detail::throw_error(ec, op, where);
  }

  friend struct detail::stream_access;
  std::unique_ptr<detail::stream_state<Protocol>> st_;
};

using tcp_stream = basic_stream<asio::ip::tcp>;
using unix_stream = basic_stream<asio::local::stream_protocol>;

}  // namespace taiga::net
