// The trace reader and the model: decoding, ordering, salvage of truncated
// files, refusal of foreign and newer ones, and the state machine.
#include <taiga/trace/model.hpp>
#include <taiga/trace/reader.hpp>

#include <algorithm>
#include <random>
#include <thread>

#include "trace_test_support.hpp"

namespace tt = taiga::trace;
namespace tf = taiga::trace_format;
using taiga::test::demo_trace;
using taiga::test::tasklet_script;
using taiga::test::trace_writer;

TEST(trace_reader, reads_header_generations_strings_and_threads) {
  taiga::test::trace_header h;
  h.pid = 77;
  h.runtime_id = 3;
  h.build_id = "abcdef";
  h.exe_path = "/bin/demo";
  auto f = tt::read_bytes(demo_trace(h).bytes());
  ASSERT_TRUE(f.opened) << f.error;
  EXPECT_EQ(f.stopped, tt::stop_reason::none) << f.error;
  EXPECT_EQ(f.header.version, tf::version);
  EXPECT_EQ(f.header.pid, 77u);
  EXPECT_EQ(f.header.runtime_id, 3u);
  EXPECT_EQ(f.header.build_id, "abcdef");
  EXPECT_EQ(f.header.exe_path, "/bin/demo");
  ASSERT_EQ(f.generations.size(), 2u);
  const auto& g = f.generations[0];
  EXPECT_EQ(g.number, 1u);
  EXPECT_EQ(g.threads.at(2).name, "worker 1");
  EXPECT_EQ(g.threads.at(2).worker, 1u);
  EXPECT_EQ(g.threads.at(3).kind, static_cast<std::uint8_t>(tf::thread_kind::outside));
  EXPECT_EQ(g.end_time, 7600u);
  EXPECT_EQ(g.events_written, g.events.size());
  // Batches of three events from three threads, merged by time.
  ASSERT_EQ(g.events.size(), 11u);
  for (std::size_t i = 1; i < g.events.size(); ++i)
    EXPECT_LE(g.events[i - 1].time, g.events[i].time);
  EXPECT_EQ(g.events[0].type, static_cast<std::uint8_t>(tf::event::spawn));
  EXPECT_EQ(g.string(g.events[0].arg(2)), "main.cpp:10");
  EXPECT_EQ(g.string(g.events[0].arg(3)), "main");
  EXPECT_EQ(g.string(0), "");
  EXPECT_EQ(g.string(999), "<string 999?>");
}

