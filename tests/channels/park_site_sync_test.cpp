// The deadlock report names the user's line of each blocking call of the
// sync toolkit, the queues and the futures (tasklet_info::parked_at): each
// operation that may park takes its caller's site as a defaulted trailing
// parameter and passes it on when it parks.
#include <gtest/gtest.h>
#include <algorithm>
#include <mutex>
#include <string>
#include <taiga/channels.hpp>
#include <vector>

namespace {

struct parked_site {
  std::string on;
  unsigned line = 0;
};

taiga::runtime_config collecting(std::vector<parked_site>& out) {
  taiga::runtime_config c;
  c.workers = 1;
  c.deadlock_handler = [&out](const taiga::deadlock_report& r) {
    for (const auto& t : r.parked)
      out.push_back({t.parked_on, static_cast<unsigned>(t.parked_at.line())});
  };
  return c;
}

bool has_line(const std::vector<parked_site>& sites, unsigned line) {
  return std::any_of(sites.begin(), sites.end(),
                     [line](const parked_site& s) { return s.line == line; });
}

std::string dump(const std::vector<parked_site>& sites) {
  std::string s;
  for (const auto& p : sites) s += p.on + " at line " + std::to_string(p.line) + "\n";
  return s;
}

}  // namespace

TEST(park_site_sync, the_deadlock_report_names_the_line_of_each_event_semaphore_and_latch_wait) {
  std::vector<parked_site> sites;
  unsigned event_line = 0, semaphore_line = 0, latch_line = 0;
  taiga::runtime rt(collecting(sites));
  rt.run([&] {
    taiga::event e;
    taiga::semaphore s(0);
    taiga::latch l(1);
    auto a = taiga::spawn([&] {
      event_line = __LINE__ + 1;
      e.wait();
    });
    auto b = taiga::spawn([&] {
      semaphore_line = __LINE__ + 1;
      s.acquire();
    });
    auto c = taiga::spawn([&] {
      latch_line = __LINE__ + 1;
      l.wait();
    });
    EXPECT_THROW(a.join(), taiga::deadlock_error);
    EXPECT_THROW(b.join(), taiga::deadlock_error);
    EXPECT_THROW(c.join(), taiga::deadlock_error);
  });
  EXPECT_TRUE(has_line(sites, event_line)) << dump(sites);
  EXPECT_TRUE(has_line(sites, semaphore_line)) << dump(sites);
  EXPECT_TRUE(has_line(sites, latch_line)) << dump(sites);
}

TEST(park_site_sync, the_deadlock_report_names_the_line_of_locks_condition_waits_queues_futures) {
  std::vector<parked_site> sites;
  unsigned lock_line = 0, cv_line = 0, get_line = 0, future_line = 0;
  taiga::runtime rt(collecting(sites));
  rt.run([&] {
    taiga::mutex m;
    taiga::mutex cv_m;
    taiga::condition_variable cv;
    taiga::queue<int> q;
    taiga::promise<int> p;
    taiga::future<int> f = p.get_future();
    std::unique_lock held(m);
    auto locker = taiga::spawn([&] {
      lock_line = __LINE__ + 1;
      m.lock();
    });
    auto waiter = taiga::spawn([&] {
      std::unique_lock lk(cv_m);
      cv_line = __LINE__ + 1;
      cv.wait(lk, [] { return false; });
    });
    auto getter = taiga::spawn([&] {
      get_line = __LINE__ + 1;
      (void)q.get();
    });
    auto future_waiter = taiga::spawn([&] {
      future_line = __LINE__ + 1;
      (void)f.get();
    });
    EXPECT_THROW(locker.join(), taiga::deadlock_error);
    EXPECT_THROW(waiter.join(), taiga::deadlock_error);
    EXPECT_THROW(getter.join(), taiga::deadlock_error);
    EXPECT_THROW(future_waiter.join(), taiga::deadlock_error);
  });
  EXPECT_TRUE(has_line(sites, lock_line)) << dump(sites);
  EXPECT_TRUE(has_line(sites, cv_line)) << dump(sites);
  EXPECT_TRUE(has_line(sites, get_line)) << dump(sites);
  EXPECT_TRUE(has_line(sites, future_line)) << dump(sites);
}

// A range-for over pool.map() or as_completed() parks inside the iterator's
// operators, which cannot take a call site: the site is the `for` line
// (begin() takes it), not a line of the library's headers.
TEST(park_site_sync, the_deadlock_report_names_the_for_line_of_map_and_as_completed_loops) {
  std::vector<parked_site> sites;
  unsigned map_line = 0, completed_line = 0, void_map_line = 0;
  taiga::runtime rt(collecting(sites));
  rt.run([&] {
    taiga::promise<int> never;
    taiga::shared_future<int> blocked = never.get_future();
    taiga::task_pool pool(2);
    std::vector<int> inputs{1, 2};
    auto mapper = taiga::spawn([&] {
      map_line = __LINE__ + 1;
      for (int& r : pool.map([blocked](int x) { return x + blocked.get(); }, inputs)) (void)r;
    });
    auto void_mapper = taiga::spawn([&] {
      void_map_line = __LINE__ + 1;
      pool.map([blocked](int) { (void)blocked.get(); }, inputs);
    });
    taiga::promise<int> p1, p2;
    std::vector<taiga::future<int>> fs;
    fs.push_back(p1.get_future());
    fs.push_back(p2.get_future());
    auto completer = taiga::spawn([&] {
      completed_line = __LINE__ + 1;
      for (auto& f : taiga::as_completed(std::move(fs))) (void)f.get();
    });
    EXPECT_THROW(mapper.join(), taiga::deadlock_error);
    EXPECT_THROW(void_mapper.join(), taiga::deadlock_error);
    EXPECT_THROW(completer.join(), taiga::deadlock_error);
    never.set_value(0);  // the pool's destructor can then finish
  });
  EXPECT_TRUE(has_line(sites, map_line)) << dump(sites);
  EXPECT_TRUE(has_line(sites, void_map_line)) << dump(sites);
  EXPECT_TRUE(has_line(sites, completed_line)) << dump(sites);
  for (const auto& s : sites) EXPECT_NE(s.line, 0u) << dump(sites);
}
