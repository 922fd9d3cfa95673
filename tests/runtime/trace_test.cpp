// The trace recorder: every event at its emission point, at 1, 2, 4 and 8
// workers, read back by a small decoder written here against
// trace_format.hpp alone (as the taiga-trace reader is); start and stop
// racing spawns; two runtimes in one process kept apart; the flight
// recorder's memory bound and its trigger; a truncated file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <taiga/runtime.hpp>
#include <taiga/runtime/trace.hpp>
#include <taiga/runtime/trace_format.hpp>
#include <thread>
#include <vector>

#include "runtime_fixture.hpp"

namespace tf = taiga::trace_format;
using namespace std::chrono_literals;

namespace {

// ---- a test-side decoder ---------------------------------------------------

struct ev {
  std::uint8_t type = 0;
  std::uint64_t gen = 0;
  std::uint64_t thread = 0;
  std::uint64_t time = 0;
  std::vector<std::uint64_t> args;
};

struct thread_desc {
  std::uint64_t os_tid = 0, kind = 0, worker = 0;
  std::string name;
};

struct trace_file {
  bool header_ok = false;
  std::uint64_t version = 0, clock = 0, pid = 0, runtime_id = 0;
  std::string build_id, exe;
  std::uint64_t generations = 0;  // complete ones
  std::uint64_t written = 0, dropped = 0;
  std::vector<ev> events;  // in file order
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> strings;
  std::map<std::pair<std::uint64_t, std::uint64_t>, thread_desc> threads;
  std::string error;

