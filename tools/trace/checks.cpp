// The judging commands. `check` reports the model's state machine breaks:
// either the runtime broke a rule (a tasklet on two workers, a wake
// without a park, a run while parked) or the recorder lost or misordered
// events; both are bugs worth a failing test. `lint` reports patterns that
// are legal but usually wrong, for CI: long run slices, yield storms, and
// two channel shapes that leave tasklets parked for good.
//
// The channel lints are approximate, by necessity: the trace records parks
// and wakes, not who holds a channel's handles. A channel's "users" are the
// tasklets seen parking on it or waking one of its waiters. If at the end
// some tasklets are parked on it and every user is one of them (or has
// finished), nothing seen can wake them: a lost waker, or a channel whose
// other end was dropped unnoticed. A tasklet that used the channel without
// ever parking or waking anyone (a buffered send nobody waited for) is
// invisible here, so the lint can name a channel that a live tasklet could
// still serve; its message says "nothing seen".
#include <set>

#include "commands.hpp"

namespace taiga::trace::cli {

namespace fmt = taiga::trace_format;

int cmd_check(const context& c, std::ostream& out, std::ostream&) {
  const auto& m = c.m;
  if (m.violations.empty()) {
    out << "check: ok: " << m.tasklets.size() << " tasklets, " << m.events
        << " events replayed, no state machine break\n";
    return ok;
  }
  out << "check: " << m.violations.size() << " state machine breaks:\n";
  std::size_t shown = 0;
  for (const auto& v : m.violations) {
    if (++shown > 100) {
      out << "  ... " << m.violations.size() - 100 << " more\n";
      break;
    }
    out << "  " << v.message << "\n";
  }
  if (m.dropped)
    out << "  (" << m.dropped << " events were dropped: some breaks may be gaps in the trace)\n";
  return findings;
}

int cmd_lint(const context& c, std::ostream& out, std::ostream& err) {
  const auto& m = c.m;
  auto slice_limit = parse_duration(c.opts.get("slice-ms", "10"));
  auto storm = parse_count(c.opts.get("yield-storm", "1000"));
  if (!storm || *storm == 0) slice_limit.reset();
  if (!slice_limit) {
    err << "taiga-trace: lint: --slice-ms takes a time, --yield-storm a positive count\n";
    return usage;
  }
  std::size_t problems = 0;

  // Run slices longer than the limit: the worker ran nothing else meanwhile.
  std::vector<std::uint32_t> longs;
  for (std::uint32_t i = 0; i < m.slices.size(); ++i)
    if (m.slices[i].end - m.slices[i].start > *slice_limit) longs.push_back(i);
  if (!longs.empty()) {
    problems += longs.size();
    std::sort(longs.begin(), longs.end(), [&](auto a, auto b) {
      return m.slices[a].end - m.slices[a].start > m.slices[b].end - m.slices[b].start;
    });
    out << "long run slices (over " << duration(*slice_limit)
        << " without a park or yield): " << longs.size() << "\n";
    for (std::size_t i = 0; i < longs.size() && i < 20; ++i) {
      const auto& s = m.slices[longs[i]];
      const auto& t = m.tasklets.at(s.tasklet);
      out << "  tasklet " << s.tasklet << " (" << m.tasklet_label(s.tasklet) << ", "
          << or_dash(m.str(t.site)) << ") ran " << duration(s.end - s.start) << " on worker "
          << s.worker << " at " << offset(m, s.start) << " s" << (s.open ? ", still running" : "")
          << "\n";
    }
  }

  // The runtime's own reports: a watchdog saw a tasklet run too long, the
  // deadlock detector found tasklets that can never wake.
  for (const auto& w : m.watchdogs) {
    ++problems;
    out << "watchdog: tasklet " << w.tasklet << " (" << m.tasklet_label(w.tasklet) << ") had run "
        << duration(w.value) << " without a park at " << offset(m, w.time) << " s\n";
  }
  for (const auto& d : m.deadlocks) {
    ++problems;
    out << "deadlock: the runtime reported " << d.value << " tasklets that can never wake at "
        << offset(m, d.time) << " s\n";
  }

  // Yield storms: `storm` yields within 10 ms, a busy-wait through the scheduler.
  constexpr std::uint64_t window = 10'000'000;
  for (const auto& [id, t] : m.tasklets) {
    const auto& y = t.yield_times;
    std::size_t most = 0, lo = 0, at = 0;
    for (std::size_t hi = 0; hi < y.size(); ++hi) {
      while (y[hi] - y[lo] > window) ++lo;
      if (hi - lo + 1 > most) {
        most = hi - lo + 1;
        at = lo;
      }
    }
    if (most >= *storm) {
      ++problems;
      out << "yield storm: tasklet " << id << " (" << m.tasklet_label(id) << ", "
          << or_dash(m.str(t.site)) << ") yielded " << most << " times within 10 ms at "
          << offset(m, y[at]) << " s (" << t.yields << " yields in all): it polls; park on "
          << "what it waits for instead\n";
    }
  }

  // Channels: users, waiters at the end, and whether anyone ever received.
  auto channel = [](std::uint8_t r) {
    return r == static_cast<std::uint8_t>(fmt::park_reason::channel_send) ||
           r == static_cast<std::uint8_t>(fmt::park_reason::channel_receive);
  };
  struct use {
    std::set<std::uint64_t> users, parked_at_end, senders_at_end;
    bool received = false;  // a receiver parked on it, or a sender was taken
  };
  std::map<std::uint64_t, use> channels;
  for (const auto& p : m.parks) {
    if (!channel(p.reason) || p.object == 0) continue;
    auto& u = channels[p.object];
    u.users.insert(p.tasklet);
    bool send = p.reason == static_cast<std::uint8_t>(fmt::park_reason::channel_send);
    if (!send) u.received = true;
    if (p.wake != no_index) {
      const auto& w = m.wakes[p.wake];
      if (w.waker) u.users.insert(w.waker);
      if (send && w.how == static_cast<std::uint8_t>(fmt::wake_how::signaled)) u.received = true;
    }
  }
  for (const auto& [id, t] : m.tasklets) {
    if (t.state != tasklet_state::parked || t.last_park == no_index) continue;
    const auto& p = m.parks[t.last_park];
    if (!channel(p.reason) || p.object == 0) continue;
    auto& u = channels[p.object];
    u.parked_at_end.insert(id);
    if (p.reason == static_cast<std::uint8_t>(fmt::park_reason::channel_send))
      u.senders_at_end.insert(id);
  }
  auto list = [](const std::set<std::uint64_t>& s) {
    std::string r;
    std::size_t n = 0;
    for (auto id : s) {
      if (n++ == 10) return r + " ...";
      r += (r.empty() ? "" : ", ") + std::to_string(id);
    }
    return r;
  };
  for (const auto& [object, u] : channels) {
    if (u.parked_at_end.empty()) continue;
    bool all_waiting = true;
    for (auto id : u.users)
      if (!u.parked_at_end.count(id)) {
        // A waker with no events of its own is alive as far as the trace knows.
        auto t = m.tasklets.find(id);
        if (t == m.tasklets.end() || t->second.state != tasklet_state::done) all_waiting = false;
      }
    if (!u.senders_at_end.empty() && !u.received) {
      ++problems;
      out << "channel " << object_name(object) << " has senders and no receiver: tasklets "
          << list(u.senders_at_end) << " are parked sending at the end, and nothing received "
          << "from it during the trace\n";
    } else if (all_waiting) {
      ++problems;
      out << "lost waker? channel " << object_name(object) << ": tasklets " << list(u.parked_at_end)
          << " are parked on it at the end, and every tasklet seen "
          << "using it is among them or finished: nothing seen can wake them\n";
    }
  }

  if (problems == 0) {
    out << "lint: ok: " << m.slices.size() << " run slices, " << m.tasklets.size() << " tasklets, "
        << channels.size() << " channels\n";
    return ok;
  }
  out << "lint: " << problems << " findings\n";
  return findings;
}

}  // namespace taiga::trace::cli
