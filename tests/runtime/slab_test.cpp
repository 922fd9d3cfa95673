// The tasklet-block slab (runtime/src/slab.cpp): blocks are distinct,
// aligned and recycled, and a thread that allocates a few blocks of a few
// sizes does not claim whole 2 MiB chunks for them.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <taiga/runtime.hpp>

#include "slab.hpp"

namespace ti = taiga::internal;

namespace {

long resident_kib() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4;
}

TEST(slab, blocks_are_distinct_aligned_and_hold_their_bytes) {
  std::vector<std::pair<unsigned char*, std::size_t>> blocks;
  for (std::size_t size : {40u, 64u, 96u, 192u, 200u, 256u, 328u, 1000u, 1024u, 2048u, 4160u}) {
    for (int i = 0; i < 3000; ++i) {  // several spans of every class
      auto* p = static_cast<unsigned char*>(ti::slab_allocate(size));
      std::memset(p, static_cast<int>(size & 0xff), size);
      blocks.emplace_back(p, size);
    }
  }
  std::set<std::uintptr_t> starts;
  for (auto [p, size] : blocks) {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    // Aligned to the largest power of two dividing the size (a type's size
    // is a multiple of its alignment), and, in the slab, to its 32-byte
    // granule.
    std::size_t natural = size & (~size + 1);
    EXPECT_EQ(a % std::min<std::size_t>(natural, 4096), 0u) << size;
#ifndef TAIGA_TEST_SANITIZED
    EXPECT_EQ(a % 32, 0u) << size;
#endif
    EXPECT_TRUE(starts.insert(a).second);
    for (std::size_t i = 0; i < size; ++i)
      ASSERT_EQ(p[i], static_cast<unsigned char>(size & 0xff)) << "block overlaps another";
  }
  for (auto [p, size] : blocks) ti::slab_free(p, size);
}

TEST(slab, freed_blocks_are_reused) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new (use-after-free stays detectable)";
#endif
  void* a = ti::slab_allocate(256);
  ti::slab_free(a, 256);
  void* b = ti::slab_allocate(256);
  EXPECT_EQ(a, b);
  ti::slab_free(b, 256);
}

TEST(slab, a_thread_with_a_few_blocks_does_not_claim_whole_chunks) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new";
#endif
  // 16 threads x 4 size classes, a few blocks each, all alive at once. A
  // chunk per thread and class (the first design) populated 128 MiB here.
  constexpr int threads = 16;
  long before = resident_kib();
  std::vector<std::vector<std::pair<void*, std::size_t>>> held(threads);
  std::vector<std::thread> ts;
  // Nobody exits before all have allocated: an exiting thread hands its free
  // lists back, and the next one would just take them.
  std::latch all_allocated(threads);
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&held, &all_allocated, t] {
      for (std::size_t size : {64u, 320u, 576u, 960u})
        for (int i = 0; i < 4; ++i) held[t].emplace_back(ti::slab_allocate(size), size);
      all_allocated.arrive_and_wait();
    });
  }
  for (auto& t : ts) t.join();
  long grown_kib = resident_kib() - before;
  EXPECT_LT(grown_kib, 16 * 1024) << "RSS grew by " << grown_kib << " KiB";
  for (auto& h : held)
    for (auto [p, size] : h) ti::slab_free(p, size);
}

TEST(slab, a_new_chunk_is_resident_before_its_blocks_are_touched) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new";
#endif
  // A burst of spawns must not take a page fault per 4 KiB of blocks: each
  // chunk is resident as a whole before its blocks are used (populated as a
  // huge page or in 4 KiB pages; were the populate to fail, the chunk, marked
  // for huge pages either way, would take one fault for all of it where THP
  // is on). Allocate until blocks
  // have opened three chunks and, as each one opens, ask the kernel about
  // the half of it no span has been carved from. The size class is one no
  // other test here uses, so every block comes from a fresh span, not from
  // a free list.
  constexpr std::size_t size = 896;
  constexpr std::uintptr_t chunk = 2u << 20;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto chunk_of = [](void* p) { return reinterpret_cast<std::uintptr_t>(p) & ~(chunk - 1); };
  std::vector<void*> held;
  std::set<std::uintptr_t> seen;
  int opened = 0;
  for (int i = 0; i < 20000 && opened < 3; ++i) {
    void* p = ti::slab_allocate(size);
    held.push_back(p);
    std::uintptr_t c = chunk_of(p);
    if (!seen.insert(c).second || reinterpret_cast<std::uintptr_t>(p) - c >= (64u << 10)) continue;
    ++opened;
    std::vector<unsigned char> vec(chunk / 2 / page);
    ASSERT_EQ(::mincore(reinterpret_cast<void*>(c + chunk / 2), chunk / 2, vec.data()), 0);
    std::size_t resident = 0;
    for (unsigned char v : vec) resident += v & 1;
    EXPECT_EQ(resident, vec.size())
        << "chunk " << opened << ": untouched pages of a new chunk were not pre-faulted";
  }
  EXPECT_EQ(opened, 3) << "17 MiB of blocks did not open three chunks";
  for (void* p : held) ti::slab_free(p, size);
}

