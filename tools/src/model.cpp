// Rebuilding what happened from a trace's events.
//
// Two passes, because the trace has two kinds of order. Worker events
// (spin, sleep, wake, steal) belong to one thread each and are replayed in
// time order. A tasklet's own events (spawn, run, park, yield, unblock,
// exit) may come from several threads whose clock readings disagree by a
// little, so they are gathered across all generations and sorted by the
// tasklet's sequence number (time, then the file's order, break ties: a
// recorder that does not bump the number on every event still gets a
// sensible order). The sorted events are then replayed through the state
// machine
//
//   created -> ready -> running -> parked -> ready -> ... -> done
//                          \-> ready (yield)
//
// and every transition the machine does not allow becomes a violation
// (`taiga-trace check`), not a crash or a silent skip. A tasklet first seen
// after its spawn (the trace began later, or a generation was lost) starts
// in `unknown` and takes its state from its first event without complaint;
// so does any tasklet after a gap in the generation numbers.
#include <taiga/trace/model.hpp>

#include <algorithm>
#include <cstdint>
#include <tuple>

namespace taiga::trace {

namespace ev = taiga::trace_format;
using kind = ev::event;

const char* state_name(tasklet_state s) noexcept {
  switch (s) {
    case tasklet_state::unknown:
      return "unknown";
    case tasklet_state::created:
      return "created";
    case tasklet_state::ready:
      return "ready";
    case tasklet_state::running:
      return "running";
    case tasklet_state::parked:
      return "parked";
    case tasklet_state::done:
      return "done";
  }
  return "?";
}

bool parse_state(const std::string& name, tasklet_state& out) noexcept {
  for (auto s : {tasklet_state::unknown, tasklet_state::created, tasklet_state::ready,
                 tasklet_state::running, tasklet_state::parked, tasklet_state::done})
    if (name == state_name(s)) {
      out = s;
      return true;
    }
  return false;
}

std::string model::tasklet_label(std::uint64_t id) const {
  auto it = tasklets.find(id);
  if (it != tasklets.end() && it->second.name != 0) return str(it->second.name);
  return "tasklet " + std::to_string(id);
}

namespace {

// One tasklet event, its string arguments already interned.
struct tasklet_event {
  std::uint64_t tasklet;
  std::uint64_t seq;
  std::uint64_t time;
  std::uint64_t a[3];           // the arguments between tid and seq
  std::uint64_t order;          // position in the file's merged order
  std::uint64_t thread_worker;  // worker index + 1 of the writer, 0: not a worker
  std::uint32_t thread;
  std::uint32_t generation;  // index in the file's generations
  std::uint8_t type;
};

class interner {
 public:
  explicit interner(std::vector<std::string>& v) : v_(v) {
    v_.assign(1, std::string());
    ids_.emplace(std::string(), 0);
  }
  std::uint32_t operator()(const std::string& s) {
    auto [it, added] = ids_.emplace(s, static_cast<std::uint32_t>(v_.size()));
    if (added) v_.push_back(s);
    return it->second;
  }

 private:
  std::vector<std::string>& v_;
  std::unordered_map<std::string, std::uint32_t> ids_;
};

std::string when(const model& m, std::uint64_t t) {
  std::uint64_t rel = t >= m.start ? t - m.start : 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "at +%.6f s", static_cast<double>(rel) / 1e9);
  return buf;
}

struct worker_clock {
  bool spinning = false, sleeping = false;
  std::uint64_t since = 0;
};

}  // namespace

struct model_builder::state {
  model m;
  interner intern{m.strings};
  std::vector<tasklet_event> tev;
  std::vector<bool> gap_before;  // per generation added
  std::map<std::uint64_t, worker_clock> clocks;
  std::uint64_t order = 0;
  std::uint64_t previous_number = 0;
  bool any = false;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> jobs;  // (tid, job) -> begin

  worker_info& worker(std::uint64_t w) {
    auto& wi = m.workers[w];
    wi.index = w;
    return wi;
  }
  void settle(std::uint64_t w, std::uint64_t t) {
    auto& c = clocks[w];
    auto& wi = worker(w);
    std::uint64_t d = t > c.since ? t - c.since : 0;
    if (c.spinning) wi.spin += d;
    if (c.sleeping) wi.idle += d;
    c.spinning = c.sleeping = false;
    c.since = t;
  }
  void add(const generation& g);
  model finish(stop_reason stopped, const std::string& error);
};

