// Test support for kills of loops that never park: spin() and spin_on()
// start such a loop from a plain thread (on one worker it lets nothing else
// run); a watchdog thread that ends the process with a message when
// a test outlives its limit, so that a kill that is never delivered fails
// the test instead of hanging CI.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <taiga/runtime.hpp>
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

// Spawns `body(rounds)` (a loop that never parks and bumps `rounds` each
// turn), waits on this plain thread until it has turned a few times, and
// returns the tasklet, for the caller to kill or throw into and join.
template <class Body>
taiga::tasklet<void> spin(taiga::runtime& rt, std::atomic<long>& rounds, Body body) {
  auto t = taiga::spawn(rt, [&rounds, body]() mutable { body(rounds); });
  while (rounds.load(std::memory_order_relaxed) < 100) std::this_thread::yield();
  return t;
}

// Spawns a tasklet that calls `op()` in a loop that never parks, counting
// turns in `rounds`, and returns it once it has turned a few times.
template <class Op>
taiga::tasklet<void> spin_on(taiga::runtime& rt, std::atomic<long>& rounds, Op op) {
  return spin(rt, rounds, [op](std::atomic<long>& n) mutable {
    for (;;) {
      op();
      n.fetch_add(1, std::memory_order_relaxed);
    }
  });
}

}  // namespace taiga::test
