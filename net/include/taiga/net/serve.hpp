// serve(): a TCP accept loop that runs one tasklet per connection, with a
// connection limit, a graceful stop, backoff on accept errors (EMFILE) and
// the handler's exceptions reported, never fatal.
//
//     auto l = taiga::net::tcp_listener::bind({boost::asio::ip::tcp::v4(), 8080});
//     taiga::net::server srv = taiga::net::serve(l, [](taiga::net::tcp_stream& s) {
//       char buf[4096];
//       boost::system::error_code ec;
//       for (;;) {
//         std::size_t n = s.read_some(boost::asio::buffer(buf), ec);
//         if (ec) return;                        // eof, reset: the connection is over
//         s.write_all(boost::asio::buffer(buf, n));
//       }
//     }, {.max_connections = 10000});
//     ...
//     srv.stop(2s);   // stop accepting, give connections 2 s, kill the rest
//
// serve() returns at once: the accept loop runs in a tasklet of its own
// (Go's `go http.Serve(l, h)` with http.Server.Shutdown in one object).
// The handler runs in a fresh tasklet per connection, gets the stream by
// reference (`void(tcp_stream&)`) or by value (`void(tcp_stream)`), and may
// park freely; the stream is closed when the handler returns (unless it
// moved it away). One handler object serves every connection: it is called
// concurrently from many tasklets, so it must be safe to call so (a
// stateless lambda, or one whose shared state is guarded).
//
// The accept loop (the tasklet "serve <address>"):
//   - at max_connections it stops calling accept until a connection ends:
//     new connections wait in the kernel's backlog, none is accepted and
//     closed (no churn);
//   - when accept fails with EMFILE or ENFILE (too many open files) it
//     backs off, sleeping 10 ms, doubling to 1 s, until an accept succeeds
//     (the listener stays readable, so retrying at once would spin): each
//     counts in serve_stats::accept_errors and emfile_backoffs. Other
//     transient errors (ENOBUFS, ENOMEM, EPERM from a firewall, a network
//     error of the new socket) back off the same way and count in
//     accept_errors. ECONNABORTED (a peer that reset while queued) is
//     skipped by tcp_listener::accept itself;
//   - an error that cannot get better (the listener is not listening, is
//     not a socket) ends the accept loop: it is reported to on_error and
//     kept in server::accept_error(); connections still running go on, and
//     join() returns once they are done.
//
// A handler's exception is reported to serve_options::on_error (by default
// one line on stderr per failed connection) and ends only that connection;
// a kill (stop's deadline, a runtime shutdown) is not an error.
//
// Stopping: stop(deadline) closes the listener, asks every connection
// tasklet to stop (its stop token: this_tasklet::stop_requested(), a
// std::stop_callback), waits for them until the deadline, kills the ones
// still running (their park point raises tasklet_exit; a parked read or
// write is cancelled, docs/design/net.md E4), waits for them to unwind, and
// returns. close() only stops accepting. The server's destructor stops it
// with a deadline of now (so kills at once) if that has not happened.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <taiga/net/tcp.hpp>
#include <type_traits>
#include <utility>

namespace taiga::net {

/// Options of serve(). Every member has a default member initializer:
/// `serve(l, h, {.max_connections = 100})`.
struct serve_options {
  /// Connections served at once; 0: no limit. At the limit the accept loop
  /// waits (accepting nothing) until one ends.
  std::size_t max_connections = 0;
  /// Called, on the connection's tasklet, with the exception a handler
  /// ended with and the peer's address; and once with the error that ended
  /// the accept loop, if one does (then `peer` is the default endpoint).
  /// Empty: one line on stderr. It may park; an exception escaping it is
  /// dropped. Never called for a kill.
  std::function<void(std::exception_ptr, const tcp::endpoint& peer)> on_error = nullptr;
  /// Backoff after a failed accept: the first sleep, doubled after each
  /// further failure up to the second; a successful accept resets it.
  std::chrono::milliseconds backoff_min{10};
  std::chrono::milliseconds backoff_max{1000};
  /// Name of the connection tasklets in dumps and deadlock reports
  /// ("<name> <peer address>"); the accept loop is "<name> <local address>".
  std::string name = "serve";
};

/// Counters of a server, read by server::stats() (a snapshot; each counter
/// is exact, the set is not read at one instant).
struct serve_stats {
  std::uint64_t accepted = 0;         // connections accepted (handler tasklets spawned)
  std::uint64_t active = 0;           // handler tasklets running now
  std::uint64_t peak = 0;             // most handler tasklets running at once
  std::uint64_t handler_errors = 0;   // handlers that ended with an exception
  std::uint64_t accept_errors = 0;    // accepts that failed (each backed off, or ended the loop)
  std::uint64_t emfile_backoffs = 0;  // of those, EMFILE / ENFILE
  std::uint64_t limit_waits = 0;      // times the loop paused at max_connections
  std::uint64_t killed = 0;           // handler tasklets killed at stop()'s deadline
};

namespace detail {
struct server_state;
using conn_handler = std::function<void(tcp_stream&)>;
}  // namespace detail

/// A running serve() accept loop and its connection tasklets. Move-only;
/// destroying one that has not been stopped stops it at once (a kill of
/// every connection) and waits for that. Call its members from tasklets of
/// the server's runtime (or plain threads, which block), not from a handler
/// (stop() would wait for the handler calling it: use close() there).
class server {
 public:
  /// No server.
  server() noexcept = default;
  server(server&&) noexcept;
  server& operator=(server&&) noexcept;
  ~server();

