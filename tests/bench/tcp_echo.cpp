// tcp_echo: an echo server under a closed-loop load over loopback TCP, for
// three servers in the same run: taiga (tasklet per connection over
// taiga::net, tcp_echo_taiga.cpp), a plain Boost.Asio callback server
// (peers/asio_echo_server.cpp) and Go 1.19's net package (go/echo.go).
//
// Each server runs in a child process of its own (this program re-executed
// as `bench_tcp_echo --serve asio|taiga --threads W`, or echo_go -procs W),
// listening on an ephemeral port that it reports on its stdout ("PORT PID").
// The load generator (tcp_load.cpp, in this process, one client thread by
// default) opens C connections, each sending 64 bytes and waiting for their
// echo in a loop; after a 0.3 s warm-up it counts requests for `--seconds`
// (2 s) and reads the server's CPU time (utime + stime of /proc/PID/stat)
// at both ends of that window.
//
// Figures per server (no suffix: taiga; `_asio`, `_go`: the peers) and per
// configuration (workers W = taiga workers = Asio threads = GOMAXPROCS;
// connections C): `rps` (requests per second), `p99_us` (99th percentile
// latency, send to the echo's last byte), `cpu_us_per_req` (the server's CPU
// over the window / its requests). The default configuration (W = all
// cores, C = 100) has no suffix; W = 1 appends `_1w`, C = 10,000 `_10k`
// (other values: `_<W>w`, `_<C/1000>k` or `_<C>c`). `rps_ratio_asio` and
// `cpu_ratio_asio` (and `_go`) compare taiga to a peer in the default
// configuration. With `--rounds R` each figure is the median of R runs, the
// servers' order reversed every other round (the host's speed drifts).
//
// `--strace` runs W = 1, C = 100 for 1 s with each server under
// `strace -c -f` instead and prints `syscalls_per_req` (and `_asio`, `_go`):
// every system call of the server process over its life / every request it
// served (connection pings and warm-up included).
// TCP_ECHO_KEEP_STRACE=1 keeps strace's summaries (in /tmp/bench_tcp_echo.*).
//
//   bench_tcp_echo [--seconds S] [--workers-list 1,2] [--conns-list 100,10000]
//                  [--rounds R] [--client-threads N] [--servers taiga,asio,go]
//                  [--workers N] [--strace] [--quick]
//
// Without the taiga::net target (not built yet) the taiga figures are left
// out, with a line on stderr; without Go 1.19 at configure time, the Go ones.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "tcp_echo_servers.hpp"
#include "tcp_load.hpp"

namespace tb = taiga_bench;

namespace {

constexpr const char* bench = "tcp_echo";

// ---- child processes: every one is killed and reaped, whatever happens ----

constexpr int max_children = 8;
std::atomic<pid_t> g_children[max_children];

void remember_child(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t zero = 0;
    if (slot.compare_exchange_strong(zero, pid)) return;
  }
}
void forget_child(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t p = pid;
    if (slot.compare_exchange_strong(p, 0)) return;
  }
}