TEST(trace_reader, streams_generation_by_generation) {
  tt::reader r;
  ASSERT_TRUE(r.open_bytes(demo_trace().bytes())) << r.error();
  tt::generation g;
  std::vector<std::uint64_t> numbers;
  while (r.next(g)) numbers.push_back(g.number);
  EXPECT_EQ(numbers, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(r.stopped(), tt::stop_reason::none);
  EXPECT_TRUE(r.error().empty());
  EXPECT_FALSE(r.next(g));
}

TEST(trace_reader, reads_a_pipe) {
  // /dev/stdin and process substitutions cannot seek: the reader reads them whole.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const std::string bytes = demo_trace().bytes();
  std::thread writer([&] {
    std::size_t at = 0;
    while (at < bytes.size()) {
      auto n = write(fds[1], bytes.data() + at, bytes.size() - at);
      if (n <= 0) break;
      at += static_cast<std::size_t>(n);
    }
    close(fds[1]);
  });
  auto f = tt::read_file("/proc/self/fd/" + std::to_string(fds[0]));
  writer.join();
  close(fds[0]);
  EXPECT_TRUE(f.opened) << f.error;
  EXPECT_EQ(f.stopped, tt::stop_reason::none) << f.error;
  EXPECT_EQ(f.generations.size(), 2u);
}

TEST(trace_reader, a_file_cut_at_every_offset_keeps_its_complete_generations) {
  const std::string whole = demo_trace().bytes();
  // Where each generation's 'E' frame ends: a cut at or after it keeps it.
  std::vector<std::size_t> gen_ends;
  std::size_t header_end = 0;
  {
    std::size_t at = 0;
    while (at + 5 <= whole.size()) {
      std::size_t len = static_cast<unsigned char>(whole[at + 1]) |
                        static_cast<unsigned char>(whole[at + 2]) << 8 |
                        static_cast<unsigned char>(whole[at + 3]) << 16 |
                        static_cast<std::size_t>(static_cast<unsigned char>(whole[at + 4])) << 24;
      if (whole[at] == 'H') header_end = at + 5 + len;
      if (whole[at] == 'E') gen_ends.push_back(at + 5 + len);
      at += 5 + len;
    }
    ASSERT_EQ(at, whole.size());
    ASSERT_EQ(gen_ends.size(), 2u);
  }
  for (std::size_t cut = 0; cut < whole.size(); ++cut) {
    auto f = tt::read_bytes(whole.substr(0, cut));
    std::size_t complete = 0;
    for (auto e : gen_ends) complete += cut >= e;
    ASSERT_EQ(f.generations.size(), complete) << "cut at " << cut;
    // A cut between generations looks like a shorter trace; anywhere else
    // the reader says where the file ends.
    bool boundary = cut == header_end || std::count(gen_ends.begin(), gen_ends.end(), cut);
    if (boundary) {
      ASSERT_EQ(f.stopped, tt::stop_reason::none) << "cut at " << cut << ": " << f.error;
      continue;
    }
    ASSERT_NE(f.stopped, tt::stop_reason::none) << "cut at " << cut;
    ASSERT_FALSE(f.error.empty());
    if (f.opened) {
      EXPECT_EQ(f.stopped, tt::stop_reason::truncated) << "cut at " << cut << ": " << f.error;
      // The model and every view of it survive any prefix.
      auto m = tt::build_model(f);
      EXPECT_FALSE(m.notes.empty());
    }
  }
  auto f = tt::read_bytes(whole);
  EXPECT_EQ(f.generations.size(), 2u);
  EXPECT_EQ(f.stopped, tt::stop_reason::none);
}

TEST(trace_reader, refuses_foreign_empty_and_newer_files_with_a_sentence) {
  auto empty = tt::read_bytes("");
  EXPECT_FALSE(empty.opened);
  EXPECT_EQ(empty.error, "the file is empty");

  auto foreign = tt::read_bytes(
      "\x7f"
      "ELF this is not a trace at all, just bytes");
  EXPECT_FALSE(foreign.opened);
  EXPECT_EQ(foreign.error, "not a taiga trace (no TAIGATRC header)");

  std::string bad_magic = demo_trace().bytes();
  bad_magic[5] = 'X';
  EXPECT_EQ(tt::read_bytes(bad_magic).error, "not a taiga trace (no TAIGATRC header)");

  taiga::test::trace_header h;
  h.version = tf::version + 1;
  auto newer = tt::read_bytes(demo_trace(h).bytes());
  EXPECT_FALSE(newer.opened);
  EXPECT_NE(newer.error.find("format version 2 is newer than this reader (version 1)"),
            std::string::npos)
      << newer.error;

  h.version = 0;
  EXPECT_NE(tt::read_bytes(demo_trace(h).bytes()).error.find("version 0"), std::string::npos);

  std::string cut_header = demo_trace().bytes().substr(0, 16);
  EXPECT_NE(tt::read_bytes(cut_header).error.find("ends inside its header"), std::string::npos);
}

TEST(trace_reader, a_damaged_frame_stops_with_its_offset_and_keeps_what_came_before) {
  trace_writer w;
  tasklet_script s(w);
  w.thread(1, tf::thread_kind::worker, 0, "w");
  s.spawn(1, 10, 1, 0, "a", "a");
  w.end_generation();
  std::string good = w.bytes();
  // An unknown event type in a version-1 file is damage, not something to skip.
  std::string batch;
  tf::append_varint(batch, 2);    // generation
  tf::append_varint(batch, 1);    // thread
  tf::append_varint(batch, 100);  // base
  tf::append_varint(batch, 1);    // count
  batch.push_back(static_cast<char>(tf::event_type_count));
  tf::append_varint(batch, 0);
  std::string bytes = good;
  tf::append_frame(bytes, tf::frame_kind::batch, batch);
  auto f = tt::read_bytes(bytes);
  EXPECT_EQ(f.stopped, tt::stop_reason::bad_file);
  EXPECT_EQ(f.generations.size(), 1u);
  EXPECT_NE(f.error.find("unknown event type " + std::to_string(tf::event_type_count) +
                         " for format version 1"),
            std::string::npos)
      << f.error;
  EXPECT_NE(f.error.find("at offset " + std::to_string(good.size())), std::string::npos) << f.error;

  // An event count larger than the bytes could hold is refused before any allocation.
  std::string huge;
  tf::append_varint(huge, 2);
  tf::append_varint(huge, 1);
  tf::append_varint(huge, 0);
  tf::append_varint(huge, 1ull << 60);
  bytes = good;
  tf::append_frame(bytes, tf::frame_kind::batch, huge);
  EXPECT_NE(tt::read_bytes(bytes).error.find("claims"), std::string::npos);

  // An unknown frame kind.
  bytes = good;
  tf::append_frame(bytes, static_cast<tf::frame_kind>('Q'), "x");
  EXPECT_NE(tt::read_bytes(bytes).error.find("unknown frame kind"), std::string::npos);
}

TEST(trace_reader, random_garbage_never_crashes) {
  std::mt19937_64 rng(20);
  const std::string good = demo_trace().bytes();
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = good;
    // Flip a few bytes after the header, or append noise.
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k)
      bytes[20 + rng() % (bytes.size() - 20)] = static_cast<char>(rng());
    if (i % 7 == 0)
      for (int k = 0; k < 64; ++k) bytes.push_back(static_cast<char>(rng()));
    auto f = tt::read_bytes(bytes);
    auto m = tt::build_model(f);
    EXPECT_LE(f.generations.size(), 2u + (i % 7 == 0 ? 20u : 0u));
  }
}

