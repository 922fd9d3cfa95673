// taiga-trace's commands on traces the tests write: what each prints, the
// exit statuses, and that no prefix of a trace makes any command crash.
#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>

#include "commands.hpp"
#include "trace_test_support.hpp"

namespace tf = taiga::trace_format;
using taiga::test::demo_trace;
using taiga::test::occurrences;
using taiga::test::read_text;
using taiga::test::run_cli;
using taiga::test::scratch_dir;
using taiga::test::tasklet_script;
using taiga::test::trace_writer;

namespace {

bool python_available() {
  return std::system("/usr/bin/python3 -c pass >/dev/null 2>&1") == 0;
}

// Parses a JSON file with Python's json module; returns its exit status.
int python_json_check(const std::string& path, const std::string& expr) {
  std::string cmd = "/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); " +
                    expr + "' '" + path + "'";
  return std::system(cmd.c_str());
}

// One worker running tasklets through `body`, in one generation.
template <class Fn>
std::string one_worker_trace(Fn body) {
  trace_writer w;
  tasklet_script s(w);
  w.thread(1, tf::thread_kind::worker, 0, "worker 0");
  w.thread(2, tf::thread_kind::worker, 1, "worker 1");
  w.thread(3, tf::thread_kind::pool, 0, "pool 0");
  w.thread(4, tf::thread_kind::sysmon, 0, "sysmon");
  body(w, s);
  w.end_generation();
  return w.bytes();
}

}  // namespace

TEST(trace_cli, help_and_usage_errors) {
  auto r = run_cli({"help"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("usage: taiga-trace COMMAND FILE"), std::string::npos);
  EXPECT_EQ(run_cli({}).rc, 2);
  r = run_cli({"frobnicate", "x"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos);
  EXPECT_EQ(run_cli({"summary"}).rc, 2);
  EXPECT_EQ(run_cli({"summary", "a", "b"}).rc, 2);
  EXPECT_EQ(run_cli({"summary", "a", "--bogus"}).rc, 2);
  EXPECT_EQ(run_cli({"export", "a", "--from"}).rc, 2);
  r = run_cli({"export", "a", "--from=soon"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("is not a time"), std::string::npos);
}

TEST(trace_cli, unreadable_files_exit_3_with_a_sentence) {
  scratch_dir d;
  auto r = run_cli({"summary", d.path("missing.trace")});
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos);
  r = run_cli({"summary", d.write("foreign", "GIF89a and so on, certainly not a trace")});
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("not a taiga trace"), std::string::npos) << r.err;
  taiga::test::trace_header h;
  h.version = 9;
  r = run_cli({"check", d.write("newer", demo_trace(h).bytes())});
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("format version 9 is newer than this reader"), std::string::npos);
  r = run_cli({"summary", d.path("")});
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("is a directory, not a trace file"), std::string::npos) << r.err;
}