// Async-signal-safe: kill and reap whatever is still running.
void kill_children() {
  for (auto& slot : g_children) {
    pid_t pid = slot.exchange(0);
    if (pid <= 0) continue;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

void on_signal(int sig) {
  kill_children();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

struct server_process {
  pid_t pid = -1;         // our child (the server, or strace)
  pid_t server_pid = -1;  // the server itself (it reports its pid)
  unsigned short port = 0;
};

enum class kind { taiga, asio, go };
const char* name_of(kind k) {
  switch (k) {
    case kind::taiga:
      return "taiga";
    case kind::asio:
      return "asio";
    case kind::go:
      return "go";
  }
  return "?";
}
const char* suffix_of(kind k) {
  switch (k) {
    case kind::taiga:
      return "";
    case kind::asio:
      return "_asio";
    case kind::go:
      return "_go";
  }
  return "";
}

// This program's path (a re-executed server may run under strace, for which
// /proc/self/exe would be strace).
std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "/proc/self/exe";
  return std::string(buf, static_cast<std::size_t>(n));
}

#ifdef TAIGA_BENCH_ECHO_GO
constexpr const char* go_binary = TAIGA_BENCH_ECHO_GO;
#else
constexpr const char* go_binary = nullptr;
#endif

// Starts a server for (k, workers); under `strace -c -f -o strace_out` when
// strace_out is not empty. Waits up to 20 s for its "PORT PID" line.
server_process start_server(kind k, unsigned workers, const std::string& strace_out) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) tb::fail(bench, std::string("pipe2: ") + std::strerror(errno));
  std::string w = std::to_string(workers);
  std::vector<std::string> args;
  if (!strace_out.empty()) args = {"strace", "-c", "-f", "-o", strace_out};
  if (k == kind::go)
    args.insert(args.end(), {go_binary, "-procs", w});
  else
    args.insert(args.end(), {self_exe(), "--serve", name_of(k), "--threads", w});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) tb::fail(bench, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // die with the harness
    if (::getppid() != parent) ::_exit(1);
    ::dup2(fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    if (k == kind::go) ::setenv("GOMAXPROCS", w.c_str(), 1);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "tcp_echo: exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  remember_child(pid);
  ::close(fds[1]);

  server_process s;
  s.pid = pid;
  std::string line;
  auto deadline = tb::clock_type::now() + std::chrono::seconds(20);
  while (line.find('\n') == std::string::npos) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - tb::clock_type::now());
    pollfd p{fds[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
      ::close(fds[0]);
      tb::fail(bench, std::string(name_of(k)) + " server: no port reported in 20 s");
    }
    char buf[64];
    ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      ::close(fds[0]);
      tb::fail(bench, std::string(name_of(k)) + " server: exited before reporting its port");
    }
    line.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fds[0]);
  unsigned port = 0;
  long spid = 0;
  if (std::sscanf(line.c_str(), "%u %ld", &port, &spid) != 2 || port == 0 || port > 65535)
    tb::fail(bench, std::string(name_of(k)) + " server: bad port line: " + line);
  s.port = static_cast<unsigned short>(port);
  s.server_pid = static_cast<pid_t>(spid);
  return s;
}

