// Child processes for the network benchmarks (connect_storm, idle_conns):
// this program re-executed with other arguments, killed and reaped whatever
// happens (SIGKILL when the harness dies, at exit, on SIGINT/SIGTERM/SIGHUP),
// and the CPU time of a process from /proc/PID/stat. The same scheme as
// tcp_echo.cpp's (whose helpers live in its own file).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.hpp"

namespace taiga_bench::child {

inline constexpr int max_children = 8;
inline std::atomic<pid_t> g_children[max_children];

inline void remember(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t zero = 0;
    if (slot.compare_exchange_strong(zero, pid)) return;
  }
}
inline void forget(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t p = pid;
    if (slot.compare_exchange_strong(p, 0)) return;
  }
}

// Async-signal-safe: kill and reap whatever is still running.
inline void kill_all() {
  for (auto& slot : g_children) {
    pid_t pid = slot.exchange(0);
    if (pid <= 0) continue;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

inline void on_signal(int sig) {
  kill_all();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

/// In the harness: no child outlives it (signals, exit, tb::fail).
inline void install_cleanup() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, on_signal);
  std::atexit(kill_all);
}

/// In a child: dies with its parent.
inline void die_with_parent() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) std::exit(1);
}

/// Raises RLIMIT_NOFILE's soft limit to the hard one; returns the new soft limit.
inline unsigned long raise_nofile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return static_cast<unsigned long>(rl.rlim_cur);
}

inline std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "/proc/self/exe";
  return std::string(buf, static_cast<std::size_t>(n));
}

struct process {
  pid_t pid = -1;
  int to_child = -1;    // its stdin (-1 unless asked for)
  int from_child = -1;  // its stdout
};

/// Starts this program with `args` (argv[1..]); its stdout is a pipe to us
/// (from_child), and its stdin one from us when `with_stdin`.
inline process start(const char* bench, std::vector<std::string> args, bool with_stdin) {
  int out[2], in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) fail(bench, std::string("pipe2: ") + std::strerror(errno));
  if (with_stdin && ::pipe2(in, O_CLOEXEC) != 0)
    fail(bench, std::string("pipe2: ") + std::strerror(errno));
  args.insert(args.begin(), self_exe());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) fail(bench, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(out[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    if (with_stdin) ::dup2(in[0], STDIN_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  remember(pid);
  ::close(out[1]);
  process p;
  p.pid = pid;
  p.from_child = out[0];
  if (with_stdin) {
    ::close(in[0]);
    p.to_child = in[1];
  }
  return p;
}

/// One line from the child (without its '\n'), waiting up to `timeout`;
/// empty when it exited or timed out (`ok` says which).
inline std::string read_line(int fd, std::chrono::milliseconds timeout, bool* ok = nullptr) {
  std::string line;
  auto deadline = clock_type::now() + timeout;
  if (ok) *ok = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0) return line;
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return line;
    char c;
    ssize_t n = ::read(fd, &c, 1);  // one byte at a time: nothing read past the line
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return line;
    if (c == '\n') {
      if (ok) *ok = true;
      return line;
    }
    line.push_back(c);
  }
}

inline bool write_line(int fd, const std::string& s) {
  std::string l = s + "\n";
  const char* p = l.data();
  std::size_t left = l.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

/// SIGTERM (or, with `term` false, just closing its pipes), then waits up
/// to 10 s; SIGKILL after that. Returns its wait status.
inline int stop(process& p, bool term = true) {
  if (p.to_child >= 0) ::close(p.to_child);
  p.to_child = -1;
  if (term) ::kill(p.pid, SIGTERM);
  int status = 0;
  auto deadline = clock_type::now() + std::chrono::seconds(10);
  for (;;) {
    pid_t r = ::waitpid(p.pid, &status, WNOHANG);
    if (r == p.pid || (r < 0 && errno != EINTR)) break;
    if (clock_type::now() > deadline) {
      std::fprintf(stderr, "bench: child %d did not stop in 10 s: killed\n", p.pid);
      ::kill(p.pid, SIGKILL);
      ::waitpid(p.pid, &status, 0);
      break;
    }
    ::usleep(2'000);
  }
  if (p.from_child >= 0) ::close(p.from_child);
  p.from_child = -1;
  forget(p.pid);
  p.pid = -1;
  return status;
}

/// utime + stime of a process (every thread, live or gone), in us
/// (resolution: one clock tick, 10 ms at USER_HZ 100).
inline double process_cpu_us(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // after "(comm) ": state is field 3
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) * 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// CPU time of a process's live threads, in us, with ns resolution: the sum
/// of /proc/PID/task/*/schedstat's first field (time on a CPU). Threads
/// that ended are not counted (the servers' threads live as long as they
/// do). Falls back to process_cpu_us where schedstat is missing.
inline double process_cpu_us_fine(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return process_cpu_us(pid);
  double ns = 0;
  bool any = false;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name + "/schedstat");
    unsigned long long run = 0;
    if (f >> run) {
      ns += static_cast<double>(run);
      any = true;
    }
  }
  ::closedir(d);
  return any ? ns / 1e3 : process_cpu_us(pid);
}

}  // namespace taiga_bench::child
