// The reading commands: summary, tasklets, tasklet, tree, blocking. Each one
// is a view of the model (model.hpp) printed as aligned text tables; none
// of them judges (that is check and lint, checks.cpp).
#include <algorithm>
#include <cstdlib>
#include <set>
#include <unordered_map>

#include "commands.hpp"

namespace taiga::trace::cli {

namespace fmt = taiga::trace_format;

namespace {

std::string count(std::uint64_t n) {
  return std::to_string(n);
}

std::string reason_name(std::uint8_t r) {
  return fmt::park_reason_name(r);
}

std::string wake_how_name(std::uint8_t h) {
  switch (h) {
    case 0:
      return "signaled";
    case 1:
      return "timeout";
    case 2:
      return "interrupted";
  }
  return "how " + std::to_string(h);
}

std::string exit_how_name(std::uint8_t h) {
  switch (h) {
    case 0:
      return "returned";
    case 1:
      return "exception";
    case 2:
      return "killed";
    case 3:
      return "deadlock";
  }
  return "how " + std::to_string(h);
}

std::string site_or_unknown(const model& m, std::uint32_t s) {
  return s ? m.str(s) : std::string("(unknown site)");
}

struct wait_stats {
  std::vector<std::uint64_t> waits;
  std::uint64_t total = 0;
  void add(std::uint64_t w) {
    waits.push_back(w);
    total += w;
  }
  std::vector<std::string> row(std::string first) {
    std::sort(waits.begin(), waits.end());
    return {std::move(first),
            count(waits.size()),
            duration(total),
            duration(percentile(waits, 50)),
            duration(percentile(waits, 99)),
            duration(waits.empty() ? 0 : waits.back())};
  }
};

}  // namespace

void write_summary(const context& c, std::ostream& out) {
  const auto& m = c.m;
  const auto& h = m.header;
  const std::uint64_t span = m.end - m.start;
  out << "trace " << c.path << "\n";
  out << "  format version " << h.version << ", pid " << h.pid << ", runtime " << h.runtime_id;
  if (!h.build_id.empty()) out << ", build-id " << h.build_id;
  out << "\n";
  if (!h.exe_path.empty()) out << "  executable " << h.exe_path << "\n";
  out << "  duration " << duration(span) << ", " << m.generations << " generations, " << m.events
      << " events, " << m.dropped << " dropped\n";

  std::map<tasklet_state, std::uint64_t> by_state;
  for (const auto& [id, t] : m.tasklets) ++by_state[t.state];
  out << "\ntasklets: " << m.spawned << " spawned, " << m.finished << " finished, "
      << m.tasklets.size() << " seen";
  for (auto [s, n] : by_state)
    if (s != tasklet_state::done) out << ", " << n << " " << state_name(s) << " at the end";
  out << "\nsteals: " << m.steals << " (" << m.stolen
      << " tasklets moved), migrations: " << m.migrations
      << " (runs on another worker than the last)\n";

  out << "\nworkers:\n";
  const bool sampled = m.other.samples != 0;
  std::vector<std::string> head = {"worker", "busy", "", "spin", "idle", "other", "runs", "steals"};
  if (sampled) head.insert(head.end(), {"os delay", "max queue"});
  table w(head, std::vector<bool>(head.size(), true));
  for (const auto& [i, wi] : m.workers) {
    std::uint64_t known = wi.busy + wi.spin + wi.idle;
    std::vector<std::string> row = {
        count(i),          duration(wi.busy), percent(wi.busy, span),
        duration(wi.spin), duration(wi.idle), duration(span > known ? span - known : 0),
        count(wi.slices),  count(wi.steals)};
    if (sampled) row.insert(row.end(), {duration(wi.os_delay), count(wi.max_queue)});
    w.add(row);
  }
  if (w.size())
    w.print(out);
  else
    out << "  (no worker events)\n";

  out << "\nrun time by spawn site:\n";
  struct site_sum {
    std::uint64_t tasklets = 0, runs = 0, run = 0;
  };
  std::map<std::uint32_t, site_sum> sites;
  std::uint64_t all_run = 0;
  for (const auto& [id, t] : m.tasklets) {
    auto& s = sites[t.site];
    ++s.tasklets;
    s.runs += t.runs;
    s.run += t.run_time;
    all_run += t.run_time;
  }
  std::vector<std::pair<std::uint32_t, site_sum>> ordered(sites.begin(), sites.end());
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.second.run > b.second.run; });
  table s({"spawn site", "tasklets", "runs", "run time", "share"}, {false, true, true, true, true});
  for (const auto& [site, v] : ordered)
    s.add({site_or_unknown(m, site), count(v.tasklets), count(v.runs), duration(v.run),
           percent(v.run, all_run)});
  if (s.size())
    s.print(out);
  else
    out << "  (no tasklets)\n";

  out << "\nparks by reason (wait until woken; still parked at the end count to the end):\n";
  std::map<std::uint8_t, wait_stats> reasons;
  for (const auto& p : m.parks) reasons[p.reason].add(p.end - p.start);
  table r({"reason", "parks", "total", "p50", "p99", "max"}, {false, true, true, true, true, true});
  for (auto& [reason, st] : reasons) r.add(st.row(reason_name(reason)));
  if (r.size())
    r.print(out);
  else
    out << "  (no parks)\n";

  out << "\nscheduler latency (ready -> running), " << m.ready_latency.size() << " runs:\n";
  static const std::uint64_t bounds[] = {1000, 10000, 100000, 1000000, 10000000, 100000000};
  static const char* const labels[] = {"< 1 us",  "< 10 us",  "< 100 us", "< 1 ms",
                                       "< 10 ms", "< 100 ms", ">= 100 ms"};
  std::uint64_t buckets[7] = {};
  for (auto l : m.ready_latency) {
    int b = 0;
    while (b < 6 && l >= bounds[b]) ++b;
    ++buckets[b];
  }
  std::uint64_t most = *std::max_element(std::begin(buckets), std::end(buckets));
  for (int b = 0; b < 7; ++b) {
    std::string bar(most ? static_cast<std::size_t>(40 * buckets[b] / most) : 0, '#');
    char line[96];
    std::snprintf(line, sizeof line, "  %-9s %10llu  ", labels[b],
                  static_cast<unsigned long long>(buckets[b]));
    out << line << bar << "\n";
  }
  if (!m.ready_latency.empty()) {
    auto sorted = m.ready_latency;
    std::sort(sorted.begin(), sorted.end());
    out << "  p50 " << duration(percentile(sorted, 50)) << ", p99 "
        << duration(percentile(sorted, 99)) << ", max " << duration(sorted.back()) << "\n";
  }
  const auto& o = m.other;
  out << "\nother events:\n";
  out << "  blocking calls: " << o.blocking_jobs << " (" << duration(o.blocking_time)
      << " on the pool), timers fired: " << o.timer_fires << ", I/O waits: " << o.io_waits
      << ", regions: " << o.regions << ", log lines: " << m.logs.size() << "\n";
  out << "  watchdog reports: " << m.watchdogs.size()
      << ", deadlock reports: " << m.deadlocks.size() << "\n";
  if (sampled)
    out << "  samples: " << o.samples << ", at most " << o.max_live << " live and " << o.max_ready
        << " ready tasklets\n";
  for (const auto& [name, value] : o.counters)
    out << "  counter " << or_dash(m.str(name)) << " = " << value << " (last value)\n";
  out << "\ndropped events: " << m.dropped << "\n";
}