// SIGTERM to the server, then waits up to 10 s for our child (strace writes
// its summary when the server is gone); SIGKILL after that. Returns our
// child's wait status.
int stop_server(server_process& s) {
  ::kill(s.server_pid, SIGTERM);
  int status = 0;
  auto deadline = tb::clock_type::now() + std::chrono::seconds(10);
  for (;;) {
    pid_t r = ::waitpid(s.pid, &status, WNOHANG);
    if (r == s.pid || (r < 0 && errno != EINTR)) break;
    if (tb::clock_type::now() > deadline) {
      std::fprintf(stderr, "tcp_echo: server %d did not stop in 10 s: killed\n", s.pid);
      ::kill(s.server_pid, SIGKILL);
      ::kill(s.pid, SIGKILL);
      ::waitpid(s.pid, &status, 0);
      break;
    }
    ::usleep(5'000);
  }
  forget_child(s.pid);
  s.pid = -1;
  return status;
}

// utime + stime of a process (every thread, live or gone), in us.
double process_cpu_us(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  // After "(comm) ": state is field 3; utime 14, stime 15.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) * 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// ---- one run ----

struct options {
  double seconds = 2.0;
  double warmup = 0.3;
  std::vector<unsigned> workers_list;
  std::vector<unsigned> conns_list = {100, 10000};
  unsigned rounds = 1;
  unsigned client_threads = 1;
  unsigned all = tb::all_cores();
  bool strace = false;
  std::vector<kind> servers = {kind::taiga, kind::asio, kind::go};
};

struct figures {
  double rps = 0, p99_us = 0, cpu_us_per_req = 0;
  std::uint64_t all_requests = 0;
};

void sleep_s(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

figures run_one(kind k, unsigned workers, unsigned conns, double seconds, double warmup,
                unsigned client_threads, const std::string& strace_out = {}) {
  server_process s = start_server(k, workers, strace_out);
  figures f;
  std::string error;
  double window_s = 0, cpu_us = 0, client_cpu_ns = 0;
  {
    tb::tcp_load load;
    error = load.connect(s.port, conns);
    if (error.empty()) {
      load.start(client_threads);
      sleep_s(warmup);
      double cpu0 = process_cpu_us(s.server_pid);
      auto t0 = tb::clock_type::now();
      load.begin_window();
      sleep_s(seconds);
      load.end_window();
      window_s = std::chrono::duration<double>(tb::clock_type::now() - t0).count();
      cpu_us = process_cpu_us(s.server_pid) - cpu0;
      error = load.stop();
      const tb::load_totals& t = load.totals();
      f.rps = static_cast<double>(t.requests) / window_s;
      f.p99_us = t.latency.quantile_ns(0.99) / 1e3;
      f.cpu_us_per_req = t.requests ? cpu_us / static_cast<double>(t.requests) : 0;
      f.all_requests = t.all_requests;
      client_cpu_ns = t.client_cpu_ns;
      if (t.requests == 0 && error.empty()) error = "no request completed in the window";
    }
  }  // the connections are reset here, before the server goes
  int status = stop_server(s);
  if (!error.empty())
    tb::fail(bench, std::string(name_of(k)) + " server, " + std::to_string(workers) + " workers, " +
                        std::to_string(conns) + " connections: " + error);
  if (strace_out.empty() && WIFEXITED(status) && WEXITSTATUS(status) != 0)
    tb::fail(bench, std::string(name_of(k)) + " server exited with status " +
                        std::to_string(WEXITSTATUS(status)) + " before it was stopped");
  if (strace_out.empty())
    std::fprintf(stderr,
                 "tcp_echo: %-5s W=%u C=%-5u %8.0f req/s  p99 %7.1f us  server %.2f us/req "
                 "(%.0f%% of a core)  client %.2f us/req\n",
                 name_of(k), workers, conns, f.rps, f.p99_us, f.cpu_us_per_req,
                 100 * cpu_us / 1e6 / window_s,
                 f.rps > 0 ? client_cpu_ns / 1e3 / (f.rps * window_s) : 0.0);
  return f;
}

// ---- the server side: `--serve KIND --threads N` ----

void report_port(unsigned short port) {
  std::printf("%u %ld\n", static_cast<unsigned>(port), static_cast<long>(::getpid()));
  std::fflush(stdout);
}

[[noreturn]] void serve(std::string_view what, unsigned threads) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // our parent: the harness, or strace
  if (::getppid() == 1) std::exit(1);
  ::signal(SIGPIPE, SIG_IGN);
  tb::raise_fd_limit();
  if (what == "asio") tb::serve_asio_echo(threads, report_port);
#ifdef TAIGA_BENCH_HAVE_NET
  if (what == "taiga") serve_taiga_echo(threads, report_port);
#endif
  std::fprintf(stderr, "tcp_echo: no server \"%.*s\" in this build\n",
               static_cast<int>(what.size()), what.data());
  std::exit(2);
}

// ---- options ----

[[noreturn]] void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s [--seconds S] [--warmup S] [--workers-list 1,2] "
               "[--conns-list 100,10000] [--rounds R] [--client-threads N] "
               "[--servers taiga,asio,go] [--workers N] [--strace] [--quick]\n",
               prog);
  std::exit(2);
}

std::vector<unsigned> parse_list(const char* prog, std::string_view s) {
  std::vector<unsigned> v;
  while (!s.empty()) {
    std::size_t comma = s.find(',');
    std::string item(s.substr(0, comma));
    char* end = nullptr;
    unsigned long x = std::strtoul(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || x == 0) usage(prog);
    v.push_back(static_cast<unsigned>(x));
    s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
  }
  if (v.empty()) usage(prog);
  return v;
}