  /// Stops gracefully: closes the listener (nothing more is accepted; a
  /// client connecting now is refused), requests a stop of every
  /// connection tasklet, waits for them until `deadline`, then kills those
  /// still running and waits until they are gone. Returns with no tasklet
  /// of the server left. Idempotent; two callers both return once done.
  void stop(std::chrono::steady_clock::time_point deadline);
  /// stop(now + grace). stop(0s) kills every connection at once.
  template <class Rep, class Period>
  void stop(std::chrono::duration<Rep, Period> grace) {
    stop(std::chrono::steady_clock::now() +
         std::chrono::ceil<std::chrono::steady_clock::duration>(grace));
  }
  /// Stops accepting (closes the listener) and returns at once; the
  /// connections go on. Safe from a handler.
  void close() noexcept;
  /// Waits until the accept loop has ended (close(), stop(), or an accept
  /// error it cannot recover from) and every connection is done.
  void join();
  /// True once the accept loop has ended and no connection is left.
  bool done() const noexcept;

  serve_stats stats() const noexcept;
  /// The error that ended the accept loop; none after close() or stop().
  error_code accept_error() const;
  /// The listener's address (as it was when serve() started).
  tcp::endpoint local_endpoint() const;
  bool valid() const noexcept { return st_ != nullptr; }

 private:
  friend server serve_impl(tcp_listener*, std::unique_ptr<tcp_listener>, detail::conn_handler,
                           serve_options);
  explicit server(std::shared_ptr<detail::server_state> s) noexcept;
  std::shared_ptr<detail::server_state> st_;
};

/// The non-template core of serve(): `owned` is the listener when the
/// server owns it (then `l` points into it).
server serve_impl(tcp_listener* l, std::unique_ptr<tcp_listener> owned, detail::conn_handler h,
                  serve_options o);

namespace detail {
template <class Handler>
conn_handler wrap_handler(Handler&& h) {
  using H = std::decay_t<Handler>;
  if constexpr (std::is_invocable_v<H&, tcp_stream&>) {
    return conn_handler(std::forward<Handler>(h));
  } else {
    static_assert(std::is_invocable_v<H&, tcp_stream&&>,
                  "taiga::net::serve: the handler must be callable as void(tcp_stream&) or "
                  "void(tcp_stream)");
    return [fn = H(std::forward<Handler>(h))](tcp_stream& s) mutable { fn(std::move(s)); };
  }
}
}  // namespace detail

/// Starts serving `listener` (which must outlive the server: until stop()
/// or join() returned, or the server is destroyed): spawns the accept loop
/// on the calling tasklet's runtime and returns its server at once. From a
/// tasklet only. See the top of this file.
template <class Handler>
[[nodiscard]] server serve(tcp_listener& listener, Handler&& handler, serve_options o = {}) {
  return serve_impl(&listener, nullptr, detail::wrap_handler(std::forward<Handler>(handler)),
                    std::move(o));
}
/// As above; the server owns the listener (and closes it when stopped).
template <class Handler>
[[nodiscard]] server serve(tcp_listener&& listener, Handler&& handler, serve_options o = {}) {
  auto owned = std::make_unique<tcp_listener>(std::move(listener));
  tcp_listener* l = owned.get();
  return serve_impl(l, std::move(owned), detail::wrap_handler(std::forward<Handler>(handler)),
                    std::move(o));
}

}  // namespace taiga::net
