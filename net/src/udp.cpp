// udp.cpp: UDP sockets (net/include/taiga/net/udp.hpp).
//
// Receives and sends are recvmsg/sendmsg on the native handle (Asio's
// receive does not say that a datagram was truncated: MSG_TRUNC does, and
// gives its full length). When one would block, the tasklet parks on the
// socket's readiness (async_wait through await_op) and tries again: a wait
// writes into no buffer, so a cancelled one loses no datagram. Asio queues
// a wait after re-arming the descriptor in epoll (EPOLL_CTL_MOD), so a
// datagram that arrived between the EAGAIN and the wait still wakes it.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/socket_base.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <taiga/net/stream.hpp>
#include <taiga/net/tcp.hpp>
#include <taiga/net/udp.hpp>

namespace taiga::net {

namespace {

error_code last_error() {
  return error_code(errno, boost::system::system_category());
}

std::string describe(const udp::endpoint& e) {
  return detail::describe(tcp::endpoint(e.address(), e.port()));
}

}  // namespace

struct udp_socket::state {
  explicit state(detail::io_poller& p) : home(&p), sock(p.context()) {}
  detail::io_poller* home;
  asio::basic_datagram_socket<udp, asio::io_context::executor_type> sock;
  detail::direction rd, wr;
};

udp_socket::udp_socket(std::unique_ptr<state> s) : st_(std::move(s)) {}
udp_socket::udp_socket(udp_socket&&) noexcept = default;
udp_socket& udp_socket::operator=(udp_socket&&) noexcept = default;
udp_socket::~udp_socket() = default;

udp_socket::state& udp_socket::st() const {
  if (!st_) throw usage_error("taiga::net: operation on a udp_socket that is not open");
  return *st_;
}

udp_socket udp_socket::bind(const udp::endpoint& ep, const udp_options& o, error_code& ec) {
  auto s = std::make_unique<state>(detail::current_poller());
  s->sock.open(ep.protocol(), ec);
  if (!ec && o.reuse_address) s->sock.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && o.reuse_port) {
    int one = 1;
    if (::setsockopt(s->sock.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec = last_error();
  }
  if (!ec) s->sock.bind(ep, ec);
  if (!ec) s->sock.non_blocking(true, ec);
  if (ec) return {};
  return udp_socket(std::move(s));
}

udp_socket udp_socket::bind(const udp::endpoint& ep, const udp_options& o) {
  error_code ec;
  udp_socket s = bind(ep, o, ec);
  if (ec) detail::throw_error(ec, "bind udp", describe(ep));
  return s;
}

udp_socket udp_socket::open(const udp& protocol) {
  auto s = std::make_unique<state>(detail::current_poller());
  error_code ec;
  s->sock.open(protocol, ec);
  if (!ec) s->sock.non_blocking(true, ec);
  if (ec) detail::throw_error(ec, "open udp socket", protocol.family() == AF_INET6 ? "v6" : "v4");
  return udp_socket(std::move(s));
}

udp_socket udp_socket::adopt(int fd) {
  auto s = std::make_unique<state>(detail::current_poller());
  error_code ec;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int type = 0;
  socklen_t tlen = sizeof type;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0) {
    ec = last_error();
  } else if (type != SOCK_DGRAM || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    ec = asio::error::invalid_argument;
  }
  if (!ec) s->sock.assign(ss.ss_family == AF_INET6 ? udp::v6() : udp::v4(), fd, ec);
  if (!ec) s->sock.non_blocking(true, ec);
  if (ec) detail::throw_error(ec, "adopt udp fd", std::to_string(fd));
  return udp_socket(std::move(s));
}

void udp_socket::connect(const udp::endpoint& peer, error_code& ec) {
  state& s = st();
  s.sock.connect(peer, ec);
}

void udp_socket::connect(const udp::endpoint& peer) {
  error_code ec;
  connect(peer, ec);
  if (ec) detail::throw_error(ec, "connect udp to", describe(peer));
}

// ---- receiving and sending -----------------------------------------------------

udp_datagram udp_socket::receive_impl(detail::iov_list& v, error_code& ec, call_site site) {
  state& s = st();
  std::unique_lock g(s.rd.gate);  // E2; an interruption point
  ec = {};
  if (v.overflow) {
    ec = asio::error::invalid_argument;
    return {};
  }
  int fd = s.sock.native_handle();
  for (;;) {
    sockaddr_storage from{};
    msghdr m{};
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = v.v;
    m.msg_iovlen = v.n;
    // MSG_TRUNC: the datagram's real length even when it did not fit.
    ssize_t r = ::recvmsg(fd, &m, MSG_TRUNC | MSG_DONTWAIT);
    if (r >= 0) {
      udp_datagram d;
      d.full_size = static_cast<std::size_t>(r);
      d.size = std::min(d.full_size, v.bytes);
      d.truncated = (m.msg_flags & MSG_TRUNC) != 0;
      std::size_t len = std::min<std::size_t>(m.msg_namelen, d.sender.capacity());
      if (len > 0) {
        std::memcpy(d.sender.data(), &from, len);
        d.sender.resize(len);
      }
      return d;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      ec = error_code(e, boost::system::system_category());
      return {};
    }
    // E3 found nothing: park until readable, then read again.
    detail::await_op(
        s.rd, *s.home, park_cause(park_reason::io_read, "net udp receive"),
        taiga::fd_object(s.sock.native_handle()), nullptr, ec,
        [&](auto&& h) { s.sock.async_wait(asio::socket_base::wait_read, std::move(h)); }, site);
    if (ec) return {};
  }
}

std::size_t udp_socket::send_impl(detail::iov_list& v, const udp::endpoint* to, error_code& ec,
                                  call_site site) {
  state& s = st();
  std::unique_lock g(s.wr.gate);
  ec = {};
  if (v.overflow) {
    ec = asio::error::invalid_argument;
    return 0;
  }
  int fd = s.sock.native_handle();
  for (;;) {
    msghdr m{};
    if (to) {
      m.msg_name = const_cast<void*>(static_cast<const void*>(to->data()));
      m.msg_namelen = static_cast<socklen_t>(to->size());
    }
    m.msg_iov = v.v;
    m.msg_iovlen = v.n;
    ssize_t r = ::sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) return static_cast<std::size_t>(r);
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      ec = error_code(e, boost::system::system_category());
      return 0;
    }
    detail::await_op(
        s.wr, *s.home, park_cause(park_reason::io_write, "net udp send"),
        taiga::fd_object(s.sock.native_handle()), nullptr, ec,
        [&](auto&& h) { s.sock.async_wait(asio::socket_base::wait_write, std::move(h)); }, site);
    if (ec) return 0;
  }
}

