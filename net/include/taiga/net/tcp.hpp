// TCP: listening, accepting, connecting and name resolution, for tasklets.
//
//     auto l = taiga::net::tcp_listener::bind({boost::asio::ip::address_v4::loopback(), 0});
//     for (;;) {
//       taiga::spawn([s = l.accept()]() mutable { serve(s); });
//     }
//
// Accepted sockets are spread round-robin over the runtime's workers' I/O
// contexts; work stealing balances the rest (docs/design/net.md).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <taiga/net/stream.hpp>
#include <vector>

namespace taiga::net {

using tcp = asio::ip::tcp;

/// Options of tcp_listener::bind.
struct listen_options {
  /// The kernel's accept queue (clamped by net.core.somaxconn).
  int backlog = 4096;
  /// SO_REUSEADDR: rebind a port with connections in TIME_WAIT.
  bool reuse_address = true;
  /// SO_REUSEPORT: several listeners (processes) on one port, the kernel
  /// spreading connections over them.
  bool reuse_port = false;
};

/// Resolves `host` and `service` (a name or a port number) to endpoints,
/// on the runtime's blocking pool (getaddrinfo blocks its thread; Asio's
/// own asynchronous resolver runs a context's lookups one at a time on one
/// thread). Parks meanwhile; a kill or timeout_scope ends the wait at once.
/// Throws system_error naming the host.
std::vector<tcp::endpoint> resolve(
    std::string_view host, std::string_view service,
    taiga::detail::call_site site = taiga::detail::call_site::current());

/// Options of connect.
struct connect_options {
  /// For the whole connect (every address tried); zero: none (the
  /// timeout_scope still applies).
  std::chrono::milliseconds timeout{0};
  bool no_delay = false;
};

/// Connects to `ep`; parks until connected. Throws system_error naming the
/// endpoint (connection_refused, timed_out, ...). A connect that a kill or
/// timeout ends closes its socket.
tcp_stream connect(const tcp::endpoint& ep, const connect_options& o = {},
                   taiga::detail::call_site site = taiga::detail::call_site::current());
tcp_stream connect(const tcp::endpoint& ep, const connect_options& o, error_code& ec,
                   taiga::detail::call_site site = taiga::detail::call_site::current());
/// Resolves `host`:`service` and tries each address in turn until one
/// connects (the last error is thrown if none does).
tcp_stream connect(std::string_view host, std::string_view service, const connect_options& o = {},
                   taiga::detail::call_site site = taiga::detail::call_site::current());

/// A listening TCP socket.
class tcp_listener {
 public:
  // Out of line, as the destructor: `state` is incomplete here.
  tcp_listener() noexcept;
  tcp_listener(tcp_listener&&) noexcept;
  tcp_listener& operator=(tcp_listener&&) noexcept;
  ~tcp_listener();

  /// Binds and listens. Port 0: an ephemeral port (local_endpoint() says
  /// which). Throws system_error naming the endpoint (address_in_use, ...).
  static tcp_listener bind(const tcp::endpoint& ep, const listen_options& o = {});
  /// Adopts a listening socket inherited from a parent process (a
  /// supervisor that binds once and restarts children).
  static tcp_listener adopt(int fd);

  /// Parks until a connection arrives. Drains the kernel's queue before it
  /// parks again (a connection queued meanwhile is taken at once). A peer
  /// that reset before it was accepted is skipped. Throws system_error;
  /// too_many_files_open (EMFILE) is thrown too: serve() backs off on it.
  tcp_stream accept(taiga::detail::call_site site = taiga::detail::call_site::current());
  tcp_stream accept(error_code& ec,
                    taiga::detail::call_site site = taiga::detail::call_site::current());
  /// As accept, also returning the peer's address.
  tcp_stream accept(tcp::endpoint& peer, error_code& ec,
                    taiga::detail::call_site site = taiga::detail::call_site::current());

  tcp::endpoint local_endpoint() const;
  bool is_open() const noexcept;
  /// Stops listening: a tasklet parked in accept() gets operation_aborted.
  void close() noexcept;
  int native_handle();

 private:
  struct state;
  explicit tcp_listener(std::unique_ptr<state> s);
  std::unique_ptr<state> st_;
};

}  // namespace taiga::net
