// mutex: tasklets contending for one taiga::mutex, each taking it, bumping a
// shared counter and releasing it. Reports the average cost of one
// lock/unlock pair under contention (`ns_per_lock`), at all workers and at
// one worker (`ns_per_lock_1w`, where a waiter parks and the unlocker hands
// the mutex over).
//
//   bench_mutex [--workers N] [--count N]   (default: 8 tasklets x 200,000)
#include <taiga/channels.hpp>

#include <cstdint>
#include <mutex>
#include <vector>

#include "bench_util.hpp"

namespace tb = taiga_bench;

namespace {

double run(unsigned workers, long per) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  return rt.run([per] {
    taiga::mutex mu;
    std::int64_t counter = 0;
    const int tasklets = 8;
    auto t0 = tb::clock_type::now();
    std::vector<taiga::tasklet<void>> ts;
    for (int k = 0; k < tasklets; ++k)
      ts.push_back(taiga::spawn([&] {
        for (long i = 0; i < per; ++i) {
          std::lock_guard lk(mu);
          ++counter;
          if (i % 64 == 0) taiga::this_tasklet::yield();  // keep the others contending
        }
      }));
    for (auto& t : ts) t.join();
    double ns = tb::ns_since(t0);
    if (counter != tasklets * per) tb::fail("mutex", "lost increments");
    return ns / static_cast<double>(tasklets * per);
  });
}

}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  long per = o.count ? static_cast<long>(o.count) : 200'000;
  unsigned workers = o.workers_given ? o.workers : taiga::all_cores;
  tb::report("mutex", "ns_per_lock", run(workers, per), "ns");
  tb::report("mutex", "ns_per_lock_1w", run(1, per), "ns");
  return 0;
}
