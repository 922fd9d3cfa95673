// Test support for taiga::net: a runtime per test at 1, 2, 4 and 8 workers
// whose teardown checks that tasklets, I/O waits and file descriptors all
// came back (the runtime's own epoll, eventfd and timerfd included: they
// close with it).
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <taiga/net.hpp>
#include <thread>

#include "runtime_fixture.hpp"

namespace taiga::test {

/// Open file descriptors of this process.
inline int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    --n;  // the directory's own
  }
  return n;
}

/// `ls -l /proc/self/fd`, for a failure message.
inline std::string fd_list() {
  std::string out;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[256] = {};
      std::string path = std::string("/proc/self/fd/") + e->d_name;
      ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
      out += std::string(e->d_name) + " -> " + (n > 0 ? target : "?") + "\n";
    }
    ::closedir(d);
  }
  return out;
}

class net_workers : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override {
    // The stack pool keeps one fd for the process's life (a pidfd for
    // process_madvise, runtime/src/stack_pool.cpp), opened on first use:
    // open it before counting.
    static const bool warmed = [] {
      runtime warm(runtime_config{.workers = 1});
      warm.run([] {});
      return true;
    }();
    (void)warmed;
    fds_ = open_fds();
    fd_names_ = fd_list();
    runtime_config c;
    c.workers = GetParam();
    c.name = "net-test";
    rt_.emplace(std::move(c));
  }
  void TearDown() override {
    expect_clean(*rt_);
    EXPECT_EQ(rt_->report().io_waits, 0u);
    rt_.reset();
    // A library thread may hold a file open for a moment (reading a /proc
    // or /sys file): wait for the count to settle before calling it a leak.
    for (int i = 0; i < 200 && open_fds() != fds_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(open_fds(), fds_) << "file descriptors leaked; before:\n"
                                << fd_names_ << "after:\n"
                                << fd_list();
  }
  runtime& rt() { return *rt_; }
  std::optional<runtime> rt_;
  int fds_ = 0;
  std::string fd_names_;
};

inline boost::asio::ip::tcp::endpoint loopback(unsigned short port = 0) {
  return {boost::asio::ip::address_v4::loopback(), port};
}

}  // namespace taiga::test