TEST(trace_cli, a_truncated_file_is_reported_and_still_summarized) {
  scratch_dir d;
  std::string whole = demo_trace().bytes();
  auto path = d.write("cut.trace", whole.substr(0, whole.size() - 7));
  auto r = run_cli({"summary", path});
  EXPECT_EQ(r.rc, 4);
  EXPECT_NE(r.err.find("note: the file is cut short"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("1 generations"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 spawned"), std::string::npos) << r.out;
}

TEST(trace_cli, summary_of_the_demo) {
  scratch_dir d;
  auto r = run_cli({"summary", d.write("demo.trace", demo_trace().bytes())});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto& o = r.out;
  EXPECT_NE(o.find("format version 1, pid 4242, runtime 1"), std::string::npos) << o;
  EXPECT_NE(o.find("duration 20.01 ms, 2 generations, 21 events, 0 dropped"), std::string::npos)
      << o;
  EXPECT_NE(o.find("tasklets: 3 spawned, 3 finished, 3 seen"), std::string::npos) << o;
  // The consumer was stolen: its runs are on worker 1, its spawn on worker 0,
  // but no run follows a run elsewhere.
  EXPECT_NE(o.find("steals: 1 (1 tasklets moved), migrations: 0"), std::string::npos) << o;
  // Worker rows: index, busy, share, spin, idle.
  EXPECT_NE(o.find("20.01 ms  100.0%    0 ns      0 ns"), std::string::npos) << o;
  EXPECT_NE(o.find("400 ns  19.99 ms"), std::string::npos) << o;
  // Spawn sites by run time, the heaviest first.
  auto main_at = o.find("main.cpp:10"), producer_at = o.find("main.cpp:20");
  ASSERT_NE(main_at, std::string::npos);
  EXPECT_LT(main_at, producer_at);
  EXPECT_NE(o.find("channel receive      1  1.00 us  1.00 us  1.00 us  1.00 us"), std::string::npos)
      << o;
  EXPECT_NE(o.find("join                 1  5.00 us"), std::string::npos) << o;
  EXPECT_NE(o.find("scheduler latency (ready -> running), 6 runs:"), std::string::npos);
  EXPECT_NE(o.find("< 1 us"), std::string::npos);
  EXPECT_NE(o.find("p50 500 ns, p99 1.50 us, max 1.50 us"), std::string::npos) << o;
  EXPECT_NE(o.find("dropped events: 0"), std::string::npos);
}

TEST(trace_cli, tasklets_with_filters) {
  scratch_dir d;
  auto path = d.write("demo.trace", demo_trace().bytes());
  auto r = run_cli({"tasklets", path});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("3 of 3 tasklets"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("consumer"), std::string::npos);
  r = run_cli({"tasklets", path, "--name=cons"});
  EXPECT_NE(r.out.find("1 of 3 tasklets"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("producer"), std::string::npos);
  r = run_cli({"tasklets", path, "--site", "main.cpp:20"});
  EXPECT_NE(r.out.find("producer"), std::string::npos);
  EXPECT_NE(r.out.find("1 of 3 tasklets"), std::string::npos);
  r = run_cli({"tasklets", path, "--state=done"});
  EXPECT_NE(r.out.find("3 of 3 tasklets"), std::string::npos);
  r = run_cli({"tasklets", path, "--state=parked"});
  EXPECT_NE(r.out.find("0 of 3 tasklets"), std::string::npos);
  r = run_cli({"tasklets", path, "--state=sleepy"});
  EXPECT_EQ(r.rc, 2);
}

TEST(trace_cli, one_tasklets_life) {
  scratch_dir d;
  auto path = d.write("demo.trace", demo_trace().bytes());
  auto r = run_cli({"tasklet", path, "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto& o = r.out;
  EXPECT_NE(o.find("tasklet 3 \"consumer\": done"), std::string::npos) << o;
  EXPECT_NE(o.find("spawned +0.000003 s by tasklet 1"), std::string::npos) << o;
  EXPECT_NE(o.find("+0.000004  run on worker 1 for 1.00 us, then park"), std::string::npos) << o;
  EXPECT_NE(o.find("+0.000005  park: channel receive on 0x2000 at consumer.cpp:5, signaled after "
                   "1.00 us by tasklet 2 (producer)"),
            std::string::npos)
      << o;
  EXPECT_NE(o.find("run on worker 1 for 1.00 us, then exit"), std::string::npos) << o;
  r = run_cli({"tasklet", path, "1"});
  EXPECT_NE(r.out.find("spawned 2 tasklets: 2 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("park: join on 0x1000 at main.cpp:40"), std::string::npos) << r.out;
  EXPECT_EQ(run_cli({"tasklet", path, "99"}).rc, 1);
  EXPECT_EQ(run_cli({"tasklet", path, "x"}).rc, 2);
}

TEST(trace_cli, tree_folds_by_spawn_site) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "main.cpp:1", "main");
    s.run(1, 20, 1, 0);
    std::uint64_t t = 30;
    for (std::uint64_t id = 2; id < 12; ++id) s.spawn(1, t++, id, 1, "server.cpp:5", "conn");
    s.spawn(1, t++, 12, 2, "conn.cpp:9", "reader");
    s.spawn(1, t++, 13, 3, "conn.cpp:9", "reader");
    s.exit(1, t++, 1);
  });
  auto r = run_cli({"tree", d.write("t.trace", bytes)});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("  main.cpp:1  x1, 0 alive"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    server.cpp:5  x10, 10 alive"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("      conn.cpp:9  x2, 2 alive"), std::string::npos) << r.out;
}

TEST(trace_cli, blocking_profile) {
  scratch_dir d;
  auto r = run_cli({"blocking", d.write("demo.trace", demo_trace().bytes())});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("blocking profile: 2 parks, 6.00 us parked in all"), std::string::npos)
      << r.out;
  auto join_at = r.out.find("  join "), receive_at = r.out.find("  channel receive ");
  ASSERT_NE(join_at, std::string::npos) << r.out;
  EXPECT_LT(join_at, receive_at);  // the longer total first
  EXPECT_NE(r.out.find("consumer.cpp:5"), std::string::npos);
  EXPECT_NE(r.out.find("0x2000"), std::string::npos);
}

TEST(trace_cli, check_passes_a_sound_trace) {
  scratch_dir d;
  auto r = run_cli({"check", d.write("demo.trace", demo_trace().bytes())});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("check: ok: 3 tasklets, 21 events replayed"), std::string::npos) << r.out;
}

TEST(trace_cli, check_catches_a_tasklet_on_two_workers) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "");
    s.run(1, 20, 1, 0);
    s.run(2, 30, 1, 1);  // no park, yield or exit in between
  });
  auto r = run_cli({"check", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("tasklet 1 runs on worker 1 while still running on worker 0"),
            std::string::npos)
      << r.out;
}