  std::string str(const ev& e, std::size_t arg) const {
    std::uint64_t id = e.args.at(arg);
    if (id == 0) return {};
    auto it = strings.find({e.gen, id});
    return it == strings.end() ? "<missing string>" : it->second;
  }
  std::vector<ev> of(tf::event t) const {
    std::vector<ev> out;
    for (const auto& e : events)
      if (e.type == static_cast<std::uint8_t>(t)) out.push_back(e);
    return out;
  }
  std::vector<ev> about(tf::event t, std::uint64_t tid) const {
    std::vector<ev> out;
    for (const auto& e : of(t))
      if (e.args.at(0) == tid) out.push_back(e);
    return out;
  }
};

bool read_string(const std::uint8_t*& p, const std::uint8_t* end, std::string& s) {
  auto n = tf::get_varint(p, end);
  if (!n || static_cast<std::uint64_t>(end - p) < *n) return false;
  s.assign(reinterpret_cast<const char*>(p), *n);
  p += *n;
  return true;
}

// Decodes every complete generation; an incomplete tail is ignored (what
// a truncated file must allow). Errors in complete data fail the test.
trace_file decode(const std::string& bytes) {
  trace_file f;
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  // Frames of the generation being read, committed at its 'E'.
  std::vector<ev> gen_events;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> gen_strings;
  std::map<std::pair<std::uint64_t, std::uint64_t>, thread_desc> gen_threads;
  bool first = true;
  while (end - p >= 5) {
    auto kind = static_cast<tf::frame_kind>(p[0]);
    std::uint32_t len = p[1] | (p[2] << 8) | (p[3] << 16) | (std::uint32_t(p[4]) << 24);
    if (static_cast<std::size_t>(end - p - 5) < len) break;  // cut short
    const std::uint8_t* q = p + 5;
    const std::uint8_t* qe = q + len;
    p = qe;
    auto v = [&]() -> std::uint64_t {
      auto x = tf::get_varint(q, qe);
      if (!x) throw std::runtime_error("bad varint");
      return *x;
    };
    try {
      if (first) {
        if (kind != tf::frame_kind::header || len < 8 || std::memcmp(q, tf::magic, 8) != 0)
          throw std::runtime_error("no header");
        q += 8;
        f.version = v();
        f.clock = v();
        f.pid = v();
        f.runtime_id = v();
        v();
        v();
        if (!read_string(q, qe, f.build_id) || !read_string(q, qe, f.exe))
          throw std::runtime_error("bad header strings");
        f.header_ok = true;
        first = false;
        continue;
      }
      switch (kind) {
        case tf::frame_kind::strings: {
          std::uint64_t g = v();
          while (q < qe) {
            std::uint64_t id = v();
            std::string s;
            if (!read_string(q, qe, s)) throw std::runtime_error("bad string");
            gen_strings[{g, id}] = s;
          }
          break;
        }
        case tf::frame_kind::thread: {
          std::uint64_t g = v();
          std::uint64_t id = v();
          thread_desc d;
          d.os_tid = v();
          d.kind = v();
          d.worker = v();
          std::uint64_t name = v();
          d.name = std::to_string(name);  // resolved at the 'E'
          gen_threads[{g, id}] = d;
          break;
        }
        case tf::frame_kind::batch: {
          std::uint64_t g = v();
          std::uint64_t th = v();
          std::uint64_t t = v();
          std::uint64_t n = v();
          for (std::uint64_t i = 0; i < n; ++i) {
            if (q >= qe) throw std::runtime_error("batch cut short");
            ev e;
            e.type = *q++;
            if (e.type >= tf::event_type_count || tf::event_arg_count[e.type] < 0)
              throw std::runtime_error("unknown event " + std::to_string(e.type));
            t += v();
            e.gen = g;
            e.thread = th;
            e.time = t;
            for (int a = 0; a < tf::event_arg_count[e.type]; ++a) e.args.push_back(v());
            gen_events.push_back(std::move(e));
          }
          if (q != qe) throw std::runtime_error("batch longer than its events");
          break;
        }
        case tf::frame_kind::generation_end: {
          std::uint64_t g = v();
          std::uint64_t written = v();
          std::uint64_t dropped = v();
          ++f.generations;
          f.written += written;
          f.dropped += dropped;
          for (auto& [k, d] : gen_threads) {
            auto it = gen_strings.find({k.first, std::stoull(d.name)});
            d.name = it == gen_strings.end() ? "" : it->second;
          }
          for (auto& e : gen_events)
            if (e.gen != g) throw std::runtime_error("a batch of another generation");
          f.events.insert(f.events.end(), gen_events.begin(), gen_events.end());
          f.strings.insert(gen_strings.begin(), gen_strings.end());
          f.threads.insert(gen_threads.begin(), gen_threads.end());
          gen_events.clear();
          gen_strings.clear();
          gen_threads.clear();
          break;
        }
        default:
          throw std::runtime_error("unknown frame");
      }
    } catch (const std::exception& x) {
      f.error = x.what();
      return f;
    }
  }
  return f;
}

// A sink that keeps the bytes (called from the recorder's thread).
struct memory_sink {
  std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
  std::shared_ptr<std::string> bytes = std::make_shared<std::string>();
  taiga::trace::sink sink() const {
    return [mu = mu, bytes = bytes](std::string_view b) {
      std::lock_guard lk(*mu);
      bytes->append(b);
    };
  }
  std::string get() const {
    std::lock_guard lk(*mu);
    return *bytes;
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string temp_path(const char* tag) {
  return "/tmp/taiga_trace_test_" + std::to_string(::getpid()) + "_" + tag + ".trace";
}

using taiga::test::with_workers;

class trace_events : public with_workers {};

// Serial-number order of two seqs of one tasklet (trace_format.hpp).
std::uint64_t seq_after(std::uint64_t s, std::uint64_t n) {
  return (s + n) & tf::seq_mask;
}

}  // namespace

TEST_P(trace_events, every_event_at_its_point) {
  memory_sink out;
  taiga::trace::start(rt(), out.sink());
  EXPECT_TRUE(taiga::trace::recording(rt()));

  struct ids {
    std::uint64_t main = 0, child = 0, thrower = 0, killed = 0, sleeper = 0, waiter = 0,
                  blocker = 0;
  } id;
  std::atomic<bool> region_done{false};
  rt().run([&] {
    id.main = taiga::this_tasklet::get_id();
    taiga::trace::region r("setup");
    taiga::trace::log("test", "hello");
    taiga::trace::counter("answer", 42);
    // A named child that yields and returns; joined (park join, unblock).
    auto child = taiga::spawn(taiga::spawn_options{.name = "child"}, [] {
      taiga::this_tasklet::yield();
      return 7;
    });
    id.child = child.id();
    EXPECT_EQ(child.join(), 7);
    // An exception exit.
    auto thrower = taiga::spawn([] { throw std::runtime_error("boom"); });
    id.thrower = thrower.id();
    EXPECT_THROW(thrower.join(), std::runtime_error);
    // A sleep: park sleep, timer fire, unblock timeout.
    auto sleeper = taiga::spawn([] { taiga::this_tasklet::sleep_for(2ms); });
    id.sleeper = sleeper.id();
    sleeper.join();
    // A user's wait on a wake_slot, signalled by another tasklet.
    taiga::wake_slot slot;
    auto waiter =
        taiga::spawn([&] { EXPECT_EQ(slot.wait("gate", &slot), taiga::wake_status::signaled); });
    id.waiter = waiter.id();
    taiga::test::wait_parked(waiter);
    slot.signal();
    waiter.join();
    // A blocking call.
    auto blocker = taiga::spawn([] { return taiga::blocking([] { return 3; }); });
    id.blocker = blocker.id();
    EXPECT_EQ(blocker.join(), 3);
    // A kill while parked: unblock interrupted, exit killed.
    auto killed = taiga::spawn([] { taiga::this_tasklet::sleep_for(10s); });
    id.killed = killed.id();
    taiga::test::wait_parked(killed);
    killed.kill();
    EXPECT_THROW(killed.join(), taiga::tasklet_killed);
    region_done = true;
  });
  // Let the workers go to sleep: worker_sleep events.
  std::this_thread::sleep_for(30ms);
  taiga::trace::stop(rt());
  EXPECT_FALSE(taiga::trace::recording(rt()));

  trace_file f = decode(out.get());
  ASSERT_TRUE(f.error.empty()) << f.error;
  ASSERT_TRUE(f.header_ok);
  EXPECT_EQ(f.version, tf::version);
  EXPECT_EQ(f.clock, 1u);
  EXPECT_EQ(f.pid, static_cast<std::uint64_t>(::getpid()));
  EXPECT_NE(f.runtime_id, 0u);
  EXPECT_NE(f.exe.find("taiga-runtime-tests"), std::string::npos) << f.exe;
  for (char c : f.build_id) EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(c))) << f.build_id;
  EXPECT_GE(f.generations, 1u);
  EXPECT_EQ(f.dropped, 0u);
  EXPECT_EQ(f.written, f.events.size());