TEST(slab, a_burst_of_chunks_is_populated_ahead_off_the_allocating_thread) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new";
#endif
  // Allocate from a class no other test here uses until eight more chunks
  // have opened, pausing 20 ms at each (the filler needs ~1.3 ms to
  // populate one): from the third chunk the process has opened, chunks
  // come populated by the filler thread, not by this one. Each is resident
  // as a whole before its blocks are touched, whoever populated it.
  ti::slab_allow_filler();  // as a runtime with workers does when it starts
  constexpr std::size_t size = 864;
  constexpr std::uintptr_t chunk = 2u << 20;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const ti::slab_stats before = ti::slab_statistics();
  std::vector<void*> held;
  std::size_t opened = before.chunks;
  while (opened < before.chunks + 8 && held.size() < 100000) {
    void* p = ti::slab_allocate(size);
    held.push_back(p);
    ti::slab_stats now = ti::slab_statistics();
    if (now.chunks == opened) continue;
    opened = now.chunks;
    std::uintptr_t c = reinterpret_cast<std::uintptr_t>(p) & ~(chunk - 1);
    std::vector<unsigned char> vec(chunk / 2 / page);
    ASSERT_EQ(::mincore(reinterpret_cast<void*>(c + chunk / 2), chunk / 2, vec.data()), 0);
    std::size_t resident = 0;
    for (unsigned char v : vec) resident += v & 1;
    EXPECT_EQ(resident, vec.size()) << "chunk " << opened << " was not populated";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const ti::slab_stats after = ti::slab_statistics();
  EXPECT_EQ(after.chunks, before.chunks + 8);
  // The first two of the process's chunks, and perhaps one the filler was
  // still starting for, were populated here; the rest ahead.
  EXPECT_GE(after.chunks_ahead - before.chunks_ahead, 5u);
  EXPECT_LE(after.chunks_waiting, 2u);
  for (void* p : held) ti::slab_free(p, size);
}

// Whether this process has a thread named `name` (/proc/self/task/*/comm).
bool has_thread(const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::FILE* f = std::fopen((task.path() / "comm").c_str(), "r");
    if (f == nullptr) continue;
    char buf[32] = {};
    bool match = std::fgets(buf, sizeof buf, f) != nullptr && std::string(buf) == name + "\n";
    std::fclose(f);
    if (match) return true;
  }
  return false;
}

// A fork's child has no filler thread, whatever the parent's was doing: it
// must neither wait for a populate that never ends there nor go without
// one once it runs a runtime with workers (it starts its own).
TEST(slab, a_forked_child_starts_its_own_filler) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new";
#endif
  ti::slab_allow_filler();
  constexpr std::size_t size = 832;  // a class no other test here uses
  // Make sure the parent's filler runs: open chunks until it has one ahead.
  std::vector<void*> held;
  const std::size_t ahead_before = ti::slab_statistics().chunks_ahead;
  while (ti::slab_statistics().chunks_ahead == ahead_before && held.size() < 200000)
    held.push_back(ti::slab_allocate(size));
  ASSERT_GT(ti::slab_statistics().chunks_ahead, ahead_before);
  ASSERT_TRUE(has_thread("taiga-slab"));
  // Fork while the filler is refilling what the loop took.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::alarm(20);  // a hang ends the child with SIGALRM
    int code = 0;
    const ti::slab_stats before = ti::slab_statistics();
    if (before.chunks_waiting != 0) code |= 4;  // the parent's were dropped
    if (has_thread("taiga-slab")) code |= 8;
    ti::slab_allow_filler();  // as the child's first runtime with workers would
    std::vector<void*> mine;
    std::size_t opened = before.chunks;
    while (opened < before.chunks + 6) {
      mine.push_back(ti::slab_allocate(size));
      std::size_t now = ti::slab_statistics().chunks;
      if (now != opened) {
        opened = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    if (!has_thread("taiga-slab")) code |= 16;
    if (ti::slab_statistics().chunks_ahead - before.chunks_ahead < 2) code |= 32;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << WTERMSIG(status);
  if (WIFEXITED(status)) {
    // 4: inherited chunks kept; 8: a filler before the fork's; 16: no
    // filler of its own; 32: too few chunks populated ahead.
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  for (void* p : held) ti::slab_free(p, size);
}

// Embedded runtimes promise no threads: a process that only runs those gets
// no filler, however much it spawns. Checked in a fresh process (a death
// test's child runs only this statement), since other tests here start
// runtimes with workers.
TEST(slab, an_embedded_only_process_starts_no_filler) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        taiga::runtime rt(taiga::runtime_config{.workers = 0});
        std::vector<taiga::tasklet<int>> v;
        for (int i = 0; i < 100000; ++i) v.push_back(taiga::spawn(rt, [i] { return i; }));
        rt.run_until_idle();
        long sum = 0;
        for (auto& t : v) sum += t.join();
        ti::slab_stats st = ti::slab_statistics();
        auto threads = std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                     std::filesystem::directory_iterator());
        std::fprintf(stderr, "chunks %zu ahead %zu threads %ld sum %ld\n", st.chunks,
                     st.chunks_ahead, static_cast<long>(threads), sum);
        std::exit(st.chunks >= 4 && st.chunks_ahead == 0 && threads == 1 && sum == 4999950000L ? 0
                                                                                               : 1);
      },
      ::testing::ExitedWithCode(0), "threads 1");
}