// ---- errors ----------------------------------------------------------------------

void udp_socket::fail(const error_code& ec, const char* op, bool peer) const {
  std::string where = "udp";
  if (st_) {
    error_code e2;
    auto ep = peer ? st_->sock.remote_endpoint(e2) : st_->sock.local_endpoint(e2);
    if (!e2) where += " " + describe(ep);
  }
  detail::throw_error(ec, op, where);
}

void udp_socket::fail_to(const error_code& ec, const udp::endpoint& to) const {
  detail::throw_error(ec, "send_to", "udp " + describe(to));
}

template <class Option>
void udp_socket::set_option(const Option& o, const char* what) {
  error_code ec;
  st().sock.set_option(o, ec);
  if (ec) fail(ec, what, false);
}

// ---- multicast ---------------------------------------------------------------------

namespace {
template <class Option>
void group_op(asio::basic_datagram_socket<udp, asio::io_context::executor_type>& sock,
              const Option& o, const char* op, const asio::ip::address& group) {
  error_code ec;
  sock.set_option(o, ec);
  if (!ec) return;
  std::string where = "group " + group.to_string();
  error_code e2;
  udp::endpoint l = sock.local_endpoint(e2);
  if (!e2) where += " on udp " + describe(l);
  detail::throw_error(ec, op, where);
}
namespace mc = asio::ip::multicast;
}  // namespace

void udp_socket::join_group(const asio::ip::address& group) {
  group_op(st().sock, mc::join_group(group), "join_group", group);
}
void udp_socket::join_group(const asio::ip::address_v4& group, const asio::ip::address_v4& iface) {
  group_op(st().sock, mc::join_group(group, iface), "join_group", asio::ip::address(group));
}
void udp_socket::join_group(const asio::ip::address_v6& group, unsigned long if_index) {
  group_op(st().sock, mc::join_group(group, if_index), "join_group", asio::ip::address(group));
}
void udp_socket::leave_group(const asio::ip::address& group) {
  group_op(st().sock, mc::leave_group(group), "leave_group", group);
}
void udp_socket::leave_group(const asio::ip::address_v4& group, const asio::ip::address_v4& iface) {
  group_op(st().sock, mc::leave_group(group, iface), "leave_group", asio::ip::address(group));
}
void udp_socket::leave_group(const asio::ip::address_v6& group, unsigned long if_index) {
  group_op(st().sock, mc::leave_group(group, if_index), "leave_group", asio::ip::address(group));
}

void udp_socket::outbound_interface(const asio::ip::address_v4& iface) {
  set_option(asio::ip::multicast::outbound_interface(iface), "multicast outbound_interface on");
}
void udp_socket::outbound_interface(unsigned int if_index) {
  set_option(asio::ip::multicast::outbound_interface(if_index), "multicast outbound_interface on");
}
void udp_socket::multicast_loopback(bool on) {
  set_option(asio::ip::multicast::enable_loopback(on), "multicast_loopback on");
}
void udp_socket::multicast_ttl(int hops) {
  set_option(asio::ip::multicast::hops(hops), "multicast_ttl on");
}
void udp_socket::broadcast(bool on) {
  set_option(asio::socket_base::broadcast(on), "broadcast on");
}

// ---- the socket ----------------------------------------------------------------------

bool udp_socket::is_open() const noexcept {
  return st_ && st_->sock.is_open();
}

void udp_socket::close() noexcept {
  if (st_) {
    error_code ec;
    st_->sock.close(ec);
  }
}

udp::endpoint udp_socket::local_endpoint() const {
  error_code ec;
  udp::endpoint ep = st().sock.local_endpoint(ec);
  if (ec) detail::throw_error(ec, "local_endpoint of", "udp socket");
  return ep;
}

udp::endpoint udp_socket::remote_endpoint() const {
  error_code ec;
  udp::endpoint ep = st().sock.remote_endpoint(ec);
  if (ec) fail(ec, "remote_endpoint of", false);
  return ep;
}

int udp_socket::native_handle() {
  return st().sock.native_handle();
}

asio::basic_datagram_socket<udp, asio::io_context::executor_type>& udp_socket::socket() {
  return st().sock;
}

}  // namespace taiga::net
