// The load generator of bench_tcp_echo: see tcp_load.hpp.
#include "tcp_load.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

namespace taiga_bench {

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

constexpr unsigned batch = 256;
constexpr std::uint64_t batch_deadline_ns = 10'000'000'000u;  // 10 s for one batch's echoes
constexpr int max_connect_retries = 100;

}  // namespace

unsigned long raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return static_cast<unsigned long>(rl.rlim_cur);
}

void latency_histogram::merge(const latency_histogram& o) {
  for (int i = 0; i < buckets; ++i) counts_[i] += o.counts_[i];
  total_ += o.total_;
}

double latency_histogram::quantile_ns(double q) const {
  if (total_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
  rank = std::clamp<std::uint64_t>(rank, 1, total_);
  std::uint64_t seen = 0;
  for (int i = 0; i < buckets; ++i) {
    seen += counts_[i];
    if (seen < rank) continue;
    if (i < sub) return i;
    int e = i / sub + 3;
    double lo = static_cast<double>(static_cast<std::uint64_t>(sub + i % sub) << (e - 4));
    double width = static_cast<double>(std::uint64_t{1} << (e - 4));
    return lo + width / 2;
  }
  return 0;
}

tcp_load::~tcp_load() {
  phase_.store(3);
  for (thread_state& t : threads_)
    if (t.thread.joinable()) t.thread.join();
  for (thread_state& t : threads_)
    if (t.epoll_fd >= 0) ::close(t.epoll_fd);
  for (conn& c : conns_) {
    if (c.fd < 0) continue;
    linger lg{1, 0};  // close with a reset: no TIME_WAIT
    ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(c.fd);
  }
}

void tcp_load::fill(conn& c) {
  // 16 bytes that differ per request, then a fixed pattern: the echo must
  // give back exactly these 64 bytes.
  std::uint64_t head[2] = {c.index, c.seq};
  std::memcpy(c.out, head, sizeof head);
  for (std::size_t i = sizeof head; i < message_size; ++i)
    c.out[i] = static_cast<char>('a' + i % 26);
}

bool tcp_load::send_request(conn& c, std::uint64_t now) {
  ++c.seq;
  std::uint64_t head[2] = {c.index, c.seq};
  std::memcpy(c.out, head, sizeof head);
  c.sent_ns = now;
  c.got = 0;
  ssize_t w = ::send(c.fd, c.out, message_size, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    w = 0;
  }
  c.unsent = static_cast<std::uint32_t>(message_size - static_cast<std::size_t>(w));
  return true;
}

std::string tcp_load::connect(unsigned short port, unsigned n) {
  conns_.assign(n, conn{});
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return errno_text("epoll_create1", errno);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_ep{ep};

  int retries = 0;
  // Opens c's socket and starts its connect; registers it for EPOLLOUT.
  auto open = [&](conn& c) -> std::string {
    for (;;) {
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) return errno_text("socket", errno);
      int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ||
          errno == EINPROGRESS)
        break;
      int err = errno;
      ::close(c.fd);
      c.fd = -1;
      if (++retries > max_connect_retries) return errno_text("connect", err);
      ::usleep(10'000);
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u32 = c.index;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) return errno_text("epoll_ctl", errno);
    return {};
  };

  std::vector<epoll_event> evs(batch);
  for (unsigned base = 0; base < n; base += batch) {
    unsigned end = std::min(n, base + batch);
    for (unsigned i = base; i < end; ++i) {
      conn& c = conns_[i];
      c.index = i;
      fill(c);
      if (std::string e = open(c); !e.empty()) return e;
    }
    // Each connection: connected (EPOLLOUT), then one request, then its echo.
    unsigned pending = end - base;
    std::uint64_t deadline = now_ns() + batch_deadline_ns;
    while (pending > 0) {
      int k = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
      if (k < 0 && errno != EINTR) return errno_text("epoll_wait", errno);
      for (int j = 0; j < k; ++j) {
        conn& c = conns_[evs[j].data.u32];
        if (c.seq == 0) {  // connecting
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
            ::close(c.fd);
            c.fd = -1;
            if (++retries > max_connect_retries) return errno_text("connect", err);
            ::usleep(10'000);
            if (std::string e = open(c); !e.empty()) return e;
            continue;
          }
          if (!send_request(c, now_ns()) || c.unsent != 0)
            return errno_text("send (first request)", errno);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u32 = c.index;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
          continue;
        }
        ssize_t r = ::recv(c.fd, c.in + c.got, message_size - c.got, MSG_DONTWAIT);
        if (r == 0) return "the server closed a connection before its first echo";
        if (r < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
          return errno_text("recv (first echo)", errno);
        }
        c.got += static_cast<std::uint32_t>(r);
        if (c.got < message_size) continue;
        if (std::memcmp(c.in, c.out, message_size) != 0) return "a wrong echo (first request)";
        c.got = 0;
        ++totals_.all_requests;
        ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --pending;
      }
      if (pending > 0 && now_ns() > deadline)
        return std::to_string(pending) + " of connections " + std::to_string(base) + ".." +
               std::to_string(end) + " not connected and echoed in 10 s";
    }
  }
  if (retries > 0) std::fprintf(stderr, "tcp_load: %d connects retried\n", retries);
  return {};
}