// A fork before the parent's filler has started is handled like one after:
// the fork handlers are in place once a filler is allowed, so the child has
// none until it allows one itself. (Registered only when the filler started,
// they missed a fork that fell between `filler_started` and them, and that
// child never started a filler.) A fresh process: a death test's child.
TEST(slab, a_child_forked_before_the_filler_started_waits_for_its_own_runtime) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ti::slab_allow_filler();  // as a runtime with workers does
        const bool started_before = has_thread("taiga-slab");
        pid_t pid = ::fork();
        if (pid == 0) {
          ::alarm(20);
          constexpr std::size_t size = 832;
          std::vector<void*> mine;
          const std::size_t first = ti::slab_statistics().chunks;
          while (ti::slab_statistics().chunks < first + 4) mine.push_back(ti::slab_allocate(size));
          const bool without = !has_thread("taiga-slab");
          ti::slab_allow_filler();  // the child's own runtime with workers
          while (ti::slab_statistics().chunks < first + 8) mine.push_back(ti::slab_allocate(size));
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          const bool with = has_thread("taiga-slab");
          _exit((without ? 0 : 2) |
                (with ? 0 : 4));  // 2: a filler before its own runtime; 4: none after
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        std::fprintf(stderr, "started before %d child status %d\n", started_before ? 1 : 0,
                     WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status));
        std::exit(!started_before && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "started before 0 child status 0");
}

// chunk_policy, fed the costs our VMs show (ms per 2 MiB chunk): a huge page
// the host still backs ~0.55, 4 KiB pages ~1.3, a huge page after idle ~3.8.
TEST(slab, the_chunk_policy_measures_both_kinds_first) {
  ti::chunk_policy p;
  EXPECT_EQ(p.next(), ti::chunk_policy::small);
  p.record(ti::chunk_policy::small, 1.3);
  EXPECT_EQ(p.next(), ti::chunk_policy::huge);
  p.record(ti::chunk_policy::huge, 3.8);
  EXPECT_EQ(p.next(), ti::chunk_policy::small);
}

TEST(slab, the_chunk_policy_keeps_the_cheaper_kind_and_probes_the_other) {
  ti::chunk_policy p;
  // After idle: huge pages cost three times as much.
  ASSERT_EQ(p.next(), ti::chunk_policy::small);
  p.record(ti::chunk_policy::small, 1.3);
  ASSERT_EQ(p.next(), ti::chunk_policy::huge);
  p.record(ti::chunk_policy::huge, 3.8);
  std::vector<unsigned> probes;
  for (unsigned i = 3; i <= 3 * ti::chunk_policy::probe_every; ++i)
    if (p.next() == ti::chunk_policy::huge) probes.push_back(i);  // no new costs recorded
  EXPECT_EQ(probes, (std::vector<unsigned>{32, 64, 96})) << "chunks populated as huge pages";
}

TEST(slab, one_slow_populate_does_not_change_the_chunk_policy) {
  ti::chunk_policy p;
  p.record(ti::chunk_policy::small, 1.3);
  p.record(ti::chunk_policy::huge, 3.8);
  // A populate slowed by a preemption: the choice stays.
  p.record(ti::chunk_policy::small, 10.0);
  EXPECT_EQ(p.next(), ti::chunk_policy::small);
  // Two in a row: 4 KiB pages have really become dear.
  p.record(ti::chunk_policy::small, 10.0);
  EXPECT_EQ(p.next(), ti::chunk_policy::huge);
}

