// Test support: a watchdog thread that ends the process with a message when
// a test outlives its limit, so that a kill that is never delivered fails
// the test instead of hanging CI.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace taiga::test {

using namespace std::chrono_literals;

// Ends the process with a message if the test is still running after the
// limit: a tasklet that cannot be killed would otherwise hang join() and CI.
class hang_guard {
 public:
  explicit hang_guard(const char* what) : what_(what), th_([this] { watch(); }) {}
  hang_guard(const hang_guard&) = delete;
  hang_guard& operator=(const hang_guard&) = delete;
  ~hang_guard() {
    {
      std::lock_guard lk(m_);
      done_ = true;
    }
    cv_.notify_one();
    th_.join();
  }

 private:
  void watch() {
#if defined(TAIGA_TEST_SANITIZED)
    constexpr auto limit = 90s;
#else
    constexpr auto limit = 20s;
#endif
    std::unique_lock lk(m_);
    if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
      std::fprintf(stderr, "%s: still running after %lld s: a kill was not delivered (hang)\n",
                   what_, static_cast<long long>(limit.count()));
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
  const char* what_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread th_;  // last: starts once the members above exist
};

}  // namespace taiga::test
