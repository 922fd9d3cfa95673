// actor_spawn: N actors (default 1,000,000) spawned on every core, each
// then sent one message on which it ends, all joined. ns_per_actor = the
// whole / N; rss_per_actor = resident memory added while all N are alive
// (each has begun its behaviour and parks in receive with an empty
// mailbox) / N. The CAF 0.17 peer
// runs in a child process of its own (a fresh RSS baseline) when CAF was
// found: *_caf.
//
//   bench_actor_spawn [--count N] [--workers W]
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <taiga/channels.hpp>
#include <vector>

#include "bench_util.hpp"
#if defined(TAIGA_BENCH_HAVE_CAF)
#include "peers/caf_actors.hpp"
#endif

namespace tb = taiga_bench;

namespace {
long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}
}  // namespace

int main(int argc, char** argv) {
  tb::options o = tb::parse(argc, argv);
  const long n = o.count ? o.count : 1'000'000;
  const unsigned workers = o.workers ? o.workers : tb::all_cores();

#if defined(TAIGA_BENCH_HAVE_CAF)
  // First, in a child: the peer must not see taiga's memory.
  if (pid_t pid = fork(); pid == 0) {
    auto f = caf_peer::spawn(n, workers);
    tb::report("actor_spawn", "ns_per_actor_caf", f.ns_per_actor, "ns");
    tb::report("actor_spawn", "rss_per_actor_caf", f.rss_bytes_per_actor / 1024.0, "KiB");
    std::fflush(stdout);
    _exit(0);
  } else if (pid > 0) {
    int st = 0;
    waitpid(pid, &st, 0);
  }
#endif

  double ns = 0, rss = 0;
  long ended = 0;
  {
    taiga::runtime rt(taiga::runtime_config{.workers = workers});
    rt.run([&] {
      std::atomic<long> running{0};  // behaviours begun: each then parks in receive
      std::vector<taiga::actor_ref<int>> all;
      all.reserve(static_cast<std::size_t>(n));
      const long rss0 = rss_bytes();
      auto t0 = tb::clock_type::now();
      for (long i = 0; i < n; ++i) {
        all.push_back(taiga::spawn_actor(taiga::actor_options{.mailbox_capacity = 1},
                                         [&running](taiga::actor_self<int>& self) {
                                           running.fetch_add(1, std::memory_order_relaxed);
                                           (void)self.receive();
                                         }));
        if (i % 4096 == 0) taiga::this_tasklet::yield();
      }
      // Let every actor reach its receive, then count what they hold.
      while (running.load(std::memory_order_relaxed) < n)
        taiga::this_tasklet::sleep_for(std::chrono::milliseconds(1));
      for (int i = 0; i < 16; ++i) taiga::this_tasklet::yield();  // the last ones park
      rss = static_cast<double>(rss_bytes() - rss0) / static_cast<double>(n);
      for (auto& a : all) (void)a.tell(1);
      for (auto& a : all)
        if (a.join().kind == taiga::exit_kind::normal) ++ended;
      ns = tb::ns_since(t0) / static_cast<double>(n);
    });
  }
  if (ended != n) tb::fail("actor_spawn", std::to_string(n - ended) + " actors did not end well");
  tb::report("actor_spawn", "ns_per_actor", ns, "ns");
  tb::report("actor_spawn", "rss_per_actor", rss / 1024.0, "KiB");
  return 0;
}