int cmd_summary(const context& c, std::ostream& out, std::ostream&) {
  write_summary(c, out);
  return ok;
}

int cmd_tasklets(const context& c, std::ostream& out, std::ostream& err) {
  const auto& m = c.m;
  std::optional<tasklet_state> want;
  if (c.opts.has("state")) {
    tasklet_state s;
    if (!parse_state(c.opts.get("state"), s)) {
      err << "taiga-trace: --state=" << c.opts.get("state")
          << " is not a state (created, ready, running, parked, done, unknown)\n";
      return usage;
    }
    want = s;
  }
  const std::string name = c.opts.get("name"), site = c.opts.get("site");
  table t({"id", "state", "runs", "run time", "parks", "waited", "name", "spawn site", "now"},
          {true, false, true, true, true, true, false, false, false});
  for (const auto& [id, ti] : m.tasklets) {
    if (want && ti.state != *want) continue;
    if (!name.empty() && m.str(ti.name).find(name) == std::string::npos) continue;
    if (!site.empty() && m.str(ti.site).find(site) == std::string::npos) continue;
    std::string now;
    if (ti.state == tasklet_state::parked && ti.last_park != no_index) {
      const auto& p = m.parks[ti.last_park];
      now = reason_name(p.reason);
      if (p.object) now += " " + object_name(p.object);
    } else if (ti.state == tasklet_state::done) {
      now = exit_how_name(ti.exit_how);
    }
    t.add({count(id), state_name(ti.state), count(ti.runs), duration(ti.run_time), count(ti.parks),
           duration(ti.wait_time), or_dash(m.str(ti.name)), or_dash(m.str(ti.site)), or_dash(now)});
  }
  t.print(out, "");
  out << t.size() << " of " << m.tasklets.size() << " tasklets\n";
  return ok;
}

