// unix.cpp: Unix domain listeners, connect and fd passing
// (net/include/taiga/net/unix.hpp).
//
// fd passing is sendmsg/recvmsg on the stream's native handle, under the
// stream's own direction gates (E2) and parking on its readiness through
// await_op (a wait writes into no buffer: a cancelled one loses nothing).
// Asio queues a wait after re-arming the descriptor in epoll, so readiness
// that came between the EAGAIN and the wait still wakes it.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/local/connect_pair.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <taiga/net/unix.hpp>
#include <taiga/runtime/this_tasklet.hpp>

#include "listener_core.hpp"

namespace taiga::net {

namespace detail {
struct stream_access {
  template <class Protocol>
  static stream_state<Protocol>& state(basic_stream<Protocol>& s) {
    return s.state();
  }
};
}  // namespace detail

namespace {

constexpr std::size_t max_fds_per_message = 253;  // the kernel's SCM_MAX_FD

error_code errno_code(int e) {
  return error_code(e, boost::system::system_category());
}

/// The name of a stream for errors: its peer's path, else its own.
std::string where_of(detail::stream_state<unix_protocol>& st) {
  error_code ec;
  auto r = st.sock.remote_endpoint(ec);
  if (!ec && !r.path().empty()) return detail::describe(r);
  auto l = st.sock.local_endpoint(ec);
  if (!ec && !l.path().empty()) return detail::describe(l);
  return "(unnamed unix socket)";
}

/// Parks until the stream's direction `d` is ready (`w`).
void await_ready(detail::stream_state<unix_protocol>& st, detail::direction& d,
                 asio::socket_base::wait_type w, park_cause what, error_code& ec,
                 taiga::detail::call_site site) {
  detail::await_op(
      d, *st.home, what, taiga::fd_object(st.sock.native_handle()), nullptr, ec,
      [&](auto&& h) { st.sock.async_wait(w, std::move(h)); }, site);
}

}  // namespace

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

unix_protocol::endpoint unix_endpoint(std::string_view name, error_code& ec) {
  ec = {};
  std::string raw;
  if (name.empty() || name == "@") {
    ec = asio::error::invalid_argument;
    return {};
  }
  if (name[0] == '@') {
    raw.assign(1, '\0');
    raw.append(name.substr(1));
  } else {
    if (name.find('\0') != std::string_view::npos) {
      ec = asio::error::invalid_argument;
      return {};
    }
    raw.assign(name);
  }
  if (raw.size() > sizeof(sockaddr_un::sun_path) - 1) {
    ec = errno_code(ENAMETOOLONG);
    return {};
  }
  return unix_protocol::endpoint(raw);
}

// ---- connect ---------------------------------------------------------------------

unix_stream connect_unix(std::string_view name, error_code& ec, taiga::detail::call_site) {
  unix_protocol::endpoint ep = unix_endpoint(name, ec);
  if (ec) return {};
  detail::io_poller& p = detail::current_poller();
  detail::socket_of<unix_protocol> sock(p.context());
  sock.open(unix_protocol(), ec);
  if (!ec) sock.non_blocking(true, ec);
  if (ec) return {};
  // A Unix connect does not go on in the background (no EINPROGRESS): it
  // succeeds or fails at once, or says EAGAIN while the listener's queue is
  // full, with nothing to wait on. Back off and retry then (a sleep: kill
  // and timeout_scope end it).
  auto backoff = std::chrono::milliseconds(1);
  for (;;) {
    if (::connect(sock.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) == 0) break;
    int e = errno;
    if (e == EAGAIN || e == EINTR) {
      taiga::this_tasklet::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(64));
      continue;
    }
    ec = errno_code(e);
    return {};
  }
  return unix_stream(p, std::move(sock));
}

unix_stream connect_unix(std::string_view name, taiga::detail::call_site site) {
  error_code ec;
  unix_stream s = connect_unix(name, ec, site);
  if (ec) detail::throw_error(ec, "connect to unix", std::string(name));
  return s;
}

std::pair<unix_stream, unix_stream> unix_stream_pair() {
  detail::io_poller& p = detail::current_poller();
  detail::socket_of<unix_protocol> a(p.context()), b(p.context());
  error_code ec;
  asio::local::connect_pair(a, b, ec);
  if (ec) detail::throw_error(ec, "socketpair", "unix");
  return {unix_stream(p, std::move(a)), unix_stream(p, std::move(b))};
}