options parse(int argc, char** argv) {
  options o;
  bool workers_list_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(argv[0]);
      return argv[++i];
    };
    auto number = [&]() {
      std::string v(next());
      char* end = nullptr;
      double x = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(x > 0)) usage(argv[0]);
      return x;
    };
    if (a == "--seconds") {
      o.seconds = number();
    } else if (a == "--warmup") {
      o.warmup = number();
    } else if (a == "--workers-list") {
      o.workers_list = parse_list(argv[0], next());
      workers_list_given = true;
    } else if (a == "--conns-list") {
      o.conns_list = parse_list(argv[0], next());
    } else if (a == "--rounds") {
      o.rounds = static_cast<unsigned>(number());
    } else if (a == "--client-threads") {
      o.client_threads = static_cast<unsigned>(number());
    } else if (a == "--workers") {  // "all" for this run (the unsuffixed figures)
      o.all = static_cast<unsigned>(number());
    } else if (a == "--servers") {
      o.servers.clear();
      std::string_view s = next();
      while (!s.empty()) {
        std::string_view item = s.substr(0, s.find(','));
        if (item == "taiga")
          o.servers.push_back(kind::taiga);
        else if (item == "asio")
          o.servers.push_back(kind::asio);
        else if (item == "go")
          o.servers.push_back(kind::go);
        else
          usage(argv[0]);
        s = item.size() == s.size() ? std::string_view{} : s.substr(item.size() + 1);
      }
    } else if (a == "--strace") {
      o.strace = true;
    } else if (a == "--quick") {
      o.seconds = 1.0;
    } else if (a == "--count") {
      next();  // accepted for scripts/bench; the duration is --seconds
    } else {
      usage(argv[0]);
    }
  }
  if (o.rounds == 0 || o.client_threads == 0 || o.all == 0) usage(argv[0]);
  if (!workers_list_given)
    o.workers_list = o.all == 1 ? std::vector<unsigned>{1} : std::vector<unsigned>{1, o.all};
  return o;
}

std::string config_suffix(const options& o, unsigned workers, unsigned conns) {
  std::string s;
  if (workers != o.all) s += "_" + std::to_string(workers) + "w";
  if (conns == 100)
    ;
  else if (conns % 1000 == 0)
    s += "_" + std::to_string(conns / 1000) + "k";
  else
    s += "_" + std::to_string(conns) + "c";
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Drops the servers this build or host cannot run, saying why on stderr.
std::vector<kind> available(const std::vector<kind>& wanted) {
  std::vector<kind> v;
  for (kind k : wanted) {
    if (k == kind::taiga) {
#ifndef TAIGA_BENCH_HAVE_NET
      std::fprintf(stderr, "tcp_echo: taiga::net not built: taiga figures skipped\n");
      continue;
#endif
    }
    if (k == kind::go && (go_binary == nullptr || ::access(go_binary, X_OK) != 0)) {
      std::fprintf(stderr,
                   "tcp_echo: the Go peer (tests/bench/go/echo.go) is not built (Go 1.19 not "
                   "found at configure time): Go figures skipped\n");
      continue;
    }
    v.push_back(k);
  }
  return v;
}

// The total of `strace -c`'s summary ("... CALLS [ERRORS] total"), or -1.
double strace_total_calls(const std::string& file) {
  std::ifstream f(file);
  std::string line, last_total;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::vector<std::string> tok;
    for (std::string t; in >> t;) tok.push_back(t);
    if (tok.size() >= 5 && tok.back() == "total") last_total = line;
  }
  if (last_total.empty()) return -1;
  std::istringstream in(last_total);
  std::vector<std::string> tok;
  for (std::string t; in >> t;) tok.push_back(t);
  // "100.00 SECONDS USECS/CALL CALLS [ERRORS] total"
  return std::stod(tok[3]);
}

