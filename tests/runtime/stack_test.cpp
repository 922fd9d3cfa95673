// Stacks: pooling and recycling, guard pages, the overflow message, and a
// million parked tasklets within the memory target.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

#include "runtime_fixture.hpp"
#include "stack_pool.hpp"

// From context.hpp, which only the runtime's own (sanitizer-flagged) targets
// may include: the context running on this thread.
namespace taiga::internal {
detail::exec_context* running_context() noexcept;
}

using namespace std::chrono_literals;

namespace {

volatile int g_limit = 1 << 30;  // opaque: the recursion is bounded only in theory

[[gnu::noinline]] int recurse(int depth, volatile char* prev) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (prev) frame[1] = prev[0];
  if (depth > g_limit) return 0;
  return recurse(depth + 1, frame) + frame[0];
}

#if defined(TAIGA_TEST_SANITIZED)
constexpr const char* overflow_pattern = "stack-overflow|stack overflow";
#else
constexpr const char* overflow_pattern =
    "stack overflow in tasklet #[0-9]+ 'deep-diver' \\(spawned at .*stack_test.cpp:[0-9]+\\)"
    "(.|\n)*bigger stack";
#endif

// Runs `fn` as the one tasklet (spawned with `opts`) of a one-worker runtime
// and returns what its join returns.
template <class F>
auto run_one(taiga::spawn_options opts, F fn) {
  return taiga::run([&] { return taiga::spawn(opts, std::move(fn)).join(); },
                    taiga::runtime_config{.workers = 1});
}

// Writes over the canary below the running tasklet's stack,
// as an overflow would, without crashing first. Exits with status 5 where
// the stack has no canary (the death test then fails on its message).
void overwrite_own_canary() {
  auto* f = taiga::detail::current_tasklet()->frame.load();
  if (!f->ctx.canary) std::_Exit(5);
  auto* canary = const_cast<void*>(taiga::internal::stack_pool::canary_at(f->ctx.stack_lo));
  *static_cast<std::uint64_t*>(canary) = 0x5a5a5a5a5a5a5a5aULL;  // kept zero
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

}  // namespace

TEST(stacks, guard_mode_is_reported) {
  auto m = taiga::runtime::stack_guard();
  EXPECT_NE(m, taiga::stack_guard_mode::none);
  if (std::getenv("TAIGA_STACK_GUARD") == nullptr) {
    std::printf("stack guard mode: %s\n", taiga::to_string(m));
    // Linux 6.13+ (our CI kernels) installs guards without extra mappings.
    utsname u{};
    int major = 0, minor = 0;
    if (uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
        (major > 6 || (major == 6 && minor >= 13))) {
      EXPECT_EQ(m, taiga::stack_guard_mode::madvise) << "kernel " << u.release;
    }
  }
}

// When the mprotect budget runs out (half of vm.max_map_count, or what the
// test sets), new stacks fall back to canaries: stack_guard() says so, the
// process is told once on stderr, and the canary still catches an overflow.
TEST(stacks, a_spent_mprotect_budget_falls_back_to_canaries_and_says_so) {
#if defined(TAIGA_TEST_SANITIZED)
  GTEST_SKIP() << "ASan reports overflows itself";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("TAIGA_STACK_GUARD", "mprotect", 1);
  setenv("TAIGA_STACK_GUARD_MPROTECT_BUDGET", "8", 1);
  EXPECT_DEATH(
      {
        auto& pool = taiga::internal::stack_pool::instance();
        if (taiga::runtime::stack_guard() != taiga::stack_guard_mode::mprotect) std::_Exit(3);
        taiga::run(
            [&] {
              taiga::spawn([] {}).join();  // carves a region: 8 guarded stacks, the rest canaries
              auto st = pool.stats();
              if (taiga::runtime::stack_guard() != taiga::stack_guard_mode::canary ||
                  st.mprotect_guards != 8 || st.canary_guards == 0)
                std::_Exit(4);
              std::fprintf(stderr, "fell back: %zu mprotect, %zu canary\n", st.mprotect_guards,
                           st.canary_guards);
              // Deeper than the 8 guarded stacks: one of the canary ones.
              std::vector<taiga::tasklet<void>> parked;
              for (int i = 0; i < 16; ++i)
                parked.push_back(taiga::spawn([] { taiga::this_tasklet::sleep_for(1h); }));
              taiga::spawn(taiga::spawn_options{.name = "past-the-budget"}, [] {
                overwrite_own_canary();
                taiga::this_tasklet::yield();
              }).join();
            },
            taiga::runtime_config{.workers = 1});
      },
      "taiga: stack guards: the mprotect guard budget .* is spent; stacks carved from now on are "
      "guarded by a canary(.|\n)*fell back: 8 mprotect, [0-9]+ canary(.|\n)*stack overflow in "
      "tasklet #[0-9]+ 'past-the-budget'(.|\n)*canary below its stack");
  unsetenv("TAIGA_STACK_GUARD_MPROTECT_BUDGET");
  unsetenv("TAIGA_STACK_GUARD");
}