  // Threads: every worker has its 'T' frame, named and of kind worker.
  std::set<std::uint64_t> workers_seen;
  for (auto& [k, d] : f.threads)
    if (d.kind == static_cast<std::uint64_t>(tf::thread_kind::worker)) {
      workers_seen.insert(d.worker);
      EXPECT_EQ(d.name, "worker " + std::to_string(d.worker));
    }
  EXPECT_GE(workers_seen.size(), 1u);

  // Spawn: parent, site, name.
  auto spawn_of = [&](std::uint64_t tid) {
    auto v = f.about(tf::event::spawn, tid);
    EXPECT_EQ(v.size(), 1u) << "spawn of " << tid;
    return v.empty() ? ev{} : v[0];
  };
  ev s = spawn_of(id.child);
  ASSERT_EQ(s.args.size(), 5u);
  EXPECT_EQ(s.args[1], id.main);
  EXPECT_NE(f.str(s, 2).find("trace_test.cpp:"), std::string::npos) << f.str(s, 2);
  EXPECT_EQ(f.str(s, 3), "child");
  EXPECT_EQ(s.args[4], 0u);
  ev ms = spawn_of(id.main);
  EXPECT_EQ(f.str(ms, 3), "main");

  // Run: every spawned tasklet ran, on a worker in range; its first run has
  // no previous worker and seq 1.
  for (std::uint64_t tid :
       {id.main, id.child, id.thrower, id.sleeper, id.waiter, id.blocker, id.killed}) {
    auto runs = f.about(tf::event::run, tid);
    ASSERT_FALSE(runs.empty()) << tid;
    // File order is per thread: one tasklet's runs on two workers are in
    // two threads' batches. Its own order is its seq (no wrap this early).
    std::sort(runs.begin(), runs.end(),
              [](const ev& a, const ev& b) { return a.args[3] < b.args[3]; });
    EXPECT_EQ(runs[0].args[2], 0u);
    EXPECT_EQ(runs[0].args[3], 1u);
    for (auto& r : runs) EXPECT_LT(r.args[1], GetParam());
    for (std::size_t i = 1; i < runs.size(); ++i)
      EXPECT_EQ(runs[i].args[2], runs[i - 1].args[1] + 1);
  }

  // Yield: the child's, between its two runs.
  auto y = f.about(tf::event::yield, id.child);
  ASSERT_EQ(y.size(), 1u);
  EXPECT_EQ(y[0].args[1], 2u);