TEST(trace_model, replays_the_demo_trace) {
  auto m = tt::build_model(tt::read_bytes(demo_trace().bytes()));
  EXPECT_TRUE(m.violations.empty()) << m.violations[0].message;
  EXPECT_EQ(m.generations, 2u);
  EXPECT_EQ(m.spawned, 3u);
  EXPECT_EQ(m.finished, 3u);
  EXPECT_EQ(m.steals, 1u);
  EXPECT_EQ(m.start, 1000u);
  EXPECT_EQ(m.end, 20010000u);
  ASSERT_EQ(m.tasklets.size(), 3u);
  const auto& main = m.tasklets.at(1);
  EXPECT_EQ(m.str(main.name), "main");
  EXPECT_EQ(main.state, tt::tasklet_state::done);
  EXPECT_EQ(main.runs, 2u);
  EXPECT_EQ(main.run_time, 2000u + 20000000u);
  EXPECT_EQ(main.wait_time, 5000u);  // parked 4000 .. 9000
  const auto& consumer = m.tasklets.at(3);
  ASSERT_EQ(consumer.park_list.size(), 1u);
  const auto& p = m.parks[consumer.park_list[0]];
  EXPECT_EQ(p.reason, static_cast<std::uint8_t>(tf::park_reason::channel_receive));
  EXPECT_EQ(p.object, 0x2000u);
  EXPECT_EQ(m.str(p.site), "consumer.cpp:5");
  ASSERT_NE(p.wake, tt::no_index);
  EXPECT_EQ(m.wakes[p.wake].waker, 2u);
  EXPECT_EQ(m.wakes[p.wake].thread_worker, 1u);  // written on worker 0
  // The wake led to the consumer's second run, on worker 1.
  ASSERT_NE(m.wakes[p.wake].run, tt::no_index);
  EXPECT_EQ(m.slices[m.wakes[p.wake].run].worker, 1u);
  EXPECT_EQ(m.slices[m.wakes[p.wake].run].start, 7500u);
  const auto& producer = m.tasklets.at(2);
  EXPECT_EQ(producer.yields, 1u);
  EXPECT_EQ(producer.parent, 1u);
  // Ready -> running: 1000 (main), 1500 (producer), 1500 (consumer), 500
  // (consumer after its wake), 100 (producer after its yield), 500 (main).
  auto lat = m.ready_latency;
  std::sort(lat.begin(), lat.end());
  EXPECT_EQ(lat, (std::vector<std::uint64_t>{100, 500, 500, 1000, 1500, 1500}));
  // Worker 1 spun 8600..9000 and slept 9000..20000000.
  EXPECT_EQ(m.workers.at(1).spin, 400u);
  EXPECT_EQ(m.workers.at(1).idle, 20000000u - 9000u);
  EXPECT_EQ(m.workers.at(1).steals, 1u);
  EXPECT_EQ(m.workers.at(0).busy, 2000u + 3500u + 900u + 20000000u);
}

TEST(trace_model, orders_a_tasklets_events_by_seq_not_by_clock) {
  // The waker's clock reads earlier than the parker's: the unblock's
  // timestamp precedes the park's. Sequence numbers keep park before wake.
  trace_writer w;
  w.thread(1, tf::thread_kind::worker, 0, "w0");
  w.thread(2, tf::thread_kind::worker, 1, "w1");
  w.event(1, 100, tf::event::spawn, {5, 0, 0, 0, 0});
  w.event(1, 200, tf::event::run, {5, 0, 0, 1});
  w.event(1, 300, tf::event::park, {5, 1, 0x10, 0, 2});
  w.event(2, 290, tf::event::unblock, {5, 0, 0, 3});
  w.event(2, 400, tf::event::run, {5, 1, 1, 4});
  w.event(2, 500, tf::event::exit, {5, 0, 0, 5});
  w.end_generation();
  auto m = tt::build_model(tt::read_bytes(w.bytes()));
  EXPECT_TRUE(m.violations.empty()) << m.violations[0].message;
  EXPECT_EQ(m.tasklets.at(5).state, tt::tasklet_state::done);
  EXPECT_EQ(m.tasklets.at(5).wait_time, 0u);  // clamped, never negative
  EXPECT_EQ(m.migrations, 1u);                // ran on worker 0, then 1
}

