// select.cpp: waiting on several channels at once (Go's selectgo, adapted).
//
// Protocol:
//  0. Interruption point: a pending kill or throw_into is raised before
//     anything moves, also when a case is ready at once.
//  1. Order: the enabled cases' channels are locked all together in address
//     order (duplicates once), which makes overlapping selects deadlock-free.
//  2. Poll: cases are tried in a random order (fairness among ready cases,
//     Go's pollorder); the first that can complete at once does, its channel
//     partners are completed after the unlock; with the channel's
//     preference favouring the partner (-1 for a send, +1 for a receive) the
//     select yields to it first, as send() and receive() do; then its
//     handler runs. Send cases moved their values out of the caller's
//     objects before the lock (a boxed T allocates); every case not chosen
//     gives its value back.
//  3. Default: with an on_default case and nothing ready, it runs instead.
//     Timer cases (after()) hold no channel: the earliest one is polled
//     with the rest (ready once its deadline has passed) and, when it comes
//     before the select's own deadline, it is the park's deadline, whose
//     timeout chooses it.
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
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <random>
#include <taiga/channels/select.hpp>
#include <utility>

namespace taiga::detail {

std::uint64_t select_random() noexcept {
  thread_local std::uint64_t s = 0x9E3779B97F4A7C15ULL ^ reinterpret_cast<std::uintptr_t>(&s);
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

namespace {

// A select's per-call lists live on the stack up to 8 cases (no heap
// allocation per select; Boost.Container's small_vector beyond that).
template <class T>
using case_list = boost::container::small_vector<T, 8>;

struct locked_set {
  case_list<chan_base*> bases;
  void lock() {
    for (auto* b : bases) b->lock.lock();
  }
  void unlock() {
    for (auto it = bases.rbegin(); it != bases.rend(); ++it) (*it)->lock.unlock();
  }
};

// The send cases that moved their values out of the caller's objects:
// every one but the chosen case gives its value back, also when the select
// throws (a kill while parked, a failed allocation in a later load()).
// The first `count` indices of `order` are loaded.
struct loaded_cases {
  select_case** cases;
  const case_list<std::size_t>& order;
  std::size_t count = 0;
  std::size_t chosen = SIZE_MAX;
  void give_back() {
    std::size_t k = std::exchange(count, 0);
    for (std::size_t j = 0; j < k; ++j)
      if (order[j] != chosen) cases[order[j]]->unload();
  }
  ~loaded_cases() {
    try {
      give_back();
    } catch (...) {  // T's move assignment threw: that value is lost, not the error
    }
  }
};

// A select with nothing enabled and no default parks like Go's `select {}`:
// until its deadline (select_timeout), a kill or a throw_into, or a deadlock
// report. Nobody can wake it otherwise.
std::size_t park_disabled(select_case** cases, std::size_t n,
                          const std::chrono::steady_clock::time_point* deadline) {
  wait_point wp;
  chan_prepare_wait(wp, park_reason::select_no_case, cases,
                    n > 0 ? cases[0]->where() : op_site::current());
  wake_status ws = wait(wp, deadline);
  if (ws == wake_status::interrupted) throw_interrupt();
  return select_timeout;  // signaled cannot happen: no waker knows this wait
}

}  // namespace

std::size_t run_select(select_case** cases, std::size_t n,
                       const std::chrono::steady_clock::time_point* deadline) {
  // An interruption point first, before any value moves (step 0).
  interruption_point();
  locked_set set;
  case_list<std::size_t> order;
  std::size_t default_index = n;
  // The earliest timer case (after()), if any: polled like a channel case,
  // and its deadline joins the select's own.
  std::size_t timer_index = n;
  const std::chrono::steady_clock::time_point* timer_deadline = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    if (cases[i]->is_default()) {
      default_index = i;
      continue;
    }
    if (chan_base* b = cases[i]->base()) {
      set.bases.push_back(b);
      order.push_back(i);
    } else if (const auto* d = cases[i]->deadline()) {
      if (timer_deadline == nullptr || *d < *timer_deadline) {
        timer_deadline = d;
        timer_index = i;
      }
    }
  }
  if (timer_index < n) order.push_back(timer_index);
  if (order.empty() && default_index == n) return park_disabled(cases, n, deadline);
  std::sort(set.bases.begin(), set.bases.end());
  set.bases.erase(std::unique(set.bases.begin(), set.bases.end()), set.bases.end());
  // Random poll order (Fisher-Yates).
  for (std::size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[select_random() % i]);

  // Step 1: the send cases take their values (a boxed T allocates here, with
  // no lock held); each one not chosen gives its value back at the end.
  loaded_cases loaded{cases, order};
  for (std::size_t i : order) {
    cases[i]->load();
    ++loaded.count;
  }

  set.lock();
  for (std::size_t i : order) {
    if (cases[i]->try_now()) {
      set.unlock();
      if (cases[i]->after_unlock()) yield_keeping_interrupts();
      loaded.chosen = i;
      loaded.give_back();
      cases[i]->finish();
      return i;
    }
  }
  if (default_index < n) {
    set.unlock();
    loaded.give_back();
    cases[default_index]->finish();
    return default_index;
  }
  wait_point wp;
  try {
    chan_prepare_wait(wp, park_reason::select, cases, cases[order.front()]->where());
  } catch (...) {
    set.unlock();
    throw;  // `loaded` gives the values back
  }
  for (std::size_t i : order) cases[i]->park(wp, static_cast<std::uint32_t>(i));  // timers: no-op
  set.unlock();
  // The timer case's deadline, when it comes first, is the park's: its
  // timeout means that case was chosen.
  bool timer_first =
      timer_deadline != nullptr && (deadline == nullptr || *timer_deadline <= *deadline);
  wake_status ws = wait(wp, timer_first ? timer_deadline : deadline);
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
    loaded.chosen = i;
    loaded.give_back();
    cases[i]->finish_woken();
    return i;
  }
  loaded.give_back();
  if (ws == wake_status::interrupted) throw_interrupt();
  if (timer_first) {
    cases[timer_index]->finish_woken();
    return timer_index;
  }
  return select_timeout;
}

}  // namespace taiga::detail
