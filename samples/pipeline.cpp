// Fan-out / fan-in with channels, select and close.
//
// A source tasklet emits N jobs on `jobs` and closes it; K worker tasklets
// range-for over `jobs` (each job goes to exactly one of them), compute the
// Collatz stopping time of the job's number and send the result on
// `results`; once every worker has been joined, `results` is closed. A
// collector selects over `results` and a `done` channel, with a timeout,
// and checks that every job's result arrived exactly once and is right.
//
// Run twice: to completion, then cancelled: the collector closes `done`
// half way, and the source and the workers, which select their sends against
// `done`, stop early. Every tasklet ends by itself in both runs.
//
//   pipeline [--count N] [--workers K]   (defaults: 2,000 jobs, 4 workers)
#include <taiga/channels.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct result {
  int job;
  int steps;
  int worker;
};

int collatz_steps(std::int64_t n) {
  int steps = 0;
  for (; n != 1; ++steps) n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}

// A channel that carries no values: closing it is the signal.
struct none {};

struct outcome {
  std::vector<int> seen;  // seen[job]: how many results arrived for it
  int received = 0;
  int wrong = 0;
  bool timed_out = false;
};

outcome run_pipeline(int n, int k, bool cancel) {
  // [doc:setup]
  taiga::channel<int> jobs(16);        // buffered: the source runs ahead a little
  taiga::channel<result> results(16);  // fan-in from the workers
  taiga::channel<none> done;           // closed by the collector to cancel
  // [/doc]

  // [doc:source]
  auto source = taiga::spawn([=]() mutable {
    for (int j = 0; j < n; ++j) {
      bool stop = false;
      taiga::select(taiga::on_send(jobs, j), taiga::on_receive(done, [&] { stop = true; }));
      if (stop) break;
    }
    jobs.close();  // the workers' range-for loops end once the rest is drained
  });
  // [/doc]

  // [doc:workers]
  std::vector<taiga::tasklet<void>> workers;
  for (int w = 0; w < k; ++w)
    workers.push_back(taiga::spawn([=]() mutable {
      for (int j : jobs) {  // until `jobs` is closed and drained
        result r{j, collatz_steps(j + 1), w};
        bool stop = false;
        taiga::select(taiga::on_send(results, r), taiga::on_receive(done, [&] { stop = true; }));
        if (stop) return;
      }
    }));
  // Closes `results` once no worker can send on it any more.
  auto closer = taiga::spawn([&workers, results]() mutable {
    for (auto& t : workers) t.join();
    results.close();
  });
  // [/doc]

  // [doc:collector]
  outcome out;
  out.seen.assign(static_cast<std::size_t>(n), 0);
  bool open = true;
  while (open) {
    std::size_t i =
        taiga::select_for(2s,
                          taiga::on_receive(results,
                                            [&](std::optional<result> r) {
                                              if (!r) {  // closed and drained: every worker is done
                                                open = false;
                                                return;
                                              }
                                              ++out.seen[static_cast<std::size_t>(r->job)];
                                              ++out.received;
                                              if (r->steps != collatz_steps(r->job + 1))
                                                ++out.wrong;
                                              if (cancel && out.received == n / 2) done.close();
                                            }),
                          taiga::on_receive(done, [&] { open = false; }));
    if (i == taiga::select_timeout) {
      out.timed_out = true;
      done.close();
      break;
    }
  }
  // [/doc]

  closer.join();  // joins the workers
  source.join();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 2000;
  int k = 4;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 < argc && std::strcmp(argv[i], "--count") == 0) {
      n = std::atoi(argv[++i]);
    } else if (i + 1 < argc && std::strcmp(argv[i], "--workers") == 0) {
      k = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--count N] [--workers K]\n", argv[0]);
      return 2;
    }
  }
  if (n < 2 || k < 1) {
    std::fprintf(stderr, "pipeline: need --count >= 2 and --workers >= 1\n");
    return 2;
  }

  taiga::runtime rt;
  auto [full, cancelled] = rt.run([n, k] {
    outcome a = run_pipeline(n, k, false);
    outcome b = run_pipeline(n, k, true);
    return std::pair{std::move(a), std::move(b)};
  });
  // Tasklets that just finished may still be handing their stacks back on
  // their worker: give them a moment, then none may be left.
  for (int i = 0; i < 500 && rt.report().live_tasklets != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  taiga::runtime_report rep = rt.report();
  rt.shutdown();

  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::fprintf(stderr, "pipeline: FAILED: %s\n", what.c_str());
      ++failures;
    }
  };
  int missing = 0, duplicated = 0;
  for (int c : full.seen) {
    missing += c == 0;
    duplicated += c > 1;
  }
  check(!full.timed_out, "full run stalled (no result for 2 s)");
  check(full.received == n,
        "full run: " + std::to_string(full.received) + " results of " + std::to_string(n));
  check(missing == 0 && duplicated == 0, "full run: " + std::to_string(missing) + " missing, " +
                                             std::to_string(duplicated) + " duplicated");
  check(full.wrong == 0, "full run: " + std::to_string(full.wrong) + " wrong results");

  int dup_cancelled = 0;
  for (int c : cancelled.seen) dup_cancelled += c > 1;
  check(!cancelled.timed_out, "cancelled run stalled");
  check(cancelled.received >= n / 2 && cancelled.received <= n,
        "cancelled run: " + std::to_string(cancelled.received) + " results");
  check(dup_cancelled == 0 && cancelled.wrong == 0, "cancelled run: duplicated or wrong results");
  check(rep.live_tasklets == 0, std::to_string(rep.live_tasklets) + " tasklets left alive");

  std::printf("%d jobs on %d workers: %d results, each exactly once\n", n, k, full.received);
  std::printf("cancelled half way: %d results before the workers stopped\n", cancelled.received);
  return failures == 0 ? 0 : 1;
}