TEST(trace_model, a_tasklet_first_seen_mid_trace_is_not_a_violation) {
  trace_writer w;
  w.thread(1, tf::thread_kind::worker, 0, "w0");
  // Spawned before the trace started: its first event is an unblock.
  w.event(1, 100, tf::event::unblock, {9, 0, 0, 40});
  w.event(1, 200, tf::event::run, {9, 0, 1, 41});
  w.end_generation();
  auto m = tt::build_model(tt::read_bytes(w.bytes()));
  EXPECT_TRUE(m.violations.empty());
  EXPECT_FALSE(m.tasklets.at(9).spawn_seen);
  EXPECT_EQ(m.tasklets.at(9).state, tt::tasklet_state::running);
  ASSERT_EQ(m.slices.size(), 1u);
  EXPECT_TRUE(m.slices[0].open);
}

TEST(trace_model, a_gap_in_generations_restarts_tasklet_states) {
  trace_writer w;
  tasklet_script s(w);
  w.thread(1, tf::thread_kind::worker, 0, "w0");
  s.spawn(1, 100, 1, 0, "", "");
  s.run(1, 200, 1, 0);
  s.park(1, 300, 1, tf::park_reason::sleep, 0, "");
  w.end_generation();
  w.skip_generations(2);  // generations 2 and 3 lost: the unblock was in them
  w.thread(1, tf::thread_kind::worker, 0, "w0");
  w.event(1, 5000, tf::event::run, {1, 0, 1, 10});
  w.end_generation();
  auto m = tt::build_model(tt::read_bytes(w.bytes()));
  EXPECT_TRUE(m.violations.empty()) << m.violations[0].message;
  ASSERT_FALSE(m.notes.empty());
  EXPECT_NE(m.notes[0].find("generations 2 to 3 are missing"), std::string::npos);
}

TEST(trace_model, counts_drops_once_from_either_report) {
  trace_writer w;
  w.thread(1, tf::thread_kind::worker, 0, "w0");
  w.event(1, 100, tf::event::dropped, {7});
  w.end_generation(7);
  w.thread(1, tf::thread_kind::worker, 0, "w0");
  w.event(1, 200, tf::event::dropped, {3});
  w.end_generation(0);
  auto m = tt::build_model(tt::read_bytes(w.bytes()));
  EXPECT_EQ(m.dropped, 10u);
}

// What a script does with the installed reader (quoted in docs/guide/tracing.md).
std::map<std::string, std::uint64_t> count_events(const std::string& path, std::string& problem) {
  std::map<std::string, std::uint64_t> counts;
  taiga::trace::reader r;
  if (!r.open(path)) {  // not a trace, or a newer format: r.error() says which
    problem = r.error();
    return counts;
  }
  taiga::trace::generation g;
  while (r.next(g))  // one complete generation at a time
    for (const auto& e : g.events) ++counts[taiga::trace_format::event_name(e.type)];
  if (r.stopped() != taiga::trace::stop_reason::none)
    problem = r.error();  // truncated or damaged: counts cover the complete generations
  return counts;
}

TEST(trace_reader, a_script_counts_events_by_type) {
  taiga::test::scratch_dir d;
  std::string problem;
  auto counts = count_events(d.write("demo.trace", demo_trace().bytes()), problem);
  EXPECT_EQ(problem, "");
  EXPECT_EQ(counts["run"], 6u);
  EXPECT_EQ(counts["spawn"], 3u);
  EXPECT_EQ(counts["worker_sleep"], 1u);
  std::string whole = demo_trace().bytes();
  counts = count_events(d.write("cut.trace", whole.substr(0, whole.size() - 3)), problem);
  EXPECT_EQ(counts["spawn"], 3u);  // all in the first generation
  EXPECT_NE(problem.find("cut short"), std::string::npos) << problem;
  counts = count_events(d.write("junk.trace", "junk"), problem);
  EXPECT_TRUE(counts.empty());
  EXPECT_EQ(problem, "not a taiga trace (no TAIGATRC header)");
}