  // Park, unblock, run again, with seqs in order: park s, unblock s + 1,
  // run s + 2. The join of the child by main: signaled, by the child.
  auto check_park = [&](std::uint64_t tid, tf::park_reason reason, tf::wake_how how,
                        std::uint64_t waker) {
    auto parks = f.about(tf::event::park, tid);
    auto unblocks = f.about(tf::event::unblock, tid);
    ASSERT_FALSE(parks.empty()) << tid;
    bool found = false;
    for (auto& p : parks) {
      if (p.args[1] != static_cast<std::uint64_t>(reason)) continue;
      for (auto& u : unblocks) {
        if (u.args[3] != seq_after(p.args[4], 1)) continue;
        found = true;
        EXPECT_EQ(u.args[2], static_cast<std::uint64_t>(how)) << tid;
        if (waker != ~0ull) {
          EXPECT_EQ(u.args[1], waker) << tid;
        }
        bool ran_after = false;
        for (auto& r : f.about(tf::event::run, tid))
          ran_after |= r.args[3] == seq_after(p.args[4], 2);
        EXPECT_TRUE(ran_after) << tid;
      }
    }
    EXPECT_TRUE(found) << "park " << int(reason) << " of " << tid;
  };
  check_park(id.main, tf::park_reason::join, tf::wake_how::signaled, ~0ull);
  check_park(id.sleeper, tf::park_reason::sleep, tf::wake_how::timeout, ~0ull);
  check_park(id.waiter, tf::park_reason::user, tf::wake_how::signaled, id.main);
  check_park(id.blocker, tf::park_reason::blocking_call, tf::wake_how::signaled, 0);
  check_park(id.killed, tf::park_reason::sleep, tf::wake_how::interrupted, id.main);
  // The join's object is the joined tasklet; its site is this file.
  for (auto& p : f.about(tf::event::park, id.main))
    if (p.args[1] == static_cast<std::uint64_t>(tf::park_reason::join)) {
      EXPECT_NE(f.str(p, 3).find("trace_test.cpp:"), std::string::npos) << f.str(p, 3);
    }
  // A user's reason: its label just before the park, and the object.
  auto labels = f.about(tf::event::park_label, id.waiter);
  ASSERT_EQ(labels.size(), 1u);
  EXPECT_EQ(f.str(labels[0], 1), "gate");

  // Exit: how, and the exception's type.
  auto exit_of = [&](std::uint64_t tid) {
    auto v = f.about(tf::event::exit, tid);
    EXPECT_EQ(v.size(), 1u) << tid;
    return v.empty() ? ev{0, 0, 0, 0, {0, 99, 0, 0}} : v[0];
  };
  EXPECT_EQ(exit_of(id.child).args[1], static_cast<std::uint64_t>(tf::exit_how::returned));
  ev te = exit_of(id.thrower);
  EXPECT_EQ(te.args[1], static_cast<std::uint64_t>(tf::exit_how::exception));
  EXPECT_EQ(f.str(te, 2), "std::runtime_error");
  EXPECT_EQ(exit_of(id.killed).args[1], static_cast<std::uint64_t>(tf::exit_how::killed));
  EXPECT_EQ(exit_of(id.main).args[1], static_cast<std::uint64_t>(tf::exit_how::returned));

  // Timers, blocking jobs, annotations.
  EXPECT_FALSE(f.about(tf::event::timer_fire, id.sleeper).empty());
  auto bb = f.about(tf::event::blocking_begin, id.blocker);
  auto be = f.about(tf::event::blocking_end, id.blocker);
  ASSERT_EQ(bb.size(), 1u);
  ASSERT_EQ(be.size(), 1u);
  EXPECT_EQ(bb[0].args[1], be[0].args[1]);
  for (auto& [k, d] : f.threads)
    if (k.second == bb[0].thread) {
      EXPECT_EQ(d.kind, static_cast<std::uint64_t>(tf::thread_kind::pool));
    }
  auto rb = f.about(tf::event::region_begin, id.main);
  auto re = f.about(tf::event::region_end, id.main);
  ASSERT_EQ(rb.size(), 1u);
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(f.str(rb[0], 1), "setup");
  auto logs = f.about(tf::event::log, id.main);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(f.str(logs[0], 1), "test");
  EXPECT_EQ(f.str(logs[0], 2), "hello");
  auto counters = f.of(tf::event::counter);
  ASSERT_EQ(counters.size(), 1u);
  EXPECT_EQ(f.str(counters[0], 0), "answer");
  EXPECT_EQ(counters[0].args[1], 42u);