void tcp_load::start(unsigned threads) {
  threads = std::clamp(threads, 1u, static_cast<unsigned>(std::max<std::size_t>(conns_.size(), 1)));
  threads_ = std::vector<thread_state>(threads);
  for (std::size_t i = 0; i < conns_.size(); ++i) threads_[i % threads].conns.push_back(&conns_[i]);
  for (thread_state& t : threads_) {
    t.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    for (conn* c : t.conns) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      ::epoll_ctl(t.epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
    }
  }
  phase_.store(0);
  for (thread_state& t : threads_) t.thread = std::thread([this, &t] { drive(t); });
}

void tcp_load::begin_window() {
  phase_.store(1);
}
void tcp_load::end_window() {
  phase_.store(2);
}

std::string tcp_load::stop() {
  phase_.store(3);
  std::string error;
  totals_.requests = 0;
  totals_.client_cpu_ns = 0;
  for (thread_state& t : threads_) {
    if (t.thread.joinable()) t.thread.join();
    totals_.requests += t.totals.requests;
    totals_.all_requests += t.totals.all_requests;
    totals_.latency.merge(t.totals.latency);
    totals_.client_cpu_ns += t.cpu_end_ns - t.cpu_begin_ns;
    if (error.empty()) error = t.error;
  }
  return error;
}

void tcp_load::drive(thread_state& t) {
  std::vector<epoll_event> evs(512);
  int seen_phase = 0;
  auto drop = [&](conn& c, std::string why) {
    ::epoll_ctl(t.epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
    if (t.error.empty()) t.error = std::move(why);
  };
  auto arm = [&](conn& c, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c;
    ::epoll_ctl(t.epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
  };
  // Every connection starts its loop.
  std::uint64_t start = now_ns();
  for (conn* c : t.conns) {
    if (!send_request(*c, start)) drop(*c, errno_text("send", errno));
    if (c->unsent != 0) arm(*c, EPOLLIN | EPOLLOUT);
  }
  for (;;) {
    int ph = phase_.load(std::memory_order_relaxed);
    if (ph != seen_phase) {
      if (seen_phase < 1 && ph >= 1) t.cpu_begin_ns = thread_cpu_ns();
      if (seen_phase < 2 && ph >= 2) t.cpu_end_ns = thread_cpu_ns();
      seen_phase = ph;
    }
    if (ph == 3) return;
    bool in_window = ph == 1;
    int k = ::epoll_wait(t.epoll_fd, evs.data(), static_cast<int>(evs.size()), 20);
    if (k < 0) {
      if (errno == EINTR) continue;
      t.error = errno_text("epoll_wait", errno);
      return;
    }
    for (int j = 0; j < k; ++j) {
      conn& c = *static_cast<conn*>(evs[j].data.ptr);
      std::uint32_t events = evs[j].events;
      if ((events & EPOLLOUT) && c.unsent != 0) {
        ssize_t w =
            ::send(c.fd, c.out + (message_size - c.unsent), c.unsent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) c.unsent -= static_cast<std::uint32_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          drop(c, errno_text("send", errno));
          continue;
        }
        if (c.unsent == 0) arm(c, EPOLLIN);
      }
      if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      ssize_t r = ::recv(c.fd, c.in + c.got, message_size - c.got, MSG_DONTWAIT);
      if (r == 0) {
        drop(c, "the server closed a connection");
        continue;
      }
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          drop(c, errno_text("recv", errno));
        continue;
      }
      c.got += static_cast<std::uint32_t>(r);
      if (c.got < message_size) continue;
      if (std::memcmp(c.in, c.out, message_size) != 0) {
        drop(c, "a wrong echo");
        continue;
      }
      std::uint64_t now = now_ns();
      ++t.totals.all_requests;
      if (in_window) {
        ++t.totals.requests;
        t.totals.latency.add(now - c.sent_ns);
      }
      if (!send_request(c, now)) {
        drop(c, errno_text("send", errno));
        continue;
      }
      if (c.unsent != 0) arm(c, EPOLLIN | EPOLLOUT);
    }
  }
}

}  // namespace taiga_bench
