// UDP for tasklets: a datagram socket whose receives park the calling
// tasklet until a datagram arrives.
//
//     auto s = taiga::net::udp_socket::bind({boost::asio::ip::address_v4::loopback(), 5353});
//     char buf[1500];
//     for (;;) {
//       taiga::net::udp_datagram d = s.receive_from(boost::asio::buffer(buf));  // parks
//       if (d.truncated) continue;                 // larger than buf: d.full_size says how large
//       s.send_to(boost::asio::buffer(buf, d.size), d.sender);
//     }
//
// As for streams (stream.hpp): every operation has a throwing form
// (std::system_error naming the operation, the endpoint and the cause) and
// one taking an error_code&; a receive tries the syscall first and parks
// only when nothing is queued (E3); a kill, throw_into or expired
// timeout_scope ends a parked operation, cancelling that one only, and no
// datagram is lost to it (a receive waits for readability, then reads: the
// datagram stays queued for the next receive); one receiver and one sender
// at a time (two receivers take turns, E2).
//
// Truncation is reported, never an error: a datagram larger than the
// buffer fills it, the rest is discarded by the kernel, and the result says
// `truncated` with the datagram's `full_size` (recvmsg's MSG_TRUNC). A
// datagram too large to send (over 65507 bytes for IPv4) fails with
// boost::asio::error::message_size (EMSGSIZE).
//
// A socket lives on the I/O context of the worker that created it and must
// be destroyed before its runtime.
#pragma once

#include <sys/uio.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstddef>
#include <memory>
#include <taiga/net/detail/io.hpp>

namespace taiga::net {

using udp = asio::ip::udp;

/// Options of udp_socket::bind.
struct udp_options {
  /// SO_REUSEADDR: several sockets on one multicast group and port.
  bool reuse_address = false;
  /// SO_REUSEPORT: several sockets (processes) on one port, the kernel
  /// spreading datagrams over them by their source.
  bool reuse_port = false;
};

/// What a receive got.
struct udp_datagram {
  /// Bytes placed in the buffer.
  std::size_t size = 0;
  /// The datagram's length on the wire; more than `size` when truncated.
  std::size_t full_size = 0;
  /// The datagram did not fit: the buffer holds its first `size` bytes,
  /// the other full_size - size are lost.
  bool truncated = false;
  /// Who sent it (the connected peer for receive()).
  udp::endpoint sender;
};

namespace detail {
/// A buffer sequence as the iovecs of one sendmsg/recvmsg (at most
/// `capacity` buffers: more fail with invalid_argument).
struct iov_list {
  static constexpr std::size_t capacity = 16;
  ::iovec v[capacity];
  std::size_t n = 0;
  std::size_t bytes = 0;
  bool overflow = false;

  template <class Buffers>
  explicit iov_list(const Buffers& b) {
    for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it) {
      asio::const_buffer c(*it);
      if (c.size() == 0) continue;
      if (n == capacity) {
        overflow = true;
        return;
      }
      v[n].iov_base = const_cast<void*>(c.data());
      v[n].iov_len = c.size();
      bytes += c.size();
      ++n;
    }
  }
};
}  // namespace detail

/// A UDP socket (IPv4 or IPv6): unconnected (send_to, receive_from) or
/// connected to one peer (send, receive).
class udp_socket {
 public:
  using call_site = taiga::detail::call_site;

  /// Not open (a moved-from socket is not either).
  udp_socket() = default;
  udp_socket(udp_socket&&) noexcept;
  udp_socket& operator=(udp_socket&&) noexcept;
  ~udp_socket();

  /// Opens and binds to `ep`. Port 0: an ephemeral port (local_endpoint()
  /// says which); address any (0.0.0.0, ::): every interface, and the
  /// socket to use for multicast groups. Throws system_error naming the
  /// endpoint (address_in_use, address_not_available, ...).
  static udp_socket bind(const udp::endpoint& ep, const udp_options& o = {});
  static udp_socket bind(const udp::endpoint& ep, const udp_options& o, error_code& ec);
  /// Opens an unbound socket of `protocol` (udp::v4() or udp::v6()): the
  /// first send or connect binds it to an ephemeral port.
  static udp_socket open(const udp& protocol = udp::v4());
  /// Adopts a UDP socket inherited from a parent process (its fd; closed
  /// by this object from now on).
  static udp_socket adopt(int fd);

  /// Connected UDP: sets the socket's peer (send and receive talk to it
  /// only; datagrams from elsewhere are dropped by the kernel) and binds an
  /// unbound socket. Never parks. Connecting again changes the peer. An
  /// ICMP "port unreachable" from the peer makes the next receive fail with
  /// connection_refused.
  void connect(const udp::endpoint& peer);
  void connect(const udp::endpoint& peer, error_code& ec);

  // ---- receiving ------------------------------------------------------------

