// Stress: a million tasklets with random yields, sleeps and spawns, from
// inside tasklets and from outside threads; every one runs exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

#include "runtime_fixture.hpp"

using namespace std::chrono_literals;
using taiga::test::scaled;
using taiga::test::with_workers;

namespace {

struct ledger {
  explicit ledger(std::size_t n) : hits(n) {}
  std::vector<std::atomic<std::uint8_t>> hits;
  std::atomic<long> done{0};
  void hit(std::size_t i) {
    hits[i].fetch_add(1, std::memory_order_relaxed);
    // Release: the waiting thread's acquire load of `done` must order every
    // access this tasklet made to the ledger (which lives on that thread's
    // stack) before the ledger's frame is reused; TSan flagged the relaxed
    // version once runtime_report grew into the same stack slot.
    done.fetch_add(1, std::memory_order_release);
  }
};

// Tasklet i does a random mix of yields and short sleeps, and may spawn the
// tasklets i*2+1 and i*2+2 of an implicit binary tree (detached).
void body(ledger& l, std::size_t n, std::size_t i) {
  std::minstd_rand rng(static_cast<unsigned>(i * 2654435761u));
  int kind = static_cast<int>(rng() % 16);
  if (kind < 4) taiga::this_tasklet::yield();
  if (kind == 5) taiga::this_tasklet::sleep_for(std::chrono::microseconds(rng() % 200));
  if (kind == 6) {
    taiga::this_tasklet::yield();
    taiga::this_tasklet::yield();
  }
  for (std::size_t c = i * 2 + 1; c <= i * 2 + 2; ++c)
    if (c < n) taiga::spawn(body, std::ref(l), n, c).detach();
  l.hit(i);
}

void run_stress(taiga::runtime& rt, std::size_t n, int outside_threads) {
  // Half of the tree grows from inside (root 0); the other half is fed by
  // outside threads, each spawning its share of "roots" straight onto the
  // runtime.
  std::size_t inside = n / 2;
  ledger l(n);
  auto root = taiga::spawn(rt, [&] { body(l, inside, 0); });
  std::vector<std::thread> outs;
  for (int k = 0; k < outside_threads; ++k)
    outs.emplace_back([&, k] {
      for (std::size_t i = inside + static_cast<std::size_t>(k); i < n;
           i += static_cast<std::size_t>(outside_threads))
        taiga::spawn(rt, [&l, i] {
          if (i % 5 == 0) taiga::this_tasklet::yield();
          l.hit(i);
        }).detach();
    });
  for (auto& t : outs) t.join();
  root.join();
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (l.done.load() < static_cast<long>(n) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(l.done.load(), static_cast<long>(n));
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(l.hits[i].load(), 1) << i;
}

}  // namespace

class stress : public with_workers {};
TAIGA_WORKER_COUNTS(stress);

TEST_P(stress, random_yields_sleeps_and_spawns_inside_and_outside) {
  run_stress(rt(), static_cast<std::size_t>(scaled(200'000)), 2);
}

TEST(stress_big, a_million_tasklets_each_exactly_once) {
  taiga::runtime rt;
  run_stress(rt, static_cast<std::size_t>(scaled(1'000'000)), 3);
  taiga::test::expect_clean(rt);
}