  // Workers slept at the end.
  EXPECT_FALSE(f.of(tf::event::worker_sleep).empty());
  // Time never runs backwards within a thread.
  std::map<std::uint64_t, std::uint64_t> last;
  for (auto& e : f.events) {
    EXPECT_GE(e.time, last[e.thread]);
    last[e.thread] = e.time;
  }
}

// Steals and spins: a burst of spawns from one worker, taken by others.
TEST_P(trace_events, steals_spins_and_samples) {
  if (GetParam() < 2) GTEST_SKIP() << "no thief at one worker";
  memory_sink out;
  taiga::trace::start(rt(), out.sink());
  rt().run([] {
    for (int round = 0; round < 20; ++round) {
      std::vector<taiga::tasklet<void>> ts;
      for (int i = 0; i < 200; ++i)
        ts.push_back(taiga::spawn([] {
          auto until = std::chrono::steady_clock::now() + 20us;
          while (std::chrono::steady_clock::now() < until) {
          }
        }));
      for (auto& t : ts) t.join();
    }
    // Sysmon samples every 10 ms while a worker runs, every 100 ms when all
    // are idle: stay busy past the longer period, so that a loaded host
    // (CI) that delays sysmon still leaves a sample in the trace.
    auto until = std::chrono::steady_clock::now() + 120ms;
    while (std::chrono::steady_clock::now() < until) taiga::this_tasklet::yield();
  });
  taiga::trace::stop(rt());
  trace_file f = decode(out.get());
  ASSERT_TRUE(f.error.empty()) << f.error;
  auto steals = f.of(tf::event::steal);
  EXPECT_FALSE(steals.empty());
  for (auto& s : steals) {
    EXPECT_LT(s.args[0], GetParam());
    EXPECT_GE(s.args[1], 1u);
  }
  EXPECT_FALSE(f.of(tf::event::worker_spin).empty());
  // Samples come from sysmon, one per worker.
  auto samples = f.of(tf::event::sample);
  ASSERT_FALSE(samples.empty());
  for (auto& s : samples) EXPECT_LT(s.args[2], GetParam());
  bool sysmon_thread = false;
  for (auto& [k, d] : f.threads) sysmon_thread |= d.name == "sysmon";
  EXPECT_TRUE(sysmon_thread);
}

// A migration shows as a run whose previous worker differs: a tasklet that
// parks on worker 1 and is woken from worker 0 runs next on worker 0 (its
// waker's), unless worker 1 steals it back; a few tries make that certain.
TEST_P(trace_events, a_migration_is_a_run_on_another_worker) {
  if (GetParam() < 2) GTEST_SKIP() << "one worker: nowhere to migrate";
  memory_sink out;
  taiga::trace::start(rt(), out.sink());
  rt().run([] {
    for (int i = 0; i < 50; ++i) {
      taiga::wake_slot slot;
      auto sleeper =
          taiga::spawn(taiga::spawn_options{.worker = 1}, [&] { (void)slot.wait("hop", &slot); });
      auto waker = taiga::spawn(taiga::spawn_options{.worker = 0}, [&] {
        while (sleeper.state() != taiga::tasklet_state::parked) taiga::this_tasklet::yield();
        slot.signal();
      });
      waker.join();
      sleeper.join();
    }
  });
  taiga::trace::stop(rt());
  trace_file f = decode(out.get());
  ASSERT_TRUE(f.error.empty()) << f.error;
  bool migrated = false;
  for (auto& r : f.of(tf::event::run)) migrated |= r.args[2] != 0 && r.args[2] != r.args[1] + 1;
  EXPECT_TRUE(migrated);
}

TAIGA_WORKER_COUNTS(trace_events);

// Start and stop while spawns and wake-ups go on everywhere: every file is
// whole, and nothing crashes or races (TSan).
TEST(trace, start_and_stop_racing_spawns) {
  taiga::runtime rt(taiga::runtime_config{.workers = 4});
  std::atomic<bool> done{false};
  auto churn = taiga::spawn(rt, [&] {
    while (!done.load()) {
      std::vector<taiga::tasklet<void>> ts;
      for (int i = 0; i < 50; ++i) ts.push_back(taiga::spawn([] { taiga::this_tasklet::yield(); }));
      for (auto& t : ts) t.join();
    }
  });
  // And an outside thread spawning into it.
  std::thread outside([&] {
    while (!done.load()) taiga::spawn(rt, [] {}).join();
  });
  std::size_t events = 0;
  for (int i = 0; i < taiga::test::scaled(40) + 5; ++i) {
    memory_sink out;
    taiga::trace::start(rt, out.sink());
    std::this_thread::sleep_for(2ms);
    taiga::trace::stop(rt);
    trace_file f = decode(out.get());
    ASSERT_TRUE(f.error.empty()) << f.error;
    ASSERT_TRUE(f.header_ok);
    EXPECT_EQ(f.written, f.events.size());
    events += f.events.size();
  }
  done = true;
  outside.join();
  churn.join();
  EXPECT_GT(events, 0u);
}