model_builder::model_builder(const file_header& h) : s_(std::make_unique<state>()) {
  s_->m.header = h;
}
model_builder::~model_builder() = default;
void model_builder::add(const generation& g) {
  s_->add(g);
}
model model_builder::finish(stop_reason stopped, const std::string& error) {
  return s_->finish(stopped, error);
}

model build_model(const trace_file& file) {
  model_builder b(file.header);
  for (const auto& g : file.generations) b.add(g);
  return b.finish(file.stopped, file.error);
}

model build_model(reader& r) {
  model_builder b(r.header());
  generation g;
  while (r.next(g)) b.add(g);
  return b.finish(r.stopped(), r.error());
}

// Pass 1, time order: worker accounting, steals, drops; gather tasklet events.
void model_builder::state::add(const generation& g) {
  const std::size_t gi = gap_before.size();
  gap_before.push_back(false);
  for (const auto& e : g.events) {
    if (!any || e.time < m.start) m.start = e.time;
    if (!any || e.time > m.end) m.end = e.time;
    any = true;
  }
  if (g.end_time > m.end) m.end = g.end_time;
  ++m.generations;
  if (gi > 0 && g.number != previous_number + 1) {
    gap_before[gi] = true;
    m.notes.push_back("generations " + std::to_string(previous_number + 1) + " to " +
                      std::to_string(g.number - 1) +
                      " are missing: tasklet states restart after the gap");
  }
  previous_number = g.number;
  std::uint64_t dropped_events = 0;
  // Each string of the generation is interned once, not once per event.
  std::unordered_map<std::uint64_t, std::uint32_t> local;
  auto str = [&](std::uint64_t id) -> std::uint64_t {
    if (id == 0) return 0;
    auto [it, added] = local.emplace(id, 0);
    if (added) it->second = intern(g.string(id));
    return it->second;
  };
  std::map<std::uint64_t, std::uint64_t> thread_workers;  // thread id -> worker + 1
  for (const auto& [id, t] : g.threads)
    if (t.kind == static_cast<std::uint8_t>(ev::thread_kind::worker))
      thread_workers[id] = t.worker + 1;
  for (const auto& e : g.events) {
    ++m.events;
    ++order;
    std::uint64_t thread_worker = 0;
    if (auto t = thread_workers.find(e.thread); t != thread_workers.end())
      thread_worker = t->second;
    tasklet_event te{e.arg(0), 0,
                     e.time,   {0, 0, 0},
                     order,    thread_worker,
                     e.thread, static_cast<std::uint32_t>(gi),
                     e.type};
    switch (static_cast<kind>(e.type)) {
      case kind::spawn:  // tid, parent, site, name, seq
        te.a[0] = e.arg(1);
        te.a[1] = str(e.arg(2));
        te.a[2] = str(e.arg(3));
        te.seq = e.arg(4);
        tev.push_back(te);
        break;
      case kind::run:  // tid, worker, previous + 1, seq
        te.a[0] = e.arg(1);
        te.a[1] = e.arg(2);
        te.seq = e.arg(3);
        tev.push_back(te);
        settle(e.arg(1), e.time);
        break;
      case kind::park:  // tid, reason, object, site, seq
        te.a[0] = e.arg(1);
        te.a[1] = e.arg(2);
        te.a[2] = str(e.arg(3));
        te.seq = e.arg(4);
        tev.push_back(te);
        break;
      case kind::yield:  // tid, seq
        te.seq = e.arg(1);
        tev.push_back(te);
        break;
      case kind::unblock:  // tid, waker, how, seq
        te.a[0] = e.arg(1);
        te.a[1] = e.arg(2);
        te.seq = e.arg(3);
        tev.push_back(te);
        break;
      case kind::exit:  // tid, how, exception type, seq
        te.a[0] = e.arg(1);
        te.a[1] = str(e.arg(2));
        te.seq = e.arg(3);
        tev.push_back(te);
        break;
      case kind::steal: {  // victim, count
        ++m.steals;
        m.stolen += e.arg(1);
        if (thread_worker) {
          auto& wi = worker(thread_worker - 1);
          ++wi.steals;
          wi.stolen += e.arg(1);
        }
        break;
      }
      case kind::worker_spin: {
        auto& c = clocks[e.arg(0)];
        if (!c.spinning) {
          settle(e.arg(0), e.time);
          clocks[e.arg(0)].spinning = true;
        }
        break;
      }
      case kind::worker_sleep:
        settle(e.arg(0), e.time);
        clocks[e.arg(0)].sleeping = true;
        break;
      case kind::worker_wake:
        settle(e.arg(0), e.time);
        break;
      case kind::dropped:
        dropped_events += e.arg(0);
        break;
      case kind::timer_fire:
        ++m.other.timer_fires;
        break;
      case kind::io_wait:
        ++m.other.io_waits;
        break;
      case kind::blocking_begin:  // tid, job
        jobs[{e.arg(0), e.arg(1)}] = e.time;
        break;
      case kind::blocking_end:
        if (auto j = jobs.find({e.arg(0), e.arg(1)}); j != jobs.end()) {
          ++m.other.blocking_jobs;
          m.other.blocking_time += e.time > j->second ? e.time - j->second : 0;
          jobs.erase(j);
        }
        break;
      case kind::region_begin:
        ++m.other.regions;
        break;
      case kind::watchdog:  // tid, run time so far
        m.watchdogs.push_back({e.time, e.arg(0), e.arg(1), 0, 0});
        break;
      case kind::deadlock:  // tasklets in the report
        m.deadlocks.push_back({e.time, 0, e.arg(0), 0, 0});
        break;
      case kind::log:  // tid, category, message
        m.logs.push_back({e.time, e.arg(0), 0, static_cast<std::uint32_t>(str(e.arg(1))),
                          static_cast<std::uint32_t>(str(e.arg(2)))});
        break;
      case kind::counter:  // name, value
        m.other.counters[static_cast<std::uint32_t>(str(e.arg(0)))] = e.arg(1);
        break;
      case kind::sample: {  // live, ready, worker, queue length, os run delay
        ++m.other.samples;
        m.other.max_live = std::max(m.other.max_live, e.arg(0));
        m.other.max_ready = std::max(m.other.max_ready, e.arg(1));
        auto& wi = worker(e.arg(2));
        wi.max_queue = std::max(wi.max_queue, e.arg(3));
        wi.os_delay += e.arg(4);
        break;
      }
      default:
        break;
    }
  }
  // The 'E' frame's count and the writers' `dropped` events report the same
  // losses from two places; the larger one is the better count.
  m.dropped += std::max(dropped_events, g.events_dropped);
}