int run_strace(const options& o, const std::vector<kind>& servers) {
  if (std::system("command -v strace >/dev/null 2>&1") != 0) {
    std::fprintf(stderr,
                 "tcp_echo: strace is not installed (apt-get install strace): no "
                 "syscalls_per_req\n");
    return 0;
  }
  char dir[] = "/tmp/bench_tcp_echo.XXXXXX";
  if (::mkdtemp(dir) == nullptr) tb::fail(bench, "mkdtemp failed");
  for (kind k : servers) {
    std::string out = std::string(dir) + "/" + name_of(k) + ".strace";
    figures f = run_one(k, 1, 100, 1.0, o.warmup, o.client_threads, out);
    double calls = strace_total_calls(out);
    if (!std::getenv("TCP_ECHO_KEEP_STRACE")) ::unlink(out.c_str());
    if (calls < 0) {
      std::fprintf(stderr, "tcp_echo: no summary from strace for %s\n", name_of(k));
      continue;
    }
    std::fprintf(stderr, "tcp_echo: %s under strace: %.0f syscalls, %llu requests\n", name_of(k),
                 calls, static_cast<unsigned long long>(f.all_requests));
    tb::report(bench, (std::string("syscalls_per_req") + suffix_of(k)).c_str(),
               calls / static_cast<double>(f.all_requests), "count");
  }
  ::rmdir(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--serve") {
    unsigned threads = 1;
    if (argc >= 5 && std::string_view(argv[3]) == "--threads")
      threads = static_cast<unsigned>(std::strtoul(argv[4], nullptr, 10));
    if (argc < 3) usage(argv[0]);
    serve(argv[2], threads);
  }
  options o = parse(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, on_signal);
  std::atexit(kill_children);  // tb::fail exits: no server is left behind
  unsigned long nofile = tb::raise_fd_limit();
  unsigned max_conns = *std::max_element(o.conns_list.begin(), o.conns_list.end());
  if (nofile < max_conns + 64)
    std::fprintf(stderr, "tcp_echo: RLIMIT_NOFILE is %lu: %u connections may fail\n", nofile,
                 max_conns);

  std::vector<kind> servers = available(o.servers);
  if (servers.empty()) tb::fail(bench, "no server to run");
  if (o.strace) return run_strace(o, servers);

  // results[(workers, conns)][server] = one figures per round
  std::map<std::pair<unsigned, unsigned>, std::map<kind, std::vector<figures>>> results;
  for (unsigned round = 0; round < o.rounds; ++round) {
    std::vector<kind> order = servers;
    if (round % 2) std::reverse(order.begin(), order.end());
    for (unsigned w : o.workers_list)
      for (unsigned c : o.conns_list)
        for (kind k : order)
          results[{w, c}][k].push_back(run_one(k, w, c, o.seconds, o.warmup, o.client_threads));
  }

  for (auto& [config, by_server] : results) {
    auto [w, c] = config;
    std::string cs = config_suffix(o, w, c);
    std::map<kind, figures> med;
    for (auto& [k, runs] : by_server) {
      auto pick = [&](double figures::*m) {
        std::vector<double> v;
        for (const figures& f : runs) v.push_back(f.*m);
        return median(v);
      };
      med[k] = {pick(&figures::rps), pick(&figures::p99_us), pick(&figures::cpu_us_per_req), 0};
    }
    for (auto& [k, f] : med) {
      std::string sfx = std::string(suffix_of(k)) + cs;
      tb::report(bench, ("rps" + sfx).c_str(), f.rps, "req/s");
      tb::report(bench, ("p99_us" + sfx).c_str(), f.p99_us, "us");
      tb::report(bench, ("cpu_us_per_req" + sfx).c_str(), f.cpu_us_per_req, "us");
    }
    if (cs.empty() && med.count(kind::taiga)) {
      for (kind peer : {kind::asio, kind::go}) {
        if (!med.count(peer)) continue;
        std::string p = std::string("_") + name_of(peer);
        tb::report(bench, ("rps_ratio" + p).c_str(), med[kind::taiga].rps / med[peer].rps, "x");
        tb::report(bench, ("cpu_ratio" + p).c_str(),
                   med[kind::taiga].cpu_us_per_req / med[peer].cpu_us_per_req, "x");
      }
    }
  }
  std::fprintf(stderr,
               "tcp_echo: 64-byte echo over loopback, closed loop per connection, %u client "
               "thread(s), %.1f s windows after %.1f s warm-up, %u round(s) (medians); server "
               "CPU from /proc/PID/stat\n",
               o.client_threads, o.seconds, o.warmup, o.rounds);
  return 0;
}
