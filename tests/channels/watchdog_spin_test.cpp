// Issue 18 B, second part: "the watchdog should name such a tasklet too". A
// tasklet that spins on a closed channel's receive (a nullopt ignored in a
// loop) never parks, so it holds its worker; sysmon's watchdog must report
// it, with its name, while it spins. Nobody kills it while the watchdog
// watches; then kill() ends it. (These tests live with the channel tests
// because they need a channel; the runtime test binary links the runtime
// only.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <taiga/channels/channel.hpp>
#include <taiga/runtime.hpp>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct reports {
  std::mutex mu;
  std::vector<std::string> names;
  std::atomic<int> count{0};

  void add(const taiga::tasklet_info& info) {
    std::lock_guard lk(mu);
    names.push_back(info.name);
    count.fetch_add(1);
  }
  bool named(const std::string& name) {
    std::lock_guard lk(mu);
    for (const auto& n : names)
      if (n == name) return true;
    return false;
  }
  std::string all() {
    std::lock_guard lk(mu);
    std::string s;
    for (const auto& n : names) s += "'" + n + "' ";
    return s;
  }
};

taiga::runtime_config watched(unsigned workers, reports& r) {
  taiga::runtime_config c;
  c.workers = workers;
  c.name = "watchdog_spin";
  c.watchdog_threshold = 50ms;
  c.watchdog_handler = [&r](const taiga::tasklet_info& info, std::chrono::milliseconds ran) {
    EXPECT_GE(ran.count(), 50);
    r.add(info);
  };
  return c;
}

// Waits (this plain thread) until the watchdog reported `name`, at most 20 s.
bool reported_within(reports& r, const std::string& name) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!r.named(name) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(5ms);
  return r.named(name);
}

// Never parks; the kill lands at the receive (an interruption point).
void spin_on_closed(const taiga::channel<int>& ch) {
  for (;;) (void)ch.receive();  // std::nullopt, at once, every time
}

TEST(watchdog_spin, names_a_tasklet_spinning_on_a_closed_channel) {
  for (unsigned workers : {1u, 2u, 4u}) {
    reports r;
    taiga::runtime rt(watched(workers, r));
    taiga::channel<int> ch(4);
    ch.close();
    auto t = taiga::spawn(rt, taiga::spawn_options{.name = "closed-spinner"},
                          [ch] { spin_on_closed(ch); });
    EXPECT_TRUE(reported_within(r, "closed-spinner"))
        << workers << " workers; reports: " << r.all();
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
  }
}

TEST(watchdog_spin, names_a_tasklet_that_named_itself) {
  reports r;
  taiga::runtime rt(watched(2, r));
  taiga::channel<int> ch;  // rendezvous, closed: receive returns at once too
  ch.close();
  auto t = taiga::spawn(rt, [ch] {
    taiga::this_tasklet::set_name("self-named-spinner");
    spin_on_closed(ch);
  });
  EXPECT_TRUE(reported_within(r, "self-named-spinner")) << "reports: " << r.all();
  t.kill();
  EXPECT_THROW(t.join(), taiga::tasklet_killed);
}

}  // namespace