model model_builder::state::finish(stop_reason stopped, const std::string& error) {
  if (m.header.start_time != 0 && (!any || m.header.start_time <= m.start))
    m.start = m.header.start_time;
  if (m.end < m.start) m.end = m.start;
  for (auto& [w, c] : clocks) settle(w, m.end);
  if (m.dropped)
    m.notes.push_back(std::to_string(m.dropped) +
                      " events were dropped by the recorder: counts are low and a check may "
                      "report breaks that are only gaps");

  // Sequence numbers wrap at seq_mask (15 bits: the recorder carries them in
  // the wait word). Unwrap them per tasklet first: in time order, each event
  // is near the one before it, so the shorter way round the circle (serial
  // number arithmetic) says whether it comes before or after; clocks that
  // disagree by a little swap neighbours, never half a circle.
  std::sort(tev.begin(), tev.end(), [](const tasklet_event& a, const tasklet_event& b) {
    return std::tie(a.tasklet, a.time, a.order) < std::tie(b.tasklet, b.time, b.order);
  });
  {
    constexpr std::int64_t mask = ev::seq_mask;
    std::size_t k = 0;
    while (k < tev.size()) {
      const std::uint64_t id = tev[k].tasklet;
      std::int64_t prev_raw = static_cast<std::int64_t>(tev[k].seq) & mask;
      std::int64_t prev = (std::int64_t{1} << 40) + prev_raw;  // room to go below the first
      tev[k].seq = static_cast<std::uint64_t>(prev);
      for (++k; k < tev.size() && tev[k].tasklet == id; ++k) {
        std::int64_t raw = static_cast<std::int64_t>(tev[k].seq) & mask;
        std::int64_t d = (raw - prev_raw) & mask;
        if (d > mask / 2) d -= mask + 1;
        prev += d;
        prev_raw = raw;
        tev[k].seq = static_cast<std::uint64_t>(prev);
      }
    }
  }
  // Pass 2, per tasklet in sequence order: the state machine.
  std::sort(tev.begin(), tev.end(), [](const tasklet_event& a, const tasklet_event& b) {
    return std::tie(a.tasklet, a.seq, a.time, a.order) <
           std::tie(b.tasklet, b.seq, b.time, b.order);
  });
  auto violate = [&](const tasklet_event& e, std::string what) {
    m.violations.push_back(
        {e.time, e.tasklet,
         "tasklet " + std::to_string(e.tasklet) + " " + what + " " + when(m, e.time)});
  };
  std::size_t i = 0;
  while (i < tev.size()) {
    std::uint64_t id = tev[i].tasklet;
    auto& t = m.tasklets[id];
    t.id = id;
    t.spawn_time = tev[i].time;
    std::uint32_t open_slice = no_index;
    std::uint32_t pending_wake = no_index;
    std::uint64_t ready_since = 0;
    bool ready_known = false;
    std::uint32_t generation = tev[i].generation;
    auto close_slice = [&](const tasklet_event& e) {
      if (open_slice == no_index) return;
      auto& s = m.slices[open_slice];
      s.end = std::max(e.time, s.start);
      s.ended_by = e.type;
      t.run_time += s.end - s.start;
      open_slice = no_index;
    };
    for (; i < tev.size() && tev[i].tasklet == id; ++i) {
      const auto& e = tev[i];
      if (e.generation != generation) {
        for (auto g = generation + 1; g <= e.generation; ++g)
          if (gap_before[g]) {
            // Lost generations: whatever happened in them is unknown.
            close_slice(e);
            t.state = tasklet_state::unknown;
            ready_known = false;
            pending_wake = no_index;
            break;
          }
        generation = e.generation;
      }
      const auto st = t.state;
      const bool unknown = st == tasklet_state::unknown;
      switch (static_cast<kind>(e.type)) {
        case kind::spawn:
          ++m.spawned;
          if (t.spawn_seen) violate(e, "is spawned twice");
          t.spawn_seen = true;
          t.spawn_time = e.time;
          t.parent = e.a[0];
          t.site = static_cast<std::uint32_t>(e.a[1]);
          t.name = static_cast<std::uint32_t>(e.a[2]);
          if (unknown || st == tasklet_state::created) {
            t.state = tasklet_state::ready;
            ready_since = e.time;
            ready_known = true;
          }
          break;
        case kind::run: {
          if (st == tasklet_state::running) {
            violate(e, "runs on worker " + std::to_string(e.a[0]) + " while still running" +
                           (open_slice == no_index
                                ? std::string()
                                : " on worker " + std::to_string(m.slices[open_slice].worker)));
            close_slice(e);
          } else if (st == tasklet_state::parked) {
            violate(e, "runs on worker " + std::to_string(e.a[0]) +
                           " while parked (no wake since its park)");
          } else if (st == tasklet_state::done) {
            violate(e, "runs on worker " + std::to_string(e.a[0]) + " after it finished");
          }
          if (ready_known && st == tasklet_state::ready)
            m.ready_latency.push_back(e.time > ready_since ? e.time - ready_since : 0);
          ready_known = false;
          if (e.a[1] != 0 && e.a[1] - 1 != e.a[0]) ++m.migrations;  // previous worker + 1
          run_slice s;
          s.tasklet = id;
          s.start = e.time;
          s.end = e.time;
          s.worker = e.a[0];
          s.woken_by_wake = pending_wake;
          open_slice = static_cast<std::uint32_t>(m.slices.size());
          if (pending_wake != no_index) m.wakes[pending_wake].run = open_slice;
          pending_wake = no_index;
          m.slices.push_back(s);
          t.slices.push_back(open_slice);
          ++t.runs;
          t.state = tasklet_state::running;
          break;
        }
        case kind::park: {
          if (!unknown && st != tasklet_state::running)
            violate(e, std::string("parks while ") + state_name(st));
          close_slice(e);
          park_record p;
          p.tasklet = id;
          p.start = e.time;
          p.end = e.time;
          p.reason = static_cast<std::uint8_t>(std::min<std::uint64_t>(e.a[0], 255));
          p.object = e.a[1];
          p.site = static_cast<std::uint32_t>(e.a[2]);
          t.last_park = static_cast<std::uint32_t>(m.parks.size());
          t.park_list.push_back(t.last_park);
          m.parks.push_back(p);
          ++t.parks;
          t.state = tasklet_state::parked;
          break;
        }
        case kind::yield:
          if (!unknown && st != tasklet_state::running)
            violate(e, std::string("yields while ") + state_name(st));
          close_slice(e);
          ++t.yields;
          t.yield_times.push_back(e.time);
          t.state = tasklet_state::ready;
          ready_since = e.time;
          ready_known = true;
          break;
        case kind::unblock: {
          wake_record w;
          w.tasklet = id;
          w.waker = e.a[0];
          w.how = static_cast<std::uint8_t>(std::min<std::uint64_t>(e.a[1], 255));
          w.time = e.time;
          w.thread = e.thread;
          w.thread_worker = e.thread_worker;
          auto wi = static_cast<std::uint32_t>(m.wakes.size());
          m.wakes.push_back(w);
          if (st == tasklet_state::parked && t.last_park != no_index) {
            auto& p = m.parks[t.last_park];
            p.end = std::max(e.time, p.start);
            p.wake = wi;
            m.wakes[wi].park = t.last_park;
            t.wait_time += p.end - p.start;
          } else if (!unknown) {
            violate(e, "is woken" +
                           (w.waker ? " by tasklet " + std::to_string(w.waker) : std::string()) +
                           " without a park (it is " + state_name(st) + ")");
          }
          if (st != tasklet_state::running) {
            t.state = tasklet_state::ready;
            ready_since = e.time;
            ready_known = true;
            pending_wake = wi;
          }
          break;
        }
        case kind::exit:
          ++m.finished;
          if (!unknown && st != tasklet_state::running)
            violate(e, std::string("exits while ") + state_name(st));
          close_slice(e);
          t.state = tasklet_state::done;
          t.end_time = e.time;
          t.exit_how = static_cast<std::uint8_t>(std::min<std::uint64_t>(e.a[0], 255));
          t.exception = static_cast<std::uint32_t>(e.a[1]);
          break;
        default:
          break;
      }
    }
    if (open_slice != no_index) {
      auto& s = m.slices[open_slice];
      s.end = std::max(m.end, s.start);
      s.open = true;
      t.run_time += s.end - s.start;
    }
    if (t.state == tasklet_state::parked && t.last_park != no_index) {
      auto& p = m.parks[t.last_park];
      p.end = std::max(m.end, p.start);
      t.wait_time += p.end - p.start;
    }
  }

  // Per worker: busy time, and two tasklets on one worker at once.
  std::map<std::uint64_t, std::vector<std::uint32_t>> by_worker;
  for (std::uint32_t s = 0; s < m.slices.size(); ++s) by_worker[m.slices[s].worker].push_back(s);
  for (auto& [w, list] : by_worker) {
    auto& wi = worker(w);
    std::sort(list.begin(), list.end(), [&](std::uint32_t a, std::uint32_t b) {
      return std::tie(m.slices[a].start, a) < std::tie(m.slices[b].start, b);
    });
    const run_slice* last = nullptr;
    for (auto s : list) {
      const auto& sl = m.slices[s];
      wi.busy += sl.end - sl.start;
      ++wi.slices;
      if (last && sl.start < last->end && last->tasklet != sl.tasklet)
        m.violations.push_back({sl.start, sl.tasklet,
                                "worker " + std::to_string(w) + " runs tasklet " +
                                    std::to_string(sl.tasklet) + " while tasklet " +
                                    std::to_string(last->tasklet) + " still runs on it " +
                                    when(m, sl.start)});
      if (!last || sl.end > last->end) last = &sl;
    }
  }
  std::stable_sort(m.violations.begin(), m.violations.end(),
                   [](const violation& a, const violation& b) { return a.time < b.time; });

  if (stopped != stop_reason::none)
    m.notes.insert(m.notes.begin(), error);
  else if (m.generations == 0)
    m.notes.insert(m.notes.begin(), "the trace holds no generation (no events were written)");
  return std::move(m);
}

}  // namespace taiga::trace