TEST(trace_cli, check_catches_a_wake_without_a_park) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "");
    s.spawn(1, 11, 2, 0, "", "");
    s.run(1, 20, 1, 0);
    s.unblock(1, 25, 2, 1);  // 2 is ready, never parked
    s.exit(1, 30, 1);
  });
  auto r = run_cli({"check", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("tasklet 2 is woken by tasklet 1 without a park (it is ready)"),
            std::string::npos)
      << r.out;
}

TEST(trace_cli, check_catches_a_run_while_parked) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "");
    s.run(1, 20, 1, 0);
    s.park(1, 30, 1, tf::park_reason::mutex, 0x40, "");
    s.run(2, 40, 1, 1);  // nobody woke it
  });
  auto r = run_cli({"check", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("tasklet 1 runs on worker 1 while parked (no wake since its park)"),
            std::string::npos)
      << r.out;
}

TEST(trace_cli, check_catches_two_tasklets_on_one_worker) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "");
    s.spawn(1, 10, 2, 0, "", "");
    s.run(1, 20, 1, 0);
    s.run(1, 30, 2, 0);  // 1 never left worker 0
    s.exit(1, 40, 2);
    s.exit(1, 50, 1);
  });
  auto r = run_cli({"check", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("worker 0 runs tasklet 2 while tasklet 1 still runs on it"),
            std::string::npos)
      << r.out;
}

TEST(trace_cli, lint_reports_a_long_run_slice) {
  scratch_dir d;
  auto path = d.write("demo.trace", demo_trace().bytes());
  auto r = run_cli({"lint", path});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("long run slices (over 10.00 ms without a park or yield): 1"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("tasklet 1 (main, main.cpp:10) ran 20.00 ms on worker 0"), std::string::npos)
      << r.out;
  r = run_cli({"lint", path, "--slice-ms=30"});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("lint: ok"), std::string::npos);
  EXPECT_EQ(run_cli({"lint", path, "--yield-storm=0"}).rc, 2);
}

TEST(trace_cli, lint_reports_a_yield_storm) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "poll.cpp:3", "poller");
    std::uint64_t t = 100;
    for (int i = 0; i < 50; ++i) {
      s.run(1, t, 1, 0);
      s.yield(1, t + 50, 1);
      t += 100;
    }
  });
  auto path = d.write("t.trace", bytes);
  auto r = run_cli({"lint", path, "--yield-storm=40"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("yield storm: tasklet 1 (poller, poll.cpp:3) yielded 50 times within 10 ms"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(run_cli({"lint", path}).rc, 0);  // 50 is below the default 1000
}

TEST(trace_cli, lint_reports_a_lost_waker) {
  // Two tasklets each wait to receive from a channel that only they use.
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "a");
    s.spawn(1, 11, 2, 0, "", "b");
    s.run(1, 20, 1, 0);
    s.park(1, 30, 1, tf::park_reason::channel_receive, 0x5000, "wait.cpp:1");
    s.run(1, 40, 2, 0);
    s.park(1, 50, 2, tf::park_reason::channel_receive, 0x5000, "wait.cpp:1");
  });
  auto r = run_cli({"lint", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("lost waker? channel 0x5000: tasklets 1, 2 are parked on it at the end"),
            std::string::npos)
      << r.out;
}

TEST(trace_cli, lint_reports_senders_without_a_receiver) {
  // Tasklet 3 received once from 0x7000 (woke a sender): not this lint.
  // On 0x6000 senders wait and nobody ever received.
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "s1");
    s.spawn(1, 11, 2, 0, "", "s2");
    s.spawn(1, 12, 3, 0, "", "main");
    s.run(1, 20, 1, 0);
    s.park(1, 30, 1, tf::park_reason::channel_send, 0x6000, "send.cpp:1");
    s.run(1, 40, 2, 0);
    s.park(1, 50, 2, tf::park_reason::channel_send, 0x6000, "send.cpp:1");
    s.run(1, 60, 3, 0);
  });
  auto r = run_cli({"lint", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("channel 0x6000 has senders and no receiver: tasklets 1, 2 are parked "
                       "sending at the end"),
            std::string::npos)
      << r.out;
}