// A canary overwritten by a tasklet (or fiber) that then ends without
// switching again is caught at its last switch, before its stack is reused.
TEST(stacks, a_canary_overwritten_before_the_end_is_caught_at_the_exit) {
#if defined(TAIGA_TEST_SANITIZED)
  GTEST_SKIP() << "ASan reports overflows itself";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("TAIGA_STACK_GUARD", "canary", 1);
  EXPECT_DEATH(
      run_one(taiga::spawn_options{.name = "ends-at-once"}, [] { overwrite_own_canary(); }),
      "stack overflow in tasklet #[0-9]+ 'ends-at-once'(.|\n)*canary below its stack");
  EXPECT_DEATH(
      run_one(taiga::spawn_options{.name = "host"},
              [] {
                taiga::fiber f([] {
                  taiga::detail::exec_context* self = taiga::internal::running_context();
                  if (!self->canary) std::_Exit(5);
                  auto* canary =
                      const_cast<void*>(taiga::internal::stack_pool::canary_at(self->stack_lo));
                  static_cast<std::uint64_t*>(canary)[7] = 1;
                });
                f.switch_to();
              }),
      "stack overflow in a fiber inside tasklet #[0-9]+ 'host'(.|\n)*canary below its stack");
  unsetenv("TAIGA_STACK_GUARD");
}

TEST(stacks, overflow_in_a_tasklet_dies_with_a_clear_message) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(run_one(taiga::spawn_options{.name = "deep-diver", .stack_size = 32 * 1024},
                       [] { return recurse(0, nullptr); }),
               overflow_pattern);
}

TEST(stacks, overflow_with_mprotect_guards) {
#if defined(TAIGA_TEST_SANITIZED)
  GTEST_SKIP() << "ASan reports overflows itself";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("TAIGA_STACK_GUARD", "mprotect", 1);
  EXPECT_DEATH(
      {
        // Not the madvise guard under another name: the override took.
        if (taiga::runtime::stack_guard() != taiga::stack_guard_mode::mprotect) std::_Exit(3);
        run_one({}, [] { return recurse(0, nullptr); });
      },
      "stack overflow(.|\n)*guard page was hit");
  unsetenv("TAIGA_STACK_GUARD");
}

TEST(stacks, overflow_with_canary_is_caught_at_the_next_switch) {
#if defined(TAIGA_TEST_SANITIZED)
  GTEST_SKIP() << "ASan reports overflows itself";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("TAIGA_STACK_GUARD", "canary", 1);
  EXPECT_DEATH(
      {
        run_one(taiga::spawn_options{.name = "scribbler"}, [] {
          overwrite_own_canary();
          taiga::this_tasklet::yield();
        });
      },
      "stack overflow in tasklet #[0-9]+ 'scribbler'(.|\n)*canary");
  unsetenv("TAIGA_STACK_GUARD");
}