int cmd_tasklet(const context& c, std::ostream& out, std::ostream& err) {
  const auto& m = c.m;
  const auto& arg = c.opts.positional[1];
  auto parsed = parse_count(arg);
  if (!parsed) {
    err << "taiga-trace: tasklet id '" << arg << "' is not a number\n";
    return usage;
  }
  const std::uint64_t id = *parsed;
  auto it = m.tasklets.find(id);
  if (it == m.tasklets.end()) {
    err << "taiga-trace: no tasklet " << id << " in " << c.path << "\n";
    return findings;
  }
  const auto& t = it->second;
  out << "tasklet " << id;
  if (t.name) out << " \"" << m.str(t.name) << "\"";
  out << ": " << state_name(t.state) << "\n";
  out << "  spawn site " << or_dash(m.str(t.site)) << "\n";
  if (t.spawn_seen)
    out << "  spawned " << offset(m, t.spawn_time) << " s by "
        << (t.parent ? "tasklet " + count(t.parent) : std::string("a thread")) << "\n";
  else
    out << "  first seen " << offset(m, t.spawn_time) << " s (spawned before the trace)\n";
  out << "  " << t.runs << " runs, " << duration(t.run_time) << " running, " << t.parks
      << " parks, " << duration(t.wait_time) << " parked, " << t.yields << " yields\n";
  if (t.state == tasklet_state::done) {
    out << "  exited " << offset(m, t.end_time) << " s: " << exit_how_name(t.exit_how);
    if (t.exception) out << " (" << m.str(t.exception) << ")";
    out << "\n";
  }
  std::vector<std::uint64_t> children;
  for (const auto& [cid, ct] : m.tasklets)
    if (ct.parent == id && ct.spawn_seen) children.push_back(cid);
  if (!children.empty()) {
    out << "  spawned " << children.size() << " tasklets:";
    for (std::size_t i = 0; i < children.size() && i < 20; ++i) out << " " << children[i];
    if (children.size() > 20) out << " ...";
    out << "\n";
  }

  // The life, in order: runs and parks interleave by start time.
  out << "\n";
  enum class what { slice, park, watchdog, log };
  struct item {
    std::uint64_t time;
    what kind;
    std::uint32_t index;
  };
  std::vector<item> items;
  for (auto s : t.slices) items.push_back({m.slices[s].start, what::slice, s});
  for (auto p : t.park_list) items.push_back({m.parks[p].start, what::park, p});
  for (std::uint32_t i = 0; i < m.watchdogs.size(); ++i)
    if (m.watchdogs[i].tasklet == id) items.push_back({m.watchdogs[i].time, what::watchdog, i});
  for (std::uint32_t i = 0; i < m.logs.size(); ++i)
    if (m.logs[i].tasklet == id) items.push_back({m.logs[i].time, what::log, i});
  std::stable_sort(items.begin(), items.end(),
                   [](const item& a, const item& b) { return a.time < b.time; });
  for (const auto& i : items) {
    out << "  " << offset(m, i.time) << "  ";
    switch (i.kind) {
      case what::slice: {
        const auto& s = m.slices[i.index];
        out << "run on worker " << s.worker << " for " << duration(s.end - s.start);
        if (s.open)
          out << " (still running at the end)";
        else
          out << ", then " << fmt::event_name(s.ended_by);
        out << "\n";
        break;
      }
      case what::park: {
        const auto& p = m.parks[i.index];
        out << "park: " << reason_name(p.reason);
        if (p.object) out << " on " << object_name(p.object);
        if (p.site) out << " at " << m.str(p.site);
        if (p.wake == no_index) {
          out << ", still parked at the end (" << duration(p.end - p.start) << ")\n";
        } else {
          const auto& w = m.wakes[p.wake];
          out << ", " << wake_how_name(w.how) << " after " << duration(p.end - p.start) << " by "
              << (w.waker ? "tasklet " + count(w.waker) + " (" + m.tasklet_label(w.waker) + ")"
                          : std::string(w.thread_worker ? "worker " + count(w.thread_worker - 1)
                                                        : "thread " + count(w.thread)))
              << "\n";
        }
        break;
      }
      case what::watchdog:
        out << "watchdog: running for " << duration(m.watchdogs[i.index].value) << "\n";
        break;
      case what::log: {
        const auto& l = m.logs[i.index];
        out << "log [" << or_dash(m.str(l.category)) << "] " << m.str(l.message) << "\n";
        break;
      }
    }
  }
  return ok;
}

