// run_queue.hpp: a worker's local ready queue, stealable by other workers.
//
// This is Go's runq (runtime/proc.go: runqput, runqget, runqgrab): a
// 256-slot ring with a head advanced by CAS (owner pops and thieves steal)
// and a tail written only by the owner. Chosen over a Chase-Lev deque
// because its owner side is FIFO (fair, like the rest of the scheduler) and
// a thief takes half of the queue in one CAS, which spreads a spawn storm
// in a few steals. When the ring is full the owner moves half of it to the
// runtime's overflow queue in one batch (runqputslow).
//
// Invariants:
//  Q1 only the owner writes tail_; head_ only moves forward, by CAS.
//  Q2 tail_ - head_ <= capacity, as seen by the owner.
//  Q3 a thief copies slots before its CAS on head_; the CAS validates the
//     copy (if head_ moved, the owner may have reused the slots: retry).
//  Q4 slots are atomics read relaxed: a thief may read a slot the owner is
//     rewriting, but then its CAS fails and the value is discarded.
//  Q5 a queue built `solo` (the runtime has one worker) has no thieves: the
//     owner advances head_ with a plain store instead of a CAS. Other threads
//     still read head_/tail_ (size(), for idle and deadlock checks), so both
//     stay atomics. The CAS is most of a yield's scheduling cost (a locked
//     instruction drains the store buffer), which is why this is worth a flag.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <taiga/runtime/detail/tasklet_core.hpp>

namespace taiga::internal {

using detail::tasklet_core;

class run_queue {
 public:
  static constexpr std::uint32_t capacity = 256;

  explicit run_queue(bool solo = false) noexcept : solo_(solo) {}

  /// Owner only. Returns false when full (the caller then moves half out
  /// with grab_half_for_overflow and retries).
  bool push(tasklet_core* t) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - h >= capacity) return false;
    slots_[tail % capacity].store(t, std::memory_order_relaxed);
    tail_.store(tail + 1, std::memory_order_release);  // publishes the slot to thieves
    return true;
  }

  /// Owner only.
  tasklet_core* pop() noexcept {
    if (solo_) {  // Q5
      std::uint32_t h = head_.load(std::memory_order_relaxed);
      if (tail_.load(std::memory_order_relaxed) == h) return nullptr;
      tasklet_core* t = slots_[h % capacity].load(std::memory_order_relaxed);
      head_.store(h + 1, std::memory_order_release);
      return t;
    }
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (tail == h) return nullptr;
      tasklet_core* t = slots_[h % capacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release,
                                      std::memory_order_relaxed))
        return t;
    }
  }

  /// Owner only, when push failed: takes half of the queue (oldest first)
  /// into `out` and returns the count (0 if thieves emptied it meanwhile).
  std::uint32_t grab_half_for_overflow(tasklet_core** out) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    std::uint32_t n = (tail - h) / 2;
    if (n == 0) return 0;
    for (std::uint32_t i = 0; i < n; ++i)
      out[i] = slots_[(h + i) % capacity].load(std::memory_order_relaxed);
    if (solo_) {
      head_.store(h + n, std::memory_order_release);
      return n;
    }
    if (!head_.compare_exchange_strong(h, h + n, std::memory_order_release,
                                       std::memory_order_relaxed))
      return 0;
    return n;
  }

  /// Any thread: steals about half of this queue into `out` (capacity/2
  /// entries at most); returns the count.
  std::uint32_t steal_half(tasklet_core** out) noexcept {
    assert(!solo_ && "a solo run queue has no thieves (Q5)");
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t tail = tail_.load(std::memory_order_acquire);  // pairs with push's release
      std::uint32_t n = tail - h;
      n = n - n / 2;
      if (n == 0) return 0;
      if (n > capacity / 2) continue;  // read an inconsistent head/tail pair
      for (std::uint32_t i = 0; i < n; ++i)
        out[i] = slots_[(h + i) % capacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_release,
                                      std::memory_order_relaxed))
        return n;
    }
  }

  std::uint32_t size() const noexcept {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }
  bool empty() const noexcept { return size() == 0; }
  /// Any thread: how many pops and steals the queue has seen (wraps).
  std::uint32_t head() const noexcept { return head_.load(std::memory_order_acquire); }

 private:
  const bool solo_;
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::atomic<tasklet_core*> slots_[capacity];
};

}  // namespace taiga::internal
