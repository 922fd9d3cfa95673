// The load generator of bench_tcp_echo: N TCP connections to
// 127.0.0.1:PORT, each a closed loop (send 64 bytes, wait for their echo,
// check it, send the next), driven by one or two threads over raw
// non-blocking sockets and epoll (TCP_NODELAY), to leave as much of a small
// host's CPU as possible to the server. Latency (send to the last byte of
// the echo) goes into a log-linear histogram for the quantiles.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace taiga_bench {

/// Log-linear latency histogram: 16 linear buckets per power of two of
/// nanoseconds (a quantile is off by at most 1/32 of its value).
class latency_histogram {
 public:
  static constexpr int sub = 16;
  static constexpr int buckets = 64 * sub;

  void add(std::uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
  }
  void merge(const latency_histogram& o);
  std::uint64_t total() const { return total_; }
  /// The q-quantile (0 < q <= 1) in ns: the middle of its bucket; 0 if empty.
  double quantile_ns(double q) const;

 private:
  static int index(std::uint64_t ns) {
    if (ns < sub) return static_cast<int>(ns);
    int e = 63 - __builtin_clzll(ns);  // >= 4
    return (e - 3) * sub + static_cast<int>((ns >> (e - 4)) & (sub - 1));
  }
  std::uint64_t counts_[buckets] = {};
  std::uint64_t total_ = 0;
};

struct load_totals {
  std::uint64_t requests = 0;      // completed inside the measured window
  std::uint64_t all_requests = 0;  // completed at all (connect pings, warm-up, window, after)
  latency_histogram latency;       // of the window's requests
  double client_cpu_ns = 0;        // the client threads' CPU over the window
};

/// One run: connect(), start(), begin_window(), end_window(), stop(),
/// totals(). The destructor closes every connection with a reset (SO_LINGER
/// 0: no TIME_WAIT left behind to exhaust the ephemeral ports).
class tcp_load {
 public:
  static constexpr std::size_t message_size = 64;

  tcp_load() = default;
  tcp_load(const tcp_load&) = delete;
  tcp_load& operator=(const tcp_load&) = delete;
  ~tcp_load();

  /// Opens `conns` connections to 127.0.0.1:port, in batches of at most 256
  /// that each must complete one echo before the next batch connects (so
  /// the server's accept queue never overflows, and every connection is
  /// known to be served). Returns an error message, empty on success.
  std::string connect(unsigned short port, unsigned conns);
  /// Starts `threads` client threads, each driving its share of the
  /// connections; they count requests but record no latency until
  /// begin_window().
  void start(unsigned threads);
  void begin_window();
  void end_window();
  /// Stops and joins the threads. Returns an error message (a connection
  /// closed or reset, a wrong echo), empty when all went well.
  std::string stop();
  const load_totals& totals() const { return totals_; }

 private:
  struct conn {
    int fd = -1;
    std::uint32_t index = 0;
    std::uint32_t got = 0;     // bytes of the echo received
    std::uint32_t unsent = 0;  // bytes of the request not yet written (a short write)
    std::uint64_t seq = 0;
    std::uint64_t sent_ns = 0;
    char out[message_size];
    char in[message_size];
  };
  struct thread_state {
    std::vector<conn*> conns;
    int epoll_fd = -1;
    load_totals totals;
    std::string error;
    double cpu_begin_ns = 0, cpu_end_ns = 0;
    std::thread thread;
  };

  static void fill(conn& c);
  static bool send_request(conn& c, std::uint64_t now_ns);
  void drive(thread_state& t);

  std::vector<conn> conns_;
  std::vector<thread_state> threads_;
  std::atomic<int> phase_{0};  // 0 warm-up, 1 window, 2 after the window, 3 stop
  load_totals totals_;
};

/// Raises this process's RLIMIT_NOFILE soft limit to its hard limit (for
/// 10,000 connections); returns the new soft limit.
unsigned long raise_fd_limit();

std::uint64_t now_ns();

}  // namespace taiga_bench