TEST(slab, the_chunk_policy_follows_the_hour_both_ways) {
  ti::chunk_policy p;
  p.record(ti::chunk_policy::small, 1.3);
  p.record(ti::chunk_policy::huge, 3.8);
  // A probe finds huge pages cheap again (something just freed some): huge
  // from the next chunk on.
  unsigned i = 0;
  while (p.next() != ti::chunk_policy::huge) ASSERT_LT(++i, ti::chunk_policy::probe_every);
  p.record(ti::chunk_policy::huge, 0.55);
  EXPECT_EQ(p.next(), ti::chunk_policy::huge);
  // They run out: two dear populates in a row, and the next chunk is small,
  // without waiting for a probe.
  p.record(ti::chunk_policy::huge, 3.8);
  p.record(ti::chunk_policy::huge, 3.8);
  EXPECT_EQ(p.next(), ti::chunk_policy::small);
  // Huge pages keep the preference until they cost a quarter more than small.
  p.record(ti::chunk_policy::huge, 1.6);
  p.record(ti::chunk_policy::huge, 1.6);
  EXPECT_EQ(p.next(), ti::chunk_policy::huge);
  p.record(ti::chunk_policy::huge, 1.7);
  p.record(ti::chunk_policy::huge, 1.7);
  EXPECT_EQ(p.next(), ti::chunk_policy::small);
}

TEST(slab, blocks_freed_by_another_thread_come_back_to_the_allocating_one) {
#ifdef TAIGA_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer builds use operator new";
#endif
  // A spawner on one worker and a finisher on another: the finisher's frees
  // must reach the spawner through the global lists, so the set of blocks
  // stays bounded instead of growing by a round's worth each round.
  constexpr int per_round = 5000, rounds = 40;
  std::set<void*> seen;
  for (int r = 0; r < rounds; ++r) {
    std::vector<void*> blocks;
    for (int i = 0; i < per_round; ++i) {
      void* p = ti::slab_allocate(192);
      std::memset(p, r & 0xff, 192);
      blocks.push_back(p);
      seen.insert(p);
    }
    std::thread([&blocks] {
      for (void* p : blocks) ti::slab_free(p, 192);
    }).join();  // the finisher exits: its lists go back too
  }
  EXPECT_LT(seen.size(), static_cast<std::size_t>(4 * per_round))
      << "blocks were not recycled across threads";
}

TEST(slab, random_frees_and_allocations_never_hand_out_a_held_block) {
  // A random walk of the number of held blocks across many batch sizes (the
  // thread's list is set aside, taken back and sent to the global list at
  // every boundary): no block is handed out twice, none is overwritten while
  // held, and the same few thousand blocks serve the whole walk.
  std::uint64_t rng = 0x9E3779B97F4A7C15ULL;
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  std::vector<std::pair<std::uint64_t*, std::uint64_t>> held;  // block, stamp
  std::set<void*> out, seen;
  std::size_t most = 0;
  for (std::uint64_t step = 1; step <= 200000; ++step) {
    // Drift up and down between 0 and ~15,000 held blocks.
    bool up = (step / 20000) % 2 == 0;
    bool grow = held.empty() || (up ? next() % 8 != 0 : next() % 8 == 0);
    if (grow) {
      auto* p = static_cast<std::uint64_t*>(ti::slab_allocate(320));
      ASSERT_TRUE(out.insert(p).second) << "a held block was handed out again";
      seen.insert(p);
      for (int i = 0; i < 40; ++i) p[i] = step;
      held.emplace_back(p, step);
      most = std::max(most, held.size());
    } else {
      std::size_t k = next() % held.size();
      auto [p, stamp] = held[k];
      held[k] = held.back();
      held.pop_back();
      for (int i = 0; i < 40; ++i) ASSERT_EQ(p[i], stamp) << "a held block was overwritten";
      out.erase(p);
      ti::slab_free(p, 320);
    }
  }
  for (auto [p, stamp] : held) ti::slab_free(p, 320);
#ifndef TAIGA_TEST_SANITIZED
  // What was held at the peak, plus what a thread keeps (a list and a batch
  // set aside) and one carved span.
  EXPECT_LE(seen.size(), most + 3 * 1024 + 256) << "freed blocks were not reused";
#endif
}

}  // namespace

namespace {

// Constructed before the thread's slab lists, so destroyed after them.
struct late_user {
  bool armed = false;
  void* got = nullptr;
  ~late_user() {
    if (!armed) return;
    void* p = ti::slab_allocate(256);
    std::memset(p, 0x5a, 256);
    ti::slab_free(p, 256);
    void* q = ti::slab_allocate(100);
    ti::slab_free(q, 100);
  }
};

TEST(slab, a_thread_local_destroyed_after_the_lists_can_still_allocate) {
  for (int round = 0; round < 4; ++round) {
    std::thread([] {
      thread_local late_user u;
      u.armed = true;
      void* p = ti::slab_allocate(256);  // creates the thread's lists, after u
      ti::slab_free(p, 256);
    }).join();
  }
  void* p = ti::slab_allocate(256);  // the global lists are still sound
  std::memset(p, 0, 256);
  ti::slab_free(p, 256);
}

}  // namespace
