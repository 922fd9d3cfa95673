// select.cpp: waiting on several channels at once (Go's selectgo, adapted).
//
// Protocol:
//  1. Order: the enabled cases' channels are locked all together in address
//     order (duplicates once), which makes overlapping selects deadlock-free.
//  2. Poll: cases are tried in a random order (fairness among ready cases,
//     Go's pollorder); the first that can complete at once does, its channel
//     partners are completed after the unlock, its handler runs.
//  3. Default: with an on_default case and nothing ready, it runs instead.
//  4. Park: one wait_point for the whole select, one node per case in each
//     case's wait list. The first waker to claim the wait_point wins and
//     stores its case index in wp.tag; claims by others fail, so exactly one
//     case completes (invariant C5 of channel.hpp: a select's nodes sit in
//     several lists but are claimed by a single CAS).
//  5. Unpark: after waking, every channel is locked again and the nodes that
//     were not chosen leave their lists; then the chosen handler runs.
// A select may send and receive on one channel: its own nodes never match
// each other, since only a waker matches nodes and a parked select is not
// running (Go's TestSelfSelect).
#include <algorithm>
#include <random>
#include <taiga/channels/select.hpp>
#include <vector>

namespace taiga::detail {

std::uint64_t select_random() noexcept {
  thread_local std::uint64_t s = 0x9E3779B97F4A7C15ULL ^ reinterpret_cast<std::uintptr_t>(&s);
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

namespace {

struct locked_set {
  std::vector<chan_base*> bases;
  void lock() {
    for (auto* b : bases) b->lock.lock();
  }
  void unlock() {
    for (auto it = bases.rbegin(); it != bases.rend(); ++it) (*it)->lock.unlock();
  }
};

}  // namespace

std::size_t run_select(select_case** cases, std::size_t n,
                       const std::chrono::steady_clock::time_point* deadline) {
  locked_set set;
  std::vector<std::size_t> order;
  std::size_t default_index = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (cases[i]->is_default()) {
      default_index = i;
      continue;
    }
    if (chan_base* b = cases[i]->base()) {
      set.bases.push_back(b);
      order.push_back(i);
    }
  }
  std::sort(set.bases.begin(), set.bases.end());
  set.bases.erase(std::unique(set.bases.begin(), set.bases.end()), set.bases.end());
  // Random poll order (Fisher-Yates).
  for (std::size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[select_random() % i]);

  set.lock();
  for (std::size_t i : order) {
    if (cases[i]->try_now()) {
      set.unlock();
      cases[i]->after_unlock();
      cases[i]->finish();
      return i;
    }
  }
  if (default_index < n) {
    set.unlock();
    cases[default_index]->finish();
    return default_index;
  }
  if (order.empty() && deadline == nullptr) {
    set.unlock();
    throw usage_error("taiga::select: every case is disabled and there is no default or timeout");
  }
  wait_point wp;
  try {
    prepare_wait(wp, "select", cases);
  } catch (...) {
    set.unlock();
    throw;
  }
  for (std::size_t i : order) cases[i]->park(wp, static_cast<std::uint32_t>(i));
  set.unlock();
  wake_status ws = wait(wp, deadline);
  set.lock();
  for (std::size_t i : order) {
    // The winner's node was unlinked by its waker; unpark() of an unlinked
    // node does nothing, but skip it anyway.
    if (ws == wake_status::signaled && i == wp.tag) continue;
    cases[i]->unpark();
  }
  set.unlock();
  if (ws == wake_status::signaled) {
    std::size_t i = wp.tag;
    cases[i]->finish_woken();
    return i;
  }
  if (ws == wake_status::interrupted) throw_interrupt();
  return select_timeout;
}

}  // namespace taiga::detail