// ---- unix_listener -----------------------------------------------------------------

struct unix_listener::state : detail::listener_core<unix_protocol> {
  using listener_core::listener_core;
  std::string name;  // as bound ("@x" for abstract), for errors
  // unlink_on_close: the file this listener created.
  std::string unlink_path;
  dev_t dev = 0;
  ino_t ino = 0;
  std::atomic<bool> unlinked{false};

  void remove_file() noexcept {
    if (unlink_path.empty() || unlinked.exchange(true)) return;
    struct stat st {};
    // Only if it is still ours: a later listener may have replaced it.
    if (::lstat(unlink_path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino)
      ::unlink(unlink_path.c_str());
  }
};

unix_listener::unix_listener(std::unique_ptr<state> s) : st_(std::move(s)) {}
unix_listener::unix_listener(unix_listener&&) noexcept = default;
unix_listener& unix_listener::operator=(unix_listener&& o) noexcept {
  if (this != &o) {
    close();
    st_ = std::move(o.st_);
  }
  return *this;
}
unix_listener::~unix_listener() {
  close();
}

namespace {
/// Removes the socket file at `path` if nothing listens on it any more.
void remove_stale(const std::string& path, const unix_protocol::endpoint& ep) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  int r = ::connect(fd, ep.data(), static_cast<socklen_t>(ep.size()));
  int e = errno;
  ::close(fd);
  if (r != 0 && e == ECONNREFUSED) ::unlink(path.c_str());
}
}  // namespace

unix_listener unix_listener::bind(std::string_view name, const unix_listen_options& o) {
  error_code ec;
  auto check = [&](const char* what) {
    if (ec) detail::throw_error(ec, what, std::string(name));
  };
  unix_protocol::endpoint ep = unix_endpoint(name, ec);
  check("bind unix");
  bool abstract = name[0] == '@';
  auto s = std::make_unique<state>(detail::current_poller());
  s->name = std::string(name);
  s->acc.open(unix_protocol(), ec);
  check("open unix listener on");
  std::string path(abstract ? std::string_view() : name);
  if (!abstract && o.unlink_stale) remove_stale(path, ep);
  s->acc.bind(ep, ec);
  check("bind unix");
  if (!abstract && o.unlink_on_close) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      s->unlink_path = path;
      s->dev = st.st_dev;
      s->ino = st.st_ino;
    }
  }
  s->acc.listen(o.backlog, ec);
  if (!ec) s->acc.non_blocking(true, ec);
  if (ec) s->remove_file();
  check("listen on unix");
  return unix_listener(std::move(s));
}

unix_listener unix_listener::adopt(int fd) {
  auto s = std::make_unique<state>(detail::current_poller());
  error_code ec;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    ec = errno_code(errno);
  else if (ss.ss_family != AF_UNIX)
    ec = asio::error::invalid_argument;
  if (!ec) s->acc.assign(unix_protocol(), fd, ec);
  if (!ec) s->acc.non_blocking(true, ec);
  if (ec) detail::throw_error(ec, "adopt unix listener fd", std::to_string(fd));
  s->name = detail::describe(s->acc.local_endpoint(ec));
  return unix_listener(std::move(s));
}

unix_stream unix_listener::accept(error_code& ec, taiga::detail::call_site site) {
  if (!st_) throw usage_error("taiga::net: accept on a unix_listener that is not open");
  return st_->accept<unix_stream>(nullptr, ec, site);
}

unix_stream unix_listener::accept(taiga::detail::call_site site) {
  error_code ec;
  unix_stream s = accept(ec, site);
  if (ec) detail::throw_error(ec, "accept on unix", st_ ? st_->name : std::string());
  return s;
}

unix_protocol::endpoint unix_listener::local_endpoint() const {
  if (!st_) throw usage_error("taiga::net: local_endpoint of a unix_listener that is not open");
  return st_->acc.local_endpoint();
}

std::string unix_listener::name() const {
  return st_ ? st_->name : std::string();
}

bool unix_listener::is_open() const noexcept {
  return st_ && st_->is_open();
}

void unix_listener::close() noexcept {
  if (!st_) return;
  st_->close();  // L1 in listener_core.hpp
  st_->remove_file();
}