TEST(stacks, fiber_overflow_is_caught_too) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        taiga::fiber f([] { recurse(0, nullptr); }, 32 * 1024);
        f.switch_to();
      },
      "stack overflow|stack-overflow");
}

TEST(stacks, per_spawn_stack_size_is_honoured) {
  // 256 KiB of locals would overflow the default 128 KiB stack; they fit in 512 KiB.
  // The guide quotes this one (getting-started.md): public API only.
  int v = taiga::run(
      [] {
        return taiga::spawn(taiga::spawn_options{.stack_size = 512 * 1024},
                            [] {
                              volatile char big[256 * 1024];
                              big[0] = 1;
                              big[sizeof big - 1] = 2;
                              return big[0] + big[sizeof big - 1];
                            })
            .join();
      },
      taiga::runtime_config{.workers = 1});
  EXPECT_EQ(v, 3);
}

// A million tasklets parked in sleep_until, then killed and joined: what
// the peak RSS grew by per tasklet, the process's mapping count while all
// were parked, and how many joins reported the kill.
struct million_parked {
  double bytes_each = 0;
  long maps = 0;
  long killed = 0;
};

static million_parked park_a_million() {
  const long n = 1'000'000;
  const long base = peak_rss_kib();
  std::atomic<long> parked{0};
  long peak = 0;
  million_parked r;
  taiga::run(
      [&] {
        std::vector<taiga::tasklet<void>> ts;
        ts.reserve(n);
        auto far = std::chrono::steady_clock::now() + 1h;
        for (long i = 0; i < n; ++i)
          ts.push_back(taiga::spawn([&parked, far] {
            parked.fetch_add(1, std::memory_order_relaxed);
            taiga::this_tasklet::sleep_until(far);
          }));
        while (parked.load() < n) taiga::this_tasklet::sleep_for(1ms);
        peak = peak_rss_kib();
        if (FILE* f = std::fopen("/proc/self/maps", "r")) {
          for (int c; (c = std::fgetc(f)) != EOF;) r.maps += c == '\n';
          std::fclose(f);
        }
        for (auto& t : ts) t.kill();
        for (auto& t : ts) {
          try {
            t.join();
          } catch (const taiga::tasklet_killed&) {
            ++r.killed;
          }
        }
      },
      taiga::runtime_config{.workers = 2});
  r.bytes_each = (peak - base) * 1024.0 / n;
  return r;
}

TEST(stacks, a_million_parked_tasklets_fit_the_memory_target) {
#if defined(TAIGA_TEST_SANITIZED)
  GTEST_SKIP() << "sanitizer shadow memory makes RSS meaningless";
#endif
  million_parked r = park_a_million();
  std::printf("1,000,000 parked tasklets: %.0f bytes each\n", r.bytes_each);
  EXPECT_LT(r.bytes_each, 4608.0);
  EXPECT_EQ(r.killed, 1'000'000);
}

// The child of the test below: exits 0 when a million parked tasklets fit
// the mapping limit and the memory target.
[[noreturn]] static void park_a_million_with_mprotect_guards() {
  long max_maps = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    std::fclose(f);
  }
  if (taiga::runtime::stack_guard() != taiga::stack_guard_mode::mprotect) std::_Exit(3);
  million_parked r = park_a_million();
  auto st = taiga::internal::stack_pool::instance().stats();
  std::fprintf(stderr, "%.0f B each, %ld mappings of %ld, %zu mprotect + %zu canary, %s\n",
               r.bytes_each, r.maps, max_maps, st.mprotect_guards, st.canary_guards,
               taiga::to_string(taiga::runtime::stack_guard()));
  const bool ok =
      r.bytes_each < 4608.0 && r.killed == 1'000'000 && r.maps < max_maps &&
      st.mprotect_guards > 0 && st.mprotect_guards + st.canary_guards >= 1'000'000 &&
      (max_maps >= 4'000'000 || taiga::runtime::stack_guard() == taiga::stack_guard_mode::canary);
  std::_Exit(ok ? 0 : 5);
}

