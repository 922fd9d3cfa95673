// blocking_pool.hpp: the threads behind taiga::blocking().
//
// A bounded pool of plain threads (never workers) created on demand and
// retired after 10 s idle. A tasklet that calls blocking(fn) parks; a pool
// thread runs fn and wakes it with the result. Jobs queue FIFO when every
// thread is busy. in_flight() feeds deadlock detection: a tasklet waiting
// on a blocking call can be woken by it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "trace.hpp"

namespace taiga::detail {
struct runtime_impl;
}

namespace taiga::internal {

class blocking_pool {
 public:
  blocking_pool(detail::runtime_impl* rt, unsigned max_threads)
      : rt_(rt), max_(max_threads ? max_threads : 1) {}
  ~blocking_pool() { stop(); }

  /// `tid`: the tasklet that waits for it (0: none), for the trace.
  void submit(std::function<void()> job, std::uint64_t tid = 0) {
    std::unique_lock lk(mu_);
    if (stopping_) throw std::runtime_error("taiga: blocking() after runtime shutdown");
    in_flight_.fetch_add(1);
    jobs_.push_back(entry{std::move(job), tid, ++job_ids_});
    if (idle_ == 0 && threads_.size() - exited_ < max_) {
      threads_.emplace_back([this] { loop(); });
    } else {
      cv_.notify_one();
    }
  }

  std::size_t in_flight() const noexcept { return in_flight_.load(); }

  void stop() {
    std::vector<std::thread> ts;
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      ts.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : ts) t.join();
  }

 private:
  void loop() {
    trace::set_thread_kind(trace_format::thread_kind::pool);
    std::unique_lock lk(mu_);
    for (;;) {
      if (jobs_.empty()) {
        if (stopping_) return;
        ++idle_;
        bool got = cv_.wait_for(lk, std::chrono::seconds(10),
                                [this] { return stopping_ || !jobs_.empty(); });
        --idle_;
        if (!got) {
          // Retire; the std::thread object stays in threads_ until stop().
          ++exited_;
          return;
        }
        continue;
      }
      entry job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      if (detail::trace_on()) [[unlikely]]
        trace::blocking(rt_, true, job.tid, job.id);
      job.fn();  // never throws: blocking() wraps the user's function
      if (detail::trace_on()) [[unlikely]]
        trace::blocking(rt_, false, job.tid, job.id);
      in_flight_.fetch_sub(1);
      lk.lock();
    }
  }

  struct entry {
    std::function<void()> fn;
    std::uint64_t tid = 0;  // who waits (trace)
    std::uint64_t id = 0;   // the job's number in this pool (trace)
  };
  detail::runtime_impl* rt_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<entry> jobs_;
  std::uint64_t job_ids_ = 0;
  std::vector<std::thread> threads_;
  std::size_t exited_ = 0;
  unsigned idle_ = 0;
  unsigned max_;
  bool stopping_ = false;
  std::atomic<std::size_t> in_flight_{0};
};

}  // namespace taiga::internal
