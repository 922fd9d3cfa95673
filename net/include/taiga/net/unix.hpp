// Unix domain sockets for tasklets: listening and connecting by path or
// abstract name, and passing file descriptors over a unix_stream.
//
//     auto l = taiga::net::unix_listener::bind("/run/app.sock");   // or "@app": abstract
//     taiga::spawn([s = l.accept()]() mutable { serve(s); });      // a unix_stream
//
//     taiga::net::unix_stream c = taiga::net::connect_unix("/run/app.sock");
//     int fds[] = {pipe_w};
//     taiga::net::send_fds(c, fds, boost::asio::buffer("x", 1));   // SCM_RIGHTS
//
// Names: a filesystem path (at most 107 bytes), or "@name" for Linux's
// abstract namespace (no file; gone with the last socket). A malformed
// name fails with invalid_argument (empty, or a NUL byte in a path) or
// filename_too_long, naming it.
//
// As everywhere in taiga::net (stream.hpp): a parked operation ends on a
// kill, throw_into or expired timeout_scope, cancelling that operation
// only; every operation throws std::system_error naming the socket's path
// and the cause, or takes an error_code&.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <taiga/net/stream.hpp>
#include <utility>
#include <vector>

namespace taiga::net {

using unix_protocol = asio::local::stream_protocol;

/// An owned file descriptor: closed by the destructor unless released.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Gives up ownership: the caller closes it.
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the fd held (if any) and holds `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// The endpoint of a name: a path, or "@name" for the abstract namespace.
/// Sets invalid_argument or filename_too_long for a malformed one.
unix_protocol::endpoint unix_endpoint(std::string_view name, error_code& ec);

/// Options of unix_listener::bind.
struct unix_listen_options {
  /// The kernel's accept queue (clamped by net.core.somaxconn).
  int backlog = 4096;
  /// A socket file left at the path by a process that died (nothing
  /// accepts on it: a probe connect is refused) is removed before binding.
  /// A live one, or a file that is not a socket, is never removed: bind
  /// fails with address_in_use.
  bool unlink_stale = true;
  /// close() and the destructor remove the socket file this listener
  /// created (if it is still that file). Not for abstract names or
  /// adopted sockets.
  bool unlink_on_close = true;
};

/// Connects to the listener at `name` (a path or "@name"); parks while the
/// listener's queue is full. Throws system_error naming the path (no such
/// file: not_found; nobody listening: connection_refused).
unix_stream connect_unix(std::string_view name,
                         taiga::detail::call_site site = taiga::detail::call_site::current());
unix_stream connect_unix(std::string_view name, error_code& ec,
                         taiga::detail::call_site site = taiga::detail::call_site::current());

/// Two connected, unnamed streams (socketpair): a parent and a child
/// process, or two tasklets.
std::pair<unix_stream, unix_stream> unix_stream_pair();

/// A listening Unix stream socket.
class unix_listener {
 public:
  unix_listener() = default;
  unix_listener(unix_listener&&) noexcept;
  unix_listener& operator=(unix_listener&&) noexcept;
  /// Closes (and, by the options, removes the socket file).
  ~unix_listener();

  /// Binds `name` (a path or "@name") and listens. Throws system_error
  /// naming it (address_in_use, permission_denied, invalid_argument, ...).
  static unix_listener bind(std::string_view name, const unix_listen_options& o = {});
  /// Adopts a listening socket inherited from a parent process (its file
  /// is never removed by this object).
  static unix_listener adopt(int fd);

  /// Parks until a connection arrives; drains the kernel's queue before it
  /// parks again. Accepted streams are spread round-robin over the
  /// workers' I/O contexts. Throws system_error (too_many_files_open too).
  unix_stream accept(taiga::detail::call_site site = taiga::detail::call_site::current());
  unix_stream accept(error_code& ec,
                     taiga::detail::call_site site = taiga::detail::call_site::current());

  unix_protocol::endpoint local_endpoint() const;
  /// The bound name as given to bind ("@name" for an abstract one).
  std::string name() const;
  bool is_open() const noexcept;
  /// Stops listening: a tasklet parked in accept() gets operation_aborted.
  /// Removes the socket file (unix_listen_options::unlink_on_close).
  void close() noexcept;
  int native_handle();

 private:
  struct state;
  explicit unix_listener(std::unique_ptr<state> s);
  std::unique_ptr<state> st_;
};

// ---- file descriptor passing (SCM_RIGHTS) ----------------------------------------
//
// send_fds sends the bytes of `data` (at least one: a stream carries
// descriptors only along with data) with `fds` attached to them; the peer
// gets new descriptors (dup'ed across the processes) for the same open
// files, from receive_fds. The caller keeps its own. The descriptors
// travel with the first bytes written; the kernel never hands them to a
// receive that ends before those bytes, and a receive_fds that reads them
// stops at the end of that send. A plain read_some of those bytes discards
// the descriptors (the kernel closes them).

/// Sends all of `data` (parking while the socket is full), `fds` with its
/// first bytes (at most 253: the kernel's SCM_MAX_FD). Returns the bytes
/// sent. Throws system_error naming the socket's path.
std::size_t send_fds(unix_stream& s, std::span<const int> fds, asio::const_buffer data,
                     taiga::detail::call_site site = taiga::detail::call_site::current());
std::size_t send_fds(unix_stream& s, std::span<const int> fds, asio::const_buffer data,
                     error_code& ec,
                     taiga::detail::call_site site = taiga::detail::call_site::current());

/// What receive_fds got: `size` bytes in the buffer, and the descriptors
/// that came with them (close-on-exec; owned here).
struct received_fds {
  std::size_t size = 0;
  std::vector<unique_fd> fds;
};

/// Reads at least one byte into `data` (parks until some arrive) with the
/// descriptors attached to them, at most `max_fds` (1 to 253). More than
/// that (or more than this process may open, EMFILE) is an error,
/// boost::asio::error::message_size (the kernel truncated the control data,
/// MSG_CTRUNC): the descriptors that did arrive are closed, none leaks; the
/// error_code form still returns the bytes read (the throwing form loses
/// them). End of stream: asio::error::eof.
received_fds receive_fds(unix_stream& s, asio::mutable_buffer data, std::size_t max_fds = 253,
                         taiga::detail::call_site site = taiga::detail::call_site::current());
received_fds receive_fds(unix_stream& s, asio::mutable_buffer data, std::size_t max_fds,
                         error_code& ec,
                         taiga::detail::call_site site = taiga::detail::call_site::current());

}  // namespace taiga::net