  /// Receives one datagram (parks until one is queued) into `b` (a buffer
  /// or a sequence of at most 16 buffers: a scatter read). Truncation is
  /// reported in the result, not as an error. Throws system_error naming
  /// the local endpoint.
  template <class MutableBuffers>
  udp_datagram receive_from(const MutableBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    udp_datagram d = receive_from(b, ec, site);
    if (ec) fail(ec, "receive_from on", false);
    return d;
  }
  template <class MutableBuffers>
  udp_datagram receive_from(const MutableBuffers& b, error_code& ec,
                            call_site site = call_site::current()) {
    detail::iov_list v(b);
    return receive_impl(v, ec, site);
  }

  /// As receive_from, on a connected socket (the sender is the peer).
  /// Throws system_error naming the peer; connection_refused when the
  /// peer's port is closed (an earlier send got ICMP port unreachable).
  template <class MutableBuffers>
  udp_datagram receive(const MutableBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    udp_datagram d = receive(b, ec, site);
    if (ec) fail(ec, "receive from", true);
    return d;
  }
  template <class MutableBuffers>
  udp_datagram receive(const MutableBuffers& b, error_code& ec,
                       call_site site = call_site::current()) {
    detail::iov_list v(b);
    return receive_impl(v, ec, site);
  }

  // ---- sending --------------------------------------------------------------

  /// Sends `b` (a buffer or a sequence of at most 16: one datagram,
  /// gathered) to `to`; parks only while the socket's send buffer is full.
  /// Returns the bytes sent (all of them). Throws system_error naming `to`:
  /// message_size when the datagram is too large.
  template <class ConstBuffers>
  std::size_t send_to(const ConstBuffers& b, const udp::endpoint& to,
                      call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = send_to(b, to, ec, site);
    if (ec) fail_to(ec, to);
    return n;
  }
  template <class ConstBuffers>
  std::size_t send_to(const ConstBuffers& b, const udp::endpoint& to, error_code& ec,
                      call_site site = call_site::current()) {
    detail::iov_list v(b);
    return send_impl(v, &to, ec, site);
  }

  /// As send_to, to the connected peer.
  template <class ConstBuffers>
  std::size_t send(const ConstBuffers& b, call_site site = call_site::current()) {
    error_code ec;
    std::size_t n = send(b, ec, site);
    if (ec) fail(ec, "send to", true);
    return n;
  }
  template <class ConstBuffers>
  std::size_t send(const ConstBuffers& b, error_code& ec, call_site site = call_site::current()) {
    detail::iov_list v(b);
    return send_impl(v, nullptr, ec, site);
  }

  // ---- multicast --------------------------------------------------------------
  // Each throws system_error naming the group or option and the socket.

  /// Joins `group` on the interface the kernel's routes choose.
  void join_group(const asio::ip::address& group);
  /// Joins an IPv4 `group` on the interface that has address `iface`
  /// (127.0.0.1: loopback).
  void join_group(const asio::ip::address_v4& group, const asio::ip::address_v4& iface);
  /// Joins an IPv6 `group` on interface index `if_index` (0: the default).
  void join_group(const asio::ip::address_v6& group, unsigned long if_index);
  void leave_group(const asio::ip::address& group);
  void leave_group(const asio::ip::address_v4& group, const asio::ip::address_v4& iface);
  void leave_group(const asio::ip::address_v6& group, unsigned long if_index);
  /// The interface multicast datagrams leave by (IP_MULTICAST_IF).
  void outbound_interface(const asio::ip::address_v4& iface);
  void outbound_interface(unsigned int if_index);  // IPv6
  /// Whether this host's own sockets in the group get what it sends
  /// (IP_MULTICAST_LOOP; the kernel's default: on).
  void multicast_loopback(bool on);
  /// The hop limit of multicast datagrams sent (IP_MULTICAST_TTL; default 1:
  /// this network only).
  void multicast_ttl(int hops);
  /// SO_BROADCAST: allow sending to a broadcast address.
  void broadcast(bool on);

  // ---- the socket -------------------------------------------------------------

  bool is_open() const noexcept;
  /// Closes the socket now (the destructor does too). Must not race an
  /// operation of another tasklet on this socket: kill that one first.
  void close() noexcept;
  udp::endpoint local_endpoint() const;
  /// The connected peer; throws not_connected on an unconnected socket.
  udp::endpoint remote_endpoint() const;
  int native_handle();
  /// The Asio socket itself, for options this class does not wrap. Its own
  /// I/O functions bypass the parking above: do not use them.
  asio::basic_datagram_socket<udp, asio::io_context::executor_type>& socket();

 private:
  struct state;
  explicit udp_socket(std::unique_ptr<state> s);
  state& st() const;
  udp_datagram receive_impl(detail::iov_list& v, error_code& ec, call_site site);
  std::size_t send_impl(detail::iov_list& v, const udp::endpoint* to, error_code& ec,
                        call_site site);
  [[noreturn]] void fail(const error_code& ec, const char* op, bool peer) const;
  [[noreturn]] void fail_to(const error_code& ec, const udp::endpoint& to) const;
  template <class Option>
  void set_option(const Option& o, const char* what);

  std::unique_ptr<state> st_;
};

}  // namespace taiga::net