// The older-kernel path of the same promise: without MADV_GUARD_INSTALL the
// pool guards stacks with mprotect while about half of vm.max_map_count
// lasts, then with canaries. A million parked tasklets must still fit the
// mapping limit and the memory target, and say which guards they got. In a
// child: the guard mode is the process's.
TEST(stacks, a_million_parked_tasklets_fit_a_stock_kernel_without_guard_madvise) {
#if defined(TAIGA_TEST_SANITIZED)
  GTEST_SKIP() << "sanitizer shadow memory makes RSS meaningless";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("TAIGA_STACK_GUARD", "mprotect", 1);
  unsetenv("TAIGA_STACK_GUARD_MPROTECT_BUDGET");  // the default budget
  EXPECT_EXIT(park_a_million_with_mprotect_guards(), ::testing::ExitedWithCode(0),
              "B each, [0-9]+ mappings of [0-9]+, [0-9]+ mprotect");
  unsetenv("TAIGA_STACK_GUARD");  // later death tests re-execute this binary
}

// The outstanding count is kept per thread (no shared counter on the spawn
// path); a stack allocated on one thread and released on another, and
// threads that exit with a negative count, must still add up.
TEST(stacks, outstanding_count_adds_up_across_threads) {
  auto& pool = taiga::internal::stack_pool::instance();
  auto before = pool.stats().outstanding;
  taiga::internal::stack s{};
  std::thread([&] { s = pool.allocate(64 * 1024); }).join();  // +1, thread gone
  EXPECT_EQ(pool.stats().outstanding, before + 1);
  taiga::internal::stack t = pool.allocate(64 * 1024);
  EXPECT_EQ(pool.stats().outstanding, before + 2);
  std::thread([&] { pool.release(s); }).join();  // -1 on a thread that exits
  EXPECT_EQ(pool.stats().outstanding, before + 1);
  pool.release(t);
  EXPECT_EQ(pool.stats().outstanding, before);
}

// Each worker keeps the stack of its last exited tasklet for the next one
// (worker::spare); a stopped runtime, even one kept alive, holds none.
TEST(stacks, worker_spares_are_returned_at_shutdown) {
  auto& pool = taiga::internal::stack_pool::instance();
  auto before = pool.stats().outstanding;
  for (unsigned workers : {1u, 2u}) {
    taiga::runtime rt(taiga::runtime_config{.workers = workers});
    rt.run([] {
      for (int i = 0; i < 1000; ++i) taiga::spawn([] {}).join();
    });
    rt.shutdown();
    EXPECT_EQ(pool.stats().outstanding, before) << workers << " worker(s)";
  }
}

// A thread_local touched before the thread's stack cache is destroyed after
// it; a stack it releases then must still be counted and kept.
struct late_stack_holder {
  taiga::internal::stack s{};
  ~late_stack_holder() {
    if (s.base != nullptr) taiga::internal::stack_pool::instance().release(s);
  }
};

TEST(stacks, a_stack_released_after_the_thread_cache_is_gone_is_kept) {
  auto& pool = taiga::internal::stack_pool::instance();
  auto before = pool.stats().outstanding;
  std::thread([&] {
    thread_local late_stack_holder h;
    h.s = pool.allocate(64 * 1024);  // builds the cache after h
    EXPECT_EQ(pool.stats().outstanding, before + 1);
  }).join();
  EXPECT_EQ(pool.stats().outstanding, before);
  auto again = pool.allocate(64 * 1024);  // the pool is still sound
  again.lo()[again.usable() - 1] = 1;
  pool.release(again);
  EXPECT_EQ(pool.stats().outstanding, before);
}

