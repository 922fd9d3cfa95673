// tcp.cpp: listeners, connect and resolve (net/include/taiga/net/tcp.hpp).
#include <sys/socket.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>

#include <atomic>
#include <mutex>
#include <taiga/net/tcp.hpp>

#include <taiga/runtime/blocking.hpp>
#include "listener_core.hpp"

namespace taiga::net {

namespace detail {

std::string describe(const asio::ip::tcp::endpoint& e) {
  const auto& a = e.address();
  std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return s + ":" + std::to_string(e.port());
}

std::string describe(const asio::local::stream_protocol::endpoint& e) {
  std::string p = e.path();
  if (!p.empty() && p[0] == '\0') p = "@" + p.substr(1);  // abstract namespace
  return p.empty() ? std::string("(unnamed unix socket)") : p;
}

}  // namespace detail

// ---- resolve -----------------------------------------------------------------

std::vector<tcp::endpoint> resolve(std::string_view host, std::string_view service,
                                   taiga::detail::call_site) {
  // The job owns copies of what it reads: a kill ends our wait at once
  // while the lookup runs on (taiga::blocking).
  asio::io_context& ctx = detail::current_poller().context();
  auto r = taiga::blocking([&ctx, h = std::string(host), sv = std::string(service)] {
    tcp::resolver res(ctx);
    error_code ec;
    auto results = res.resolve(h, sv, ec);
    std::vector<tcp::endpoint> out;
    for (const auto& e : results) out.push_back(e.endpoint());
    return std::make_pair(ec, std::move(out));
  });
  if (r.first) {
    detail::throw_error(r.first, "resolve",
                        std::string(host) + (service.empty() ? "" : ":" + std::string(service)));
  }
  return std::move(r.second);
}

// ---- connect -----------------------------------------------------------------

tcp_stream connect(const tcp::endpoint& ep, const connect_options& o, error_code& ec,
                   taiga::detail::call_site site) {
  detail::io_poller& p = detail::current_poller();
  detail::socket_of<tcp> sock(p.context());
  sock.open(ep.protocol(), ec);
  if (ec) return {};
  detail::direction d;
  std::optional<std::chrono::steady_clock::time_point> dl;
  if (o.timeout.count() > 0) dl = detail::after(o.timeout);
  // A kill raises out of await_op after the connect was cancelled: `sock`
  // dies with this frame and closes its fd.
  detail::await_op(
      d, p, park_cause(park_reason::io_connect, "net connect"),
      taiga::fd_object(sock.native_handle()), dl ? &*dl : nullptr, ec,
      [&](auto&& h) { sock.async_connect(ep, std::move(h)); }, site);
  if (ec) return {};
  if (o.no_delay) sock.set_option(tcp::no_delay(true), ec);
  if (ec) return {};
  return tcp_stream(p, std::move(sock));
}

tcp_stream connect(const tcp::endpoint& ep, const connect_options& o,
                   taiga::detail::call_site site) {
  error_code ec;
  tcp_stream s = connect(ep, o, ec, site);
  if (ec) detail::throw_error(ec, "connect to", detail::describe(ep));
  return s;
}

tcp_stream connect(std::string_view host, std::string_view service, const connect_options& o,
                   taiga::detail::call_site site) {
  auto start = std::chrono::steady_clock::now();
  std::vector<tcp::endpoint> eps = resolve(host, service, site);
  error_code ec = asio::error::host_not_found;
  for (const auto& ep : eps) {
    connect_options each = o;
    if (o.timeout.count() > 0) {
      auto left = o.timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - start);
      if (left.count() <= 0) {
        ec = asio::error::timed_out;
        break;
      }
      each.timeout = left;
    }
    tcp_stream s = connect(ep, each, ec, site);
    if (!ec) return s;
  }
  detail::throw_error(ec, "connect to", std::string(host) + ":" + std::string(service));
}

// ---- tcp_listener ------------------------------------------------------------

struct tcp_listener::state : detail::listener_core<tcp> {
  using listener_core::listener_core;
  std::string where;  // "127.0.0.1:port", for errors
};

tcp_listener::tcp_listener(std::unique_ptr<state> s) : st_(std::move(s)) {}
tcp_listener::tcp_listener() noexcept = default;
tcp_listener::tcp_listener(tcp_listener&&) noexcept = default;
tcp_listener& tcp_listener::operator=(tcp_listener&&) noexcept = default;
tcp_listener::~tcp_listener() = default;

tcp_listener tcp_listener::bind(const tcp::endpoint& ep, const listen_options& o) {
  auto s = std::make_unique<state>(detail::current_poller());
  error_code ec;
  auto check = [&](const char* what) {
    if (ec) detail::throw_error(ec, what, detail::describe(ep));
  };
  s->acc.open(ep.protocol(), ec);
  check("open listener on");
  if (o.reuse_address) s->acc.set_option(asio::socket_base::reuse_address(true), ec);
  check("SO_REUSEADDR on");
  if (o.reuse_port) {
    int one = 1;
    if (::setsockopt(s->acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec = error_code(errno, boost::system::system_category());
    check("SO_REUSEPORT on");
  }
  s->acc.bind(ep, ec);
  check("bind");
  s->acc.listen(o.backlog, ec);
  check("listen on");
  s->acc.non_blocking(true, ec);
  check("listen on");
  s->where = detail::describe(s->acc.local_endpoint());
  return tcp_listener(std::move(s));
}

tcp_listener tcp_listener::adopt(int fd) {
  auto s = std::make_unique<state>(detail::current_poller());
  error_code ec;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    detail::throw_error(error_code(errno, boost::system::system_category()), "adopt listener fd",
                        std::to_string(fd));
  }
  s->acc.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (!ec) s->acc.non_blocking(true, ec);
  if (ec) detail::throw_error(ec, "adopt listener fd", std::to_string(fd));
  s->where = detail::describe(s->acc.local_endpoint());
  return tcp_listener(std::move(s));
}

tcp_stream tcp_listener::accept(tcp::endpoint& peer, error_code& ec,
                                taiga::detail::call_site site) {
  if (!st_) throw usage_error("taiga::net: accept on a listener that is not open");
  return st_->accept<tcp_stream>(&peer, ec, site);
}

tcp_stream tcp_listener::accept(error_code& ec, taiga::detail::call_site site) {
  tcp::endpoint peer;
  return accept(peer, ec, site);
}

tcp_stream tcp_listener::accept(taiga::detail::call_site site) {
  error_code ec;
  tcp_stream s = accept(ec, site);
  if (ec) detail::throw_error(ec, "accept on", st_ ? st_->where : std::string());
  return s;
}

tcp::endpoint tcp_listener::local_endpoint() const {
  if (!st_) throw usage_error("taiga::net: local_endpoint of a listener that is not open");
  return st_->acc.local_endpoint();
}

bool tcp_listener::is_open() const noexcept {
  return st_ && st_->is_open();
}

void tcp_listener::close() noexcept {
  if (st_) st_->close();  // L1 in listener_core.hpp
}

int tcp_listener::native_handle() {
  if (!st_) throw usage_error("taiga::net: native_handle of a listener that is not open");
  return st_->acc.native_handle();
}

}  // namespace taiga::net