// Two runtimes, each with its own trace: no event of one lands in the
// other's file, even when one's tasklet wakes the other's.
TEST(trace, two_runtimes_are_kept_apart) {
  taiga::runtime a(taiga::runtime_config{.workers = 2, .name = "a"});
  taiga::runtime b(taiga::runtime_config{.workers = 2, .name = "b"});
  memory_sink oa, ob;
  taiga::trace::start(a, oa.sink());
  taiga::trace::start(b, ob.sink());
  std::set<std::uint64_t> ids_a, ids_b;
  taiga::wake_slot slot;
  auto sleeper = taiga::spawn(b, [&] { (void)slot.wait("cross", &slot); });
  const std::uint64_t sleeper_id = sleeper.id();  // join() empties the handle
  ids_b.insert(sleeper_id);
  a.run([&] {
    for (int i = 0; i < 20; ++i) ids_a.insert(taiga::spawn([] {}).id());
    while (sleeper.state() != taiga::tasklet_state::parked) taiga::this_tasklet::sleep_for(1ms);
    slot.signal();  // a tasklet of a wakes one of b
  });
  b.run([&] {
    for (int i = 0; i < 20; ++i) ids_b.insert(taiga::spawn([] {}).id());
  });
  sleeper.join();
  taiga::trace::stop(a);
  taiga::trace::stop(b);
  trace_file fa = decode(oa.get()), fb = decode(ob.get());
  ASSERT_TRUE(fa.error.empty() && fb.error.empty()) << fa.error << fb.error;
  EXPECT_NE(fa.runtime_id, fb.runtime_id);
  auto spawned = [](const trace_file& f) {
    std::set<std::uint64_t> s;
    for (auto& e : f.of(tf::event::spawn)) s.insert(e.args[0]);
    return s;
  };
  auto sa = spawned(fa), sb = spawned(fb);
  for (auto id : ids_a) {
    EXPECT_TRUE(sa.count(id)) << id;
    EXPECT_FALSE(sb.count(id)) << id;
  }
  for (auto id : ids_b) {
    EXPECT_TRUE(sb.count(id)) << id;
    EXPECT_FALSE(sa.count(id)) << id;
  }
  // The cross-runtime wake is b's event (about b's tasklet), emitted by a
  // worker of a: an outside thread in b's file.
  auto u = fb.about(tf::event::unblock, sleeper_id);
  ASSERT_EQ(u.size(), 1u);
  EXPECT_TRUE(fa.about(tf::event::unblock, sleeper_id).empty());
  for (auto& [k, d] : fb.threads)
    if (k.second == u[0].thread) {
      EXPECT_EQ(d.kind, static_cast<std::uint64_t>(tf::thread_kind::outside));
    }
}

// The flight recorder holds at most its budget (plus the generation being
// cut), and what it writes is a whole trace.
TEST(trace, flight_recorder_memory_is_bounded) {
  taiga::runtime rt(taiga::runtime_config{.workers = 2});
  constexpr std::size_t budget = 256 * 1024;
  taiga::trace::start_flight_recorder(rt, {.max_bytes = budget});
  std::size_t peak = 0;
  std::atomic<bool> done{false};
  auto busy = taiga::spawn(rt, [&] {
    while (!done.load()) {
      std::vector<taiga::tasklet<void>> ts;
      for (int i = 0; i < 64; ++i) ts.push_back(taiga::spawn([] { taiga::this_tasklet::yield(); }));
      for (auto& t : ts) t.join();
    }
  });
  auto until = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < until) {
    peak = std::max(peak, taiga::trace::flight_recorder_bytes(rt));
    std::this_thread::sleep_for(5ms);
  }
  done = true;
  busy.join();
  // The deque keeps whole generations up to the budget, or the newest one
  // alone, which is at most half the budget of full batches (past that,
  // events are counted as dropped) plus a partial batch per thread.
  EXPECT_GT(peak, 0u);
  EXPECT_LE(peak, budget + 8 * 72 * 1024);
  std::string path = temp_path("flight");
  taiga::trace::write_flight_recorder(rt, path);
  trace_file f = decode(read_file(path));
  std::remove(path.c_str());
  ASSERT_TRUE(f.error.empty()) << f.error;
  EXPECT_TRUE(f.header_ok);
  EXPECT_GE(f.generations, 1u);
  EXPECT_FALSE(f.of(tf::event::run).empty());
  // It rotated: the oldest generations are gone.
  EXPECT_GT(f.events.front().gen, 1u);
  taiga::trace::stop(rt);
  EXPECT_EQ(taiga::trace::flight_recorder_bytes(rt), 0u);
}