TEST(stacks, pool_recycles_warm_stacks_and_trims_them) {
  auto& pool = taiga::internal::stack_pool::instance();
  auto before = pool.stats().outstanding;
  auto a = pool.allocate(100 * 1024);
  EXPECT_GE(a.usable(), 100u * 1024);
  EXPECT_EQ(pool.stats().outstanding, before + 1);
  a.lo()[a.usable() - 1] = 1;  // the top of the stack is writable
  char* base = a.base;
  pool.release(a);
  auto b = pool.allocate(100 * 1024);
  EXPECT_EQ(b.base, base) << "a freed stack is reused warm (LIFO)";
  pool.release(b);
  EXPECT_EQ(pool.stats().outstanding, before);
  // Trimming gives the pages back to the OS: the page written above is no
  // longer resident, and the stack now counts as cold.
  auto resident = [&](char* p) {
    unsigned char v = 0;
    char* page = reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(p) &
                                         ~(static_cast<std::uintptr_t>(getpagesize()) - 1));
    EXPECT_EQ(mincore(page, 1, &v), 0);
    return (v & 1) != 0;
  };
  EXPECT_TRUE(resident(base + b.total - 1));
  auto cold_before = pool.stats().cold;
  auto warm_before = pool.stats().warm;
  pool.trim(0);
  EXPECT_EQ(pool.stats().warm, 0u);
  EXPECT_GE(pool.stats().cold, cold_before + warm_before);
  EXPECT_FALSE(resident(base + b.total - 1)) << "trim must release the pages";
}

// The runtime's sysmon gives free stacks beyond keep_warm back to the OS
// about once a second, without anyone calling trim().
TEST(stacks, the_sysmon_gives_idle_stacks_back) {
  auto& pool = taiga::internal::stack_pool::instance();
  pool.set_keep_warm(0);
  struct restore {
    taiga::internal::stack_pool& p;
    ~restore() { p.set_keep_warm(8192); }
  } r{pool};
  taiga::runtime rt(taiga::runtime_config{.workers = 1});
  rt.run([] {
    std::vector<taiga::tasklet<void>> ts;
    for (int i = 0; i < 200; ++i)
      ts.push_back(taiga::spawn([] { taiga::this_tasklet::sleep_for(1ms); }));
    for (auto& t : ts) t.join();
  });
  // 200 stacks were freed on the worker: its cache keeps 64, the rest went
  // to the pool's warm list.
  auto cold_before = pool.stats().cold;
  EXPECT_GT(pool.stats().warm, 0u);
  // A batch being advised away is on neither list for a moment (trim_class
  // takes it off the warm list, then madvises it, then lists it cold): wait
  // for both ends.
  auto settled = [&] {
    auto st = pool.stats();
    return st.warm == 0 && st.cold > cold_before;
  };
  for (int i = 0; i < 500 && !settled(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(pool.stats().warm, 0u);
  EXPECT_GT(pool.stats().cold, cold_before);
}

// process_madvise stops at the first range it fails on and reports the
// bytes it did: the ranges after it must still be advised, one by one, and
// the failure reported.
TEST(stacks, batched_madvise_goes_on_past_a_failing_range) {
  const std::size_t pg = static_cast<std::size_t>(getpagesize());
  auto* mem = static_cast<char*>(
      mmap(nullptr, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  // A page that cannot be populated in the middle (PROT_NONE, not a hole
  // that another thread's mmap could fill).
  ASSERT_EQ(mprotect(mem + pg, pg, PROT_NONE), 0);
  std::vector<iovec> ranges{{mem, pg}, {mem + pg, pg}, {mem + 2 * pg, pg}};
  EXPECT_FALSE(taiga::internal::madvise_many(ranges, 23 /* MADV_POPULATE_WRITE */));
  for (char* p : {mem, mem + 2 * pg}) {
    unsigned char v = 0;
    ASSERT_EQ(mincore(p, pg, &v), 0);
    EXPECT_TRUE(v & 1) << "range at +" << (p - mem) << " was not advised";
  }
  munmap(mem, 3 * pg);
}