TEST(trace_cli, lint_passes_a_served_channel) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "server");
    s.spawn(1, 11, 2, 0, "", "client");
    s.run(1, 20, 1, 0);
    s.park(1, 30, 1, tf::park_reason::channel_receive, 0x5000, "");
    s.run(1, 40, 2, 0);
    s.unblock(1, 45, 1, 2);
    s.park(1, 50, 2, tf::park_reason::sleep, 0, "");
    s.run(1, 60, 1, 0);
    s.park(1, 70, 1, tf::park_reason::channel_receive, 0x5000, "");  // waits for the next
  });
  auto r = run_cli({"lint", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("lint: ok: 3 run slices, 2 tasklets, 1 channels"), std::string::npos)
      << r.out;
}

TEST(trace_cli, lint_counts_a_waker_without_events_of_its_own_as_alive) {
  // Tasklet 99 woke the receiver but has no events in the trace (spawned
  // before it, never parked during it): it may send again, so no finding.
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "", "server");
    s.run(1, 20, 1, 0);
    s.park(1, 30, 1, tf::park_reason::channel_receive, 0x5000, "");
    s.unblock(1, 45, 1, 99);
    s.run(1, 60, 1, 0);
    s.park(1, 70, 1, tf::park_reason::channel_receive, 0x5000, "");
  });
  auto r = run_cli({"lint", d.write("t.trace", bytes)});
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(trace_cli, reports_pool_jobs_timers_samples_logs_and_the_runtimes_reports) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer& w, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "job.cpp:1", "job");
    s.run(1, 20, 1, 0);
    w.event(1, 30, tf::event::log, {1, w.str("db"), w.str("query started")});
    w.event(1, 40, tf::event::blocking_begin, {1, 7});
    s.park(1, 41, 1, tf::park_reason::blocking_call, 0, "");
    w.event(3, 5040, tf::event::blocking_end, {1, 7});
    w.event(1, 100, tf::event::timer_fire, {1});
    w.event(1, 110, tf::event::io_wait, {1, 9});
    w.event(1, 120, tf::event::region_begin, {1, w.str("r")});
    w.event(1, 130, tf::event::counter, {w.str("conns"), 5});
    w.event(1, 140, tf::event::counter, {w.str("conns"), 6});
    w.event(4, 150, tf::event::sample, {12, 3, 0, 4, 2500});
    w.event(4, 160, tf::event::sample, {10, 1, 1, 9, 500});
    w.event(4, 170, tf::event::watchdog, {1, 30000000});
    w.event(4, 180, tf::event::deadlock, {2});
  });
  auto path = d.write("t.trace", bytes);
  auto r = run_cli({"summary", path});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("blocking calls: 1 (5.00 us on the pool), timers fired: 1, I/O waits: 1, "
                       "regions: 1, log lines: 1"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("watchdog reports: 1, deadlock reports: 1"), std::string::npos);
  EXPECT_NE(r.out.find("samples: 2, at most 12 live and 3 ready tasklets"), std::string::npos);
  EXPECT_NE(r.out.find("counter conns = 6 (last value)"), std::string::npos);
  EXPECT_NE(r.out.find("os delay  max queue"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2.50 us          4"), std::string::npos) << r.out;
  r = run_cli({"tasklet", path, "1"});
  // In time order: the run (20), the log line (30), the park (41).
  auto run_at = r.out.find("run on worker 0"), log_at = r.out.find("log [db] query started"),
       park_at = r.out.find("park: blocking call");
  ASSERT_NE(log_at, std::string::npos) << r.out;
  EXPECT_LT(run_at, log_at);
  EXPECT_LT(log_at, park_at) << r.out;
  EXPECT_NE(r.out.find("watchdog: running for 30.00 ms"), std::string::npos) << r.out;
  r = run_cli({"lint", path});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("watchdog: tasklet 1 (job) had run 30.00 ms without a park"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("deadlock: the runtime reported 2 tasklets that can never wake"),
            std::string::npos);
}

TEST(trace_cli, chrome_export_is_json_with_slices_flows_and_tracks) {
  scratch_dir d;
  auto path = d.write("demo.trace", demo_trace().bytes());
  auto out = d.path("out.json");
  auto r = run_cli({"export", "--format=chrome", path, "-o", out});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto json = read_text(out);
  EXPECT_EQ(occurrences(json, "\"ph\":\"X\""), 6u);
  EXPECT_EQ(occurrences(json, "\"ph\":\"s\""), 2u);  // consumer's and main's wakes
  EXPECT_EQ(occurrences(json, "\"ph\":\"f\""), 2u);
  EXPECT_EQ(occurrences(json, "\"name\":\"wake: channel receive\""), 2u);  // its s and f
  EXPECT_EQ(occurrences(json, "\"name\":\"wake: join\""), 2u);
  EXPECT_NE(
      json.find("\"name\":\"thread_name\",\"pid\":4242,\"tid\":0,\"args\":{\"name\":\"worker 0\"}"),
      std::string::npos);
  EXPECT_NE(json.find("\"ph\":\"X\",\"cat\":\"run\",\"name\":\"consumer\",\"pid\":4242,\"tid\":1,"
                      "\"ts\":6.500,\"dur\":1.000"),
            std::string::npos)
      << json;
  if (!python_available()) GTEST_SKIP() << "no /usr/bin/python3 to parse the JSON";
  EXPECT_EQ(python_json_check(out,
                              "ev=d[\"traceEvents\"]; assert sum(e[\"ph\"]==\"X\" for e in "
                              "ev)==6; assert all(\"ts\" in e for e in ev if e[\"ph\"]!=\"M\")"),
            0);
}

TEST(trace_cli, chrome_export_windows) {
  scratch_dir d;
  auto path = d.write("demo.trace", demo_trace().bytes());
  auto r = run_cli({"export", "--format=chrome", path, "--tasklet=3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(occurrences(r.out, "\"ph\":\"X\""), 2u);
  // Offsets from the start (1000 ns): 0..2.5 us holds main's first run only.
  r = run_cli({"export", "--format=chrome", path, "--from=0", "--to=2.5us"});
  EXPECT_EQ(occurrences(r.out, "\"ph\":\"X\""), 1u) << r.out;
  r = run_cli({"export", "--format=chrome", path, "--from=9ms"});
  EXPECT_EQ(occurrences(r.out, "\"ph\":\"X\""), 1u) << r.out;
  r = run_cli({"export", "--format=chrome", path, "--max-events=3"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("the export would hold 10 events, more than 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("choose a window with --from/--to or --tasklet"), std::string::npos);
  r = run_cli({"export", path});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--format=chrome"), std::string::npos);
}

TEST(trace_cli, strings_that_are_not_utf8_still_give_valid_json) {
  scratch_dir d;
  auto bytes = one_worker_trace([](trace_writer&, tasklet_script& s) {
    s.spawn(1, 10, 1, 0, "bad\xff\xfe site \"quoted\" </script>", "na\x01me\xc3\xa9");
    s.run(1, 20, 1, 0);
    s.exit(1, 30, 1);
  });
  auto path = d.write("t.trace", bytes);
  auto out = d.path("out.json");
  ASSERT_EQ(run_cli({"export", "--format=chrome", path, "-o", out}).rc, 0);
  auto html = d.path("out.html");
  ASSERT_EQ(run_cli({"html", path, "-o", html}).rc, 0);
  EXPECT_EQ(occurrences(read_text(html), "</script>"), 2u);  // the page's own two only
  if (!python_available()) GTEST_SKIP() << "no /usr/bin/python3 to parse the JSON";
  EXPECT_EQ(python_json_check(out,
                              "assert d[\"traceEvents\"][-1][\"args\"][\"site\"].startswith("
                              "\"bad\\ufffd\\ufffd site\")"),
            0);
}

TEST(trace_cli, html_page_holds_the_data_and_the_viewer) {
  scratch_dir d;
  auto path = d.write("demo.trace", demo_trace().bytes());
  auto out = d.path("demo.html");
  auto r = run_cli({"html", path, "-o", out});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto page = read_text(out);
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("<canvas id=\"canvas\""), std::string::npos);
  EXPECT_NE(page.find("\"tracks\":[{\"w\":0,\"s\":[1000,"), std::string::npos) << page;
  EXPECT_NE(page.find("tasklets: 3 spawned, 3 finished"), std::string::npos);
  EXPECT_EQ(page.find("http://"), std::string::npos);  // nothing fetched
  EXPECT_EQ(page.find("https://"), std::string::npos);
  if (!python_available()) GTEST_SKIP() << "no /usr/bin/python3 to parse the JSON";
  // The embedded data is one JSON object.
  std::string cmd =
      "/usr/bin/python3 -c 'import json,sys; p=open(sys.argv[1]).read(); "
      "a=p.index(\"application/json\\\">\")+18; b=p.index(\"</script>\",a); "
      "d=json.loads(p[a:b]); assert len(d[\"tracks\"])==2 and len(d[\"tasklets\"])==3' '" +
      out + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

TEST(trace_cli, every_command_survives_every_prefix_of_a_trace) {
  scratch_dir d;
  const std::string whole = demo_trace().bytes();
  auto path = d.path("cut.trace");
  const std::vector<std::vector<std::string>> commands = {
      {"summary", path},      {"tasklets", path},
      {"tasklet", path, "3"}, {"tree", path},
      {"blocking", path},     {"check", path},
      {"lint", path},         {"export", "--format=chrome", path},
      {"html", path}};
  for (std::size_t cut = 0; cut <= whole.size(); ++cut) {
    d.write("cut.trace", whole.substr(0, cut));
    for (const auto& c : commands) {
      auto r = run_cli(c);
      ASSERT_TRUE(r.rc >= 0 && r.rc <= 4) << c[0] << " at cut " << cut;
      if (cut < 16) {
        EXPECT_EQ(r.rc, 3) << c[0] << " at cut " << cut;
      }
    }
  }
}

namespace {

[[gnu::noinline]] int symbolize_target(int x) {
  asm volatile("" ::: "memory");
  return x + 1;
}

// The address addr2line takes for symbolize_target in this executable: its
// offset from the load base (PIE) or its address (non-PIE, base 0).
std::string target_address() {
  Dl_info info{};
  void* fn = reinterpret_cast<void*>(&symbolize_target);
  if (dladdr(fn, &info) == 0) return {};
  auto offset =
      reinterpret_cast<std::uintptr_t>(fn) - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(offset));
  return b;
}

std::string sited_trace(const std::string& build_id, const std::string& exe,
                        const std::string& site) {
  taiga::test::trace_header h;
  h.build_id = build_id;
  h.exe_path = exe;
  trace_writer w(h);
  tasklet_script s(w);
  w.thread(1, tf::thread_kind::worker, 0, "w0");
  s.spawn(1, 10, 1, 0, "main.cpp:1", "main");
  s.run(1, 20, 1, 0);
  s.park(1, 30, 1, tf::park_reason::sleep, 0, site);
  w.end_generation();
  return w.bytes();
}

}  // namespace

TEST(trace_cli, park_sites_are_symbolized_against_the_matching_executable) {
  EXPECT_EQ(symbolize_target(1), 2);
  std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string id = taiga::trace::cli::elf_build_id(exe);
  if (id.empty()) GTEST_SKIP() << exe << " has no GNU build-id";
  if (std::system("addr2line --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no addr2line";
  auto address = target_address();
  ASSERT_FALSE(address.empty());
  scratch_dir d;
  auto path = d.write("t.trace", sited_trace(id, exe, address));
  auto r = run_cli({"blocking", path});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("symbolize_target"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("trace_cli_test.cpp:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(" + address + ")"), std::string::npos) << r.out;

  r = run_cli({"blocking", path, "--no-symbolize"});
  EXPECT_EQ(r.out.find("symbolize_target"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(address), std::string::npos);

  // Another build at the same path: the lines would be wrong, so none are given.
  path = d.write("other.trace", sited_trace("00ff", exe, address));
  r = run_cli({"blocking", path});
  EXPECT_EQ(r.out.find("symbolize_target"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("has build-id " + id + ", the trace was written by 00ff"), std::string::npos)
      << r.err;

  path = d.write("gone.trace", sited_trace(id, d.path("no-such-exe"), address));
  r = run_cli({"blocking", path});
  EXPECT_NE(r.err.find("is missing or has no build-id"), std::string::npos) << r.err;
}

TEST(trace_cli, elf_build_id_of_non_elf_files_is_empty) {
  scratch_dir d;
  EXPECT_EQ(taiga::trace::cli::elf_build_id(d.write("x",
                                                    "\x7f"
                                                    "ELF\x02\x01 short")),
            "");
  EXPECT_EQ(taiga::trace::cli::elf_build_id(d.write("y", "plain text")), "");
  EXPECT_EQ(taiga::trace::cli::elf_build_id(d.path("none")), "");
}