int cmd_tree(const context& c, std::ostream& out, std::ostream&) {
  const auto& m = c.m;
  // A node is a path of spawn sites from a root; tasklets with the same path
  // fold into one node. Parents are spawned before their children, so spawn
  // order builds every path from an existing one, without recursion.
  struct node {
    std::uint32_t site = 0;
    std::uint32_t parent = no_index;
    std::uint64_t tasklets = 0, alive = 0, run = 0;
    std::vector<std::uint32_t> children;
  };
  std::vector<node> nodes;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> index;  // (parent, site)
  std::vector<std::uint32_t> roots;
  std::unordered_map<std::uint64_t, std::uint32_t> node_of;
  std::vector<const tasklet_info*> order;
  for (const auto& [id, t] : m.tasklets) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const tasklet_info* a, const tasklet_info* b) {
    return a->spawn_time < b->spawn_time;
  });
  for (const auto* t : order) {
    std::uint32_t parent = no_index;
    if (auto p = node_of.find(t->parent); t->parent && p != node_of.end()) parent = p->second;
    auto key = std::make_pair(parent, t->site);
    auto [it, added] = index.emplace(key, static_cast<std::uint32_t>(nodes.size()));
    if (added) {
      nodes.push_back({t->site, parent, 0, 0, 0, {}});
      (parent == no_index ? roots : nodes[parent].children).push_back(it->second);
    }
    auto& n = nodes[it->second];
    ++n.tasklets;
    if (t->state != tasklet_state::done) ++n.alive;
    n.run += t->run_time;
    node_of[t->id] = it->second;
  }
  out << "spawn tree, folded by spawn site (tasklets, alive at the end, run time):\n";
  // Depth-first with an explicit stack: a chain of a million spawns is fine.
  std::vector<std::pair<std::uint32_t, std::size_t>> stack;
  for (auto r = roots.rbegin(); r != roots.rend(); ++r) stack.push_back({*r, 0});
  while (!stack.empty()) {
    auto [n, depth] = stack.back();
    stack.pop_back();
    const auto& nd = nodes[n];
    std::string indent(2 + 2 * std::min<std::size_t>(depth, 40), ' ');
    if (depth > 40) indent += "(depth " + std::to_string(depth) + ") ";
    out << indent << site_or_unknown(m, nd.site) << "  x" << nd.tasklets << ", " << nd.alive
        << " alive, " << duration(nd.run) << "\n";
    for (auto ch = nd.children.rbegin(); ch != nd.children.rend(); ++ch)
      stack.push_back({*ch, depth + 1});
  }
  if (roots.empty()) out << "  (no tasklets)\n";
  return ok;
}