// The deadlock detector writes the flight recorder to its path.
TEST(trace, flight_recorder_is_written_on_deadlock) {
  std::string path = temp_path("deadlock");
  std::remove(path.c_str());
  taiga::runtime_config c{.workers = 2};
  c.deadlock_handler = [](const taiga::deadlock_report&) {};
  taiga::runtime rt(std::move(c));
  taiga::trace::start_flight_recorder(rt, {.max_bytes = 1 << 20, .path = path});
  taiga::wake_slot never;
  EXPECT_THROW(rt.run([&] {
    (void)never.wait("never", &never);
    taiga::this_tasklet::sleep_for(10s);
  }),
               taiga::deadlock_error);
  trace_file f = decode(read_file(path));
  std::remove(path.c_str());
  ASSERT_TRUE(f.error.empty()) << f.error;
  ASSERT_TRUE(f.header_ok);
  auto d = f.of(tf::event::deadlock);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].args[0], 1u);
  EXPECT_FALSE(f.of(tf::event::park).empty());
}

// A file cut anywhere yields every generation whose end arrived.
TEST(trace, a_truncated_file_keeps_its_complete_generations) {
  taiga::runtime rt(taiga::runtime_config{.workers = 2});
  std::string path = temp_path("truncated");
  taiga::trace::start(rt, path);
  rt.run([] {
    auto until = std::chrono::steady_clock::now() + 2200ms;  // three generations
    while (std::chrono::steady_clock::now() < until) {
      taiga::spawn([] { taiga::this_tasklet::yield(); }).join();
      taiga::this_tasklet::sleep_for(100us);
    }
  });
  taiga::trace::stop(rt);
  std::string bytes = read_file(path);
  std::remove(path.c_str());
  trace_file whole = decode(bytes);
  ASSERT_TRUE(whole.error.empty()) << whole.error;
  ASSERT_GE(whole.generations, 3u);
  // Where each generation ends.
  std::vector<std::size_t> ends;
  for (std::size_t at = 0; at + 5 <= bytes.size();) {
    std::uint32_t len = static_cast<std::uint8_t>(bytes[at + 1]) |
                        (static_cast<std::uint8_t>(bytes[at + 2]) << 8) |
                        (static_cast<std::uint8_t>(bytes[at + 3]) << 16) |
                        (std::uint32_t(static_cast<std::uint8_t>(bytes[at + 4])) << 24);
    if (bytes[at] == 'E') ends.push_back(at + 5 + len);
    at += 5 + len;
  }
  ASSERT_EQ(ends.size(), whole.generations);
  for (std::size_t cut : {ends[0] + 1, ends[1] - 1, ends[1] + 17, bytes.size() - 3}) {
    trace_file part = decode(bytes.substr(0, cut));
    ASSERT_TRUE(part.error.empty()) << part.error;
    std::size_t complete = std::upper_bound(ends.begin(), ends.end(), cut) - ends.begin();
    EXPECT_EQ(part.generations, complete) << cut;
  }
}