int unix_listener::native_handle() {
  if (!st_) throw usage_error("taiga::net: native_handle of a unix_listener that is not open");
  return st_->acc.native_handle();
}

// ---- fd passing ------------------------------------------------------------------------

std::size_t send_fds(unix_stream& stream, std::span<const int> fds, asio::const_buffer data,
                     error_code& ec, taiga::detail::call_site site) {
  auto& st = detail::stream_access::state(stream);
  std::unique_lock g(st.wr.gate);  // E2: one writer; an interruption point
  ec = {};
  if (data.size() == 0 || fds.size() > max_fds_per_message) {
    ec = asio::error::invalid_argument;
    return 0;
  }
  int fd = st.sock.native_handle();
  alignas(cmsghdr) char control[CMSG_SPACE(max_fds_per_message * sizeof(int))];
  std::size_t done = 0;
  while (done < data.size()) {
    iovec iov{const_cast<char*>(static_cast<const char*>(data.data())) + done, data.size() - done};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (done == 0 && !fds.empty()) {  // the descriptors go with the first bytes
      std::memset(control, 0, sizeof control);
      m.msg_control = control;
      m.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    ssize_t r = ::sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) {
      done += static_cast<std::size_t>(r);
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      ec = errno_code(e);
      return done;
    }
    await_ready(st, st.wr, asio::socket_base::wait_write,
                park_cause(park_reason::io_write, "net send_fds"), ec, site);
    if (ec) return done;
  }
  return done;
}

std::size_t send_fds(unix_stream& s, std::span<const int> fds, asio::const_buffer data,
                     taiga::detail::call_site site) {
  error_code ec;
  std::size_t n = send_fds(s, fds, data, ec, site);
  if (ec) detail::throw_error(ec, "send_fds to", where_of(detail::stream_access::state(s)));
  return n;
}

received_fds receive_fds(unix_stream& stream, asio::mutable_buffer data, std::size_t max_fds,
                         error_code& ec, taiga::detail::call_site site) {
  auto& st = detail::stream_access::state(stream);
  std::unique_lock g(st.rd.gate);
  ec = {};
  received_fds out;
  if (data.size() == 0 || max_fds == 0 || max_fds > max_fds_per_message) {
    ec = asio::error::invalid_argument;
    return out;
  }
  int fd = st.sock.native_handle();
  alignas(cmsghdr) char control[CMSG_SPACE(max_fds_per_message * sizeof(int))];
  for (;;) {
    iovec iov{data.data(), data.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = CMSG_SPACE(max_fds * sizeof(int));
    ssize_t r = ::recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e != EAGAIN && e != EWOULDBLOCK) {
        ec = errno_code(e);
        return out;
      }
      st.rd.speculate = false;
      await_ready(st, st.rd, asio::socket_base::wait_read,
                  park_cause(park_reason::io_read, "net receive_fds"), ec, site);
      if (ec) return out;
      continue;
    }
    // Take ownership of every descriptor that arrived before anything can
    // fail (then they close with `raw`/`out`).
    int raw[max_fds_per_message];
    std::size_t k = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < n && k < max_fds_per_message; ++i)
        std::memcpy(&raw[k++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    try {
      out.fds.reserve(k);
    } catch (...) {
      for (std::size_t i = 0; i < k; ++i) ::close(raw[i]);
      throw;
    }
    for (std::size_t i = 0; i < k; ++i) out.fds.emplace_back(raw[i]);
    out.size = static_cast<std::size_t>(r);
    st.rd.speculate = true;                                // maybe more queued
    if ((m.msg_flags & MSG_CTRUNC) != 0 || k > max_fds) {  // (alignment may fit one more)
      out.fds.clear();                                     // closes what did arrive
      ec = asio::error::message_size;
    } else if (r == 0) {
      ec = asio::error::eof;
    }
    return out;
  }
}

received_fds receive_fds(unix_stream& s, asio::mutable_buffer data, std::size_t max_fds,
                         taiga::detail::call_site site) {
  error_code ec;
  received_fds r = receive_fds(s, data, max_fds, ec, site);
  if (ec) {
    const char* op = ec == asio::error::message_size ? "receive_fds (control data truncated) from"
                                                     : "receive_fds from";
    detail::throw_error(ec, op, where_of(detail::stream_access::state(s)));
  }
  return r;
}

}  // namespace taiga::net