int cmd_blocking(const context& c, std::ostream& out, std::ostream&) {
  const auto& m = c.m;
  std::uint64_t total = 0;
  for (const auto& p : m.parks) total += p.end - p.start;
  out << "blocking profile: " << m.parks.size() << " parks, " << duration(total)
      << " parked in all\n";

  out << "\nby reason:\n";
  std::map<std::uint8_t, wait_stats> reasons;
  for (const auto& p : m.parks) reasons[p.reason].add(p.end - p.start);
  std::vector<std::pair<std::uint64_t, std::vector<std::string>>> rows;
  for (auto& [r, st] : reasons) rows.push_back({st.total, st.row(reason_name(r))});
  // The first `text` columns are names, left-aligned; the rest are numbers.
  auto print_sorted = [&](std::vector<std::string> head, std::size_t text, std::size_t limit) {
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<bool> right(head.size(), true);
    for (std::size_t i = 0; i < text && i < right.size(); ++i) right[i] = false;
    table t(std::move(head), right);
    for (std::size_t i = 0; i < rows.size() && i < limit; ++i) t.add(rows[i].second);
    if (t.size())
      t.print(out);
    else
      out << "  (none)\n";
    if (rows.size() > limit) out << "  ... " << rows.size() - limit << " more\n";
    rows.clear();
  };
  print_sorted({"reason", "parks", "total", "p50", "p99", "max"}, 1, SIZE_MAX);

  out << "\nby park site:\n";
  std::map<std::pair<std::uint32_t, std::uint8_t>, wait_stats> sites;
  for (const auto& p : m.parks) sites[{p.site, p.reason}].add(p.end - p.start);
  for (auto& [k, st] : sites) {
    auto row = st.row(site_or_unknown(m, k.first));
    row.insert(row.begin() + 1, reason_name(k.second));
    rows.push_back({st.total, std::move(row)});
  }
  print_sorted({"park site", "reason", "parks", "total", "p50", "p99", "max"}, 2, 30);

  out << "\nby object (channel, lock, fd...):\n";
  std::map<std::pair<std::uint64_t, std::uint8_t>, wait_stats> objects;
  std::map<std::pair<std::uint64_t, std::uint8_t>, std::set<std::uint64_t>> waiters;
  for (const auto& p : m.parks)
    if (p.object) {
      objects[{p.object, p.reason}].add(p.end - p.start);
      waiters[{p.object, p.reason}].insert(p.tasklet);
    }
  for (auto& [k, st] : objects) {
    auto row = st.row(object_name(k.first));
    row.insert(row.begin() + 1, reason_name(k.second));
    row.insert(row.begin() + 2, count(waiters[k].size()));
    rows.push_back({st.total, std::move(row)});
  }
  print_sorted({"object", "reason", "tasklets", "parks", "total", "p50", "p99", "max"}, 2, 30);
  return ok;
}

}  // namespace taiga::trace::cli