// TAIGA_TRACE=path records any program from its runtime's start.
TEST(trace, taiga_trace_environment_variable) {
  std::string path = temp_path("env");
  std::remove(path.c_str());
  ::setenv("TAIGA_TRACE", path.c_str(), 1);
  std::uint64_t id = 0;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = 1});
    ::unsetenv("TAIGA_TRACE");
    EXPECT_TRUE(taiga::trace::recording(rt));
    rt.run([&] { id = taiga::spawn([] {}).id(); });
  }  // the shutdown ends the trace
  // The first runtime of the process with the variable takes the path as
  // is; a later one (this test repeated: --gtest_repeat) appends its
  // runtime id.
  std::string bytes = read_file(path);
  std::remove(path.c_str());
  if (bytes.empty()) {
    auto slash = path.rfind('/');
    std::string dir = path.substr(0, slash), base = path.substr(slash + 1) + ".";
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      std::string name = entry.path().filename().string();
      if (name.rfind(base, 0) == 0) {
        bytes = read_file(entry.path().string());
        std::filesystem::remove(entry.path());
      }
    }
  }
  trace_file f = decode(bytes);
  ASSERT_TRUE(f.error.empty()) << f.error;
  EXPECT_EQ(f.about(tf::event::spawn, id).size(), 1u);
  EXPECT_EQ(f.about(tf::event::exit, id).size(), 1u);
}

// runtime::dump_summary: one line per spawn site x state x reason, largest
// first, with the oldest wait of parks that began while a trace recorded;
// runtime::dump prints that wait too.
TEST(trace, dump_summary_groups_by_site_state_and_reason) {
  taiga::runtime rt(taiga::runtime_config{.workers = 2, .name = "sum"});
  memory_sink out;
  taiga::trace::start(rt, out.sink());
  std::vector<taiga::tasklet<void>> sleepers;
  for (int i = 0; i < 30; ++i)
    sleepers.push_back(taiga::spawn(rt, [] { taiga::this_tasklet::sleep_for(10s); }));
  taiga::wake_slot slot;
  auto waiter = taiga::spawn(rt, [&] { (void)slot.wait("gate", &slot); });
  for (auto& s : sleepers)
    while (s.state() != taiga::tasklet_state::parked) std::this_thread::sleep_for(1ms);
  while (waiter.state() != taiga::tasklet_state::parked) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);
  std::ostringstream sum;
  rt.dump_summary(sum);
  std::string text = sum.str();
  EXPECT_NE(text.find("runtime 'sum': 31 live tasklets in 2 groups"), std::string::npos) << text;
  auto first = text.find("\n  30 parked on sleep, oldest for ");
  auto second = text.find("\n  1 parked on gate, oldest for ");
  EXPECT_NE(first, std::string::npos) << text;
  EXPECT_NE(second, std::string::npos) << text;
  EXPECT_LT(first, second) << text;
  EXPECT_NE(text.find("spawned at "), std::string::npos) << text;
  std::ostringstream full;
  rt.dump(full);
  EXPECT_NE(full.str().find("parked on gate"), std::string::npos) << full.str();
  EXPECT_NE(full.str().find(" ms worker "), std::string::npos) << full.str();
  slot.signal();
  waiter.join();
  for (auto& s : sleepers) s.kill();
  for (auto& s : sleepers) EXPECT_THROW(s.join(), taiga::tasklet_killed);
  taiga::trace::stop(rt);
}

// A fatal signal writes the flight recorder's generations from the signal
// handler (open, write, close), then the signal takes its course.
TEST(trace_death, a_fatal_signal_writes_the_flight_recorder) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The "threadsafe" child runs this test again from the start, in a new
  // process: the path comes to it through the environment.
  const char* inherited = std::getenv("TAIGA_TRACE_TEST_FATAL");
  std::string path = inherited ? inherited : temp_path("fatal");
  if (!inherited) {
    std::remove(path.c_str());
    ::setenv("TAIGA_TRACE_TEST_FATAL", path.c_str(), 1);
  }
  EXPECT_DEATH(
      {
        taiga::runtime rt(taiga::runtime_config{.workers = 2});
        taiga::trace::start_flight_recorder(rt, {.max_bytes = 1 << 20, .path = path});
        rt.run([] {
          for (int i = 0; i < 100; ++i) taiga::spawn([] { taiga::this_tasklet::yield(); }).join();
        });
        // Cut what was recorded into a complete generation (kept in memory).
        taiga::trace::write_flight_recorder(rt, "/dev/null");
        std::raise(SIGSEGV);
      },
      "");
  ::unsetenv("TAIGA_TRACE_TEST_FATAL");
  trace_file f = decode(read_file(path));
  std::remove(path.c_str());
  ASSERT_TRUE(f.error.empty()) << f.error;
  ASSERT_TRUE(f.header_ok);
  EXPECT_GE(f.generations, 1u);
  EXPECT_GE(f.of(tf::event::spawn).size(), 100u);
}
