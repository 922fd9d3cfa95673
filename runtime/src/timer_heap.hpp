// timer_heap.hpp: one worker's timers (sleeps, timeouts, call_later).
//
// A binary min-heap of intrusive nodes under a spinlock. The lock is nearly
// always taken by the owning worker; other threads take it to cancel a timer
// armed on this worker (a tasklet that parked here and woke elsewhere), to
// run this worker's overdue timers while it is busy, or to add a timer from
// outside the runtime.
//
// Why eager removal under a lock rather than lazy deletion (Go marks timers
// deleted and sweeps them): most timeouts are cancelled, and eager removal
// keeps the heap small and lets the node live in the parked tasklet's frame,
// with no reference counting. A node's `fire` runs with the lock held, so a
// canceller that takes the lock afterwards knows the node is no longer used:
// that is what makes stack-allocated nodes safe (invariant T2).
//
// Invariants:
//  T1 node->index is its position in heap_ while armed, npos otherwise.
//  T2 node fields are touched only with the lock held once it is armed.
//  T3 next_deadline_ mirrors heap_[0] (max when empty), for lock-free peeks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <taiga/runtime/detail/tasklet_core.hpp>
#include <vector>

namespace taiga::internal {

using clock = std::chrono::steady_clock;

struct timer_node {
  static constexpr std::size_t npos = ~std::size_t{0};
  std::int64_t deadline = 0;  // steady_clock ticks (ns)
  std::size_t index = npos;
  class timer_heap* heap = nullptr;     // where it is armed (guarded by that heap's lock)
  void (*fire)(timer_node*) = nullptr;  // called with the heap's lock held
  void* arg = nullptr;
};

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch())
      .count();
}

class timer_heap {
 public:
  void add(timer_node* n) {
    std::lock_guard lk(lock_);
    n->heap = this;
    n->index = heap_.size();
    heap_.push_back(n);
    up(n->index);
    publish();
  }

  /// Removes `n` if it is still armed here. Safe from any thread.
  static bool cancel(timer_node* n) {
    // n->heap is written only under the heap's lock by add(), and add() runs
    // before the node can be cancelled by anyone who knows it.
    timer_heap* h = n->heap;
    if (h == nullptr) return false;
    std::lock_guard lk(h->lock_);
    if (n->index == timer_node::npos) return false;
    h->remove_at(n->index);
    h->publish();
    return true;
  }

  /// Fires every node due at `now`; returns how many fired.
  std::size_t run_expired(std::int64_t now) {
    if (next_deadline_.load(std::memory_order_acquire) > now) return 0;
    std::size_t fired = 0;
    std::lock_guard lk(lock_);
    while (!heap_.empty() && heap_[0]->deadline <= now) {
      timer_node* n = heap_[0];
      remove_at(0);
      n->fire(n);
      ++fired;
    }
    publish();
    return fired;
  }

  std::int64_t next_deadline() const noexcept {
    return next_deadline_.load(std::memory_order_acquire);
  }
  std::size_t size() {
    std::lock_guard lk(lock_);
    return heap_.size();
  }

 private:
  void publish() {
    next_deadline_.store(
        heap_.empty() ? std::numeric_limits<std::int64_t>::max() : heap_[0]->deadline,
        std::memory_order_release);
  }
  void remove_at(std::size_t i) {
    timer_node* n = heap_[i];
    n->index = timer_node::npos;
    timer_node* last = heap_.back();
    heap_.pop_back();
    if (i < heap_.size()) {
      heap_[i] = last;
      last->index = i;
      down(i);
      up(last->index);
    }
  }
  void up(std::size_t i) {
    while (i > 0) {
      std::size_t p = (i - 1) / 2;
      if (heap_[p]->deadline <= heap_[i]->deadline) break;
      swap(i, p);
      i = p;
    }
  }
  void down(std::size_t i) {
    for (;;) {
      std::size_t l = 2 * i + 1, r = l + 1, m = i;
      if (l < heap_.size() && heap_[l]->deadline < heap_[m]->deadline) m = l;
      if (r < heap_.size() && heap_[r]->deadline < heap_[m]->deadline) m = r;
      if (m == i) return;
      swap(i, m);
      i = m;
    }
  }
  void swap(std::size_t a, std::size_t b) {
    std::swap(heap_[a], heap_[b]);
    heap_[a]->index = a;
    heap_[b]->index = b;
  }

  detail::spinlock lock_;
  std::vector<timer_node*> heap_;
  std::atomic<std::int64_t> next_deadline_{std::numeric_limits<std::int64_t>::max()};
};

}  // namespace taiga::internal
