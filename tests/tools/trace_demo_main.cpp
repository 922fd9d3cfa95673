// taiga-trace-demo: writes the traces the tests use to files, for the CTests
// that run taiga-trace as a program (the HTML page in headless Chromium) and
// as the fuzzer's seed corpus.
//
//   taiga-trace-demo demo FILE          the two-worker demo trace
//   taiga-trace-demo big FILE N         N run slices over 4 workers, 5 generations
//   taiga-trace-demo corpus DIR         a few small traces, one per file
#include <cstdlib>
#include <iostream>
#include <string>

#include "trace_writer.hpp"

namespace tf = taiga::trace_format;
using taiga::test::tasklet_script;
using taiga::test::trace_writer;

namespace {

// Tasklets that run, park on channels and wake each other round-robin over
// four workers: enough slices that the page draws its level of detail.
trace_writer big_trace(std::uint64_t slices) {
  trace_writer w;
  w.batch_size = 512;
  tasklet_script s(w);
  constexpr std::uint64_t workers = 4, tasklets = 64;
  auto threads = [&] {
    for (std::uint64_t i = 0; i < workers; ++i)
      w.thread(i + 1, tf::thread_kind::worker, i, "worker " + std::to_string(i));
  };
  threads();
  std::uint64_t t = 1000;
  for (std::uint64_t id = 1; id <= tasklets; ++id)
    s.spawn(1, t++, id, 0, "big.cpp:" + std::to_string(id % 5), "task " + std::to_string(id));
  const std::uint64_t per_generation = slices / 5 + 1;
  for (std::uint64_t n = 0; n < slices; ++n) {
    std::uint64_t id = 1 + n % tasklets, worker = n % workers;
    std::uint64_t start = t + (n / workers) * 2000 + worker * 100;
    std::uint64_t len = 300 + (n * 7919) % 1500;
    s.run(worker + 1, start, id, worker);
    if (n + tasklets < slices) {
      s.park(worker + 1, start + len, id, tf::park_reason::channel_receive, 0x1000 + (id % 8) * 64,
             "wait.cpp:" + std::to_string(id % 3));
      // The next tasklet on this worker wakes it; it runs again a round later.
      s.unblock(worker + 1, start + len + 10, id, 1 + (n + 1) % tasklets);
    } else {
      s.exit(worker + 1, start + len, id);
    }
    if (n % per_generation == per_generation - 1) {
      w.end_generation();
      threads();
    }
  }
  w.end_generation();
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "demo" && argc == 3) {
    taiga::test::demo_trace().save(argv[2]);
  } else if (mode == "big" && argc == 4) {
    big_trace(std::strtoull(argv[3], nullptr, 10)).save(argv[2]);
  } else if (mode == "corpus" && argc == 3) {
    std::string dir = argv[2];
    taiga::test::demo_trace().save(dir + "/demo.trace");
    taiga::test::trace_header h;
    h.build_id = "0123abcd";
    h.exe_path = "/nonexistent/app";
    taiga::test::demo_trace(h).save(dir + "/demo-build-id.trace");
    big_trace(200).save(dir + "/small-big.trace");
    trace_writer w;
    w.thread(1, tf::thread_kind::worker, 0, "w");
    for (std::uint8_t type = 1; type < tf::event_type_count; ++type) {
      switch (tf::event_arg_count[type]) {
        case 1:
          w.event(1, type * 10, static_cast<tf::event>(type), {1});
          break;
        case 2:
          w.event(1, type * 10, static_cast<tf::event>(type), {1, 2});
          break;
        case 3:
          w.event(1, type * 10, static_cast<tf::event>(type), {1, 2, 3});
          break;
        case 4:
          w.event(1, type * 10, static_cast<tf::event>(type), {1, 2, 3, 4});
          break;
        case 5:
          w.event(1, type * 10, static_cast<tf::event>(type), {1, 2, 3, 4, 5});
          break;
        default:
          break;
      }
    }
    w.end_generation(3);
    w.save(dir + "/every-event.trace");
  } else {
    std::cerr << "usage: taiga-trace-demo demo FILE | big FILE N | corpus DIR\n";
    return 2;
  }
  return 0;
}
