// The CAF 0.17 peers of the actor benchmarks (see caf_actors.hpp). Written
// the way CAF's own examples write them: event-based actors returning
// behaviors, `send` for tells, `request(...).then` for asks.
#include "caf_actors.hpp"

#include <unistd.h>
#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

namespace caf_peer {

namespace {

using clk = std::chrono::steady_clock;

caf::actor_system_config config(unsigned threads) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  return cfg;
}

double ns_since(clk::time_point t0) {
  return std::chrono::duration<double, std::nano>(clk::now() - t0).count();
}

long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

caf::behavior pong(caf::event_based_actor*) {
  return {[](std::int64_t v) { return v + 1; }};
}

caf::behavior ping(caf::event_based_actor* self, caf::actor buddy, std::int64_t n) {
  self->send(buddy, std::int64_t{0});
  return {[=](std::int64_t v) {
    if (v >= n) {
      self->send_exit(buddy, caf::exit_reason::user_shutdown);
      self->quit();
      return;
    }
    self->send(buddy, v);
  }};
}

double run_pairs(int pairs, long n, unsigned threads) {
  auto cfg = config(threads);
  caf::actor_system sys{cfg};
  auto t0 = clk::now();
  for (int i = 0; i < pairs; ++i) sys.spawn(ping, sys.spawn(pong), static_cast<std::int64_t>(n));
  sys.await_all_actors_done();
  return ns_since(t0);
}

caf::behavior ask_client(caf::event_based_actor* self, caf::actor server, std::int64_t n) {
  auto step = std::make_shared<std::function<void(std::int64_t)>>();
  *step = [=](std::int64_t i) {
    if (i == n) {
      self->send_exit(server, caf::exit_reason::user_shutdown);
      self->quit();
      return;
    }
    self->request(server, caf::infinite, i).then([=](std::int64_t r) { (*step)(r); });
  };
  (*step)(0);
  return {[](const std::string&) {}};  // stays alive while its requests run
}

std::atomic<long> running{0};  // behaviours made (CAF runs this on the actor's first turn)

caf::behavior one_shot(caf::event_based_actor* self) {
  running.fetch_add(1, std::memory_order_relaxed);
  return {[=](std::int64_t) { self->quit(); }};
}

// The token carries the rounds left; the last member counts them down. In
// the final round (0) each member forwards it once more and quits, so the
// ring sends rounds * n messages in all.
caf::behavior ring_member(caf::event_based_actor* self, bool last) {
  auto next = std::make_shared<caf::actor>();
  return {[=](caf::actor nx) { *next = std::move(nx); },
          [=](std::int64_t rounds) {
            if (last) {
              if (rounds == 0) {
                self->quit();
                return;
              }
              self->send(*next, rounds - 1);
              return;
            }
            self->send(*next, rounds);
            if (rounds == 0) self->quit();
          }};
}

}  // namespace

double pingpong_ns(long n) {
  return run_pairs(1, n, 1) / static_cast<double>(n);
}

double pairs_msgs_per_s(int pairs, long n, unsigned threads) {
  double ns = run_pairs(pairs, n, threads);
  return 2.0 * pairs * static_cast<double>(n) / (ns / 1e9);
}

double ask_ns(long n) {
  auto cfg = config(1);
  caf::actor_system sys{cfg};
  auto t0 = clk::now();
  sys.spawn(ask_client, sys.spawn(pong), static_cast<std::int64_t>(n));
  sys.await_all_actors_done();
  return ns_since(t0) / static_cast<double>(n);
}

spawn_figures spawn(long n, unsigned threads) {
  auto cfg = config(threads);
  caf::actor_system sys{cfg};
  std::vector<caf::actor> all;
  all.reserve(static_cast<size_t>(n));
  const long rss0 = rss_bytes();
  auto t0 = clk::now();
  for (long i = 0; i < n; ++i) all.push_back(sys.spawn(one_shot));
  while (running.load(std::memory_order_relaxed) < n) std::this_thread::yield();
  const long rss1 = rss_bytes();
  for (auto& a : all) caf::anon_send(a, std::int64_t{1});
  all.clear();
  sys.await_all_actors_done();
  return {ns_since(t0) / static_cast<double>(n),
          static_cast<double>(rss1 - rss0) / static_cast<double>(n)};
}

double ring_ns_per_hop(int n, int rounds, unsigned threads) {
  auto cfg = config(threads);
  caf::actor_system sys{cfg};
  std::vector<caf::actor> ring;
  ring.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ring.push_back(sys.spawn(ring_member, i == n - 1));
  for (int i = 0; i < n; ++i)
    caf::anon_send(ring[static_cast<size_t>(i)], ring[static_cast<size_t>((i + 1) % n)]);
  auto t0 = clk::now();
  caf::anon_send(ring[0], static_cast<std::int64_t>(rounds - 1));
  ring.clear();
  sys.await_all_actors_done();
  return ns_since(t0) / (static_cast<double>(n) * rounds);
}

}  // namespace caf_peer
