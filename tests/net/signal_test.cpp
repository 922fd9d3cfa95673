// taiga::net signals: waiting for SIGUSR1 and SIGUSR2 (never SIGINT or
// SIGTERM: CTest's own), at 1, 2, 4 and 8 workers. The process ignores both
// around each test, so a signal that comes when nothing listens is dropped
// instead of ending it, and each test checks that SIG_IGN is back after.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <vector>

#include "net_fixture.hpp"

namespace net = taiga::net;
using namespace std::chrono_literals;

namespace {

bool ignored(int sig) {
  struct sigaction sa {};
  ::sigaction(sig, nullptr, &sa);
  return (sa.sa_flags & SA_SIGINFO) == 0 && sa.sa_handler == SIG_IGN;
}

class signals : public taiga::test::net_workers {
 protected:
  void SetUp() override {
    for (int sig : {SIGUSR1, SIGUSR2}) {
      struct sigaction sa {};
      sa.sa_handler = SIG_IGN;
      ::sigaction(sig, &sa, &saved_[sig == SIGUSR1 ? 0 : 1]);
    }
    net_workers::SetUp();
  }
  void TearDown() override {
    net_workers::TearDown();
    EXPECT_TRUE(ignored(SIGUSR1));
    EXPECT_TRUE(ignored(SIGUSR2));
    ::sigaction(SIGUSR1, &saved_[0], nullptr);
    ::sigaction(SIGUSR2, &saved_[1], nullptr);
  }
  struct sigaction saved_[2]{};
};
TAIGA_WORKER_COUNTS(signals);

}  // namespace

TEST_P(signals, wait_for_signal_returns_the_one_that_came) {
  rt().run([] {
    for (int sig : {SIGUSR2, SIGUSR1}) {
      auto t = taiga::spawn([] { return net::wait_for_signal({SIGUSR1, SIGUSR2}); });
      taiga::test::wait_parked(t);
      EXPECT_FALSE(ignored(sig));  // caught while the wait lasts
      ASSERT_EQ(::kill(::getpid(), sig), 0);
      EXPECT_EQ(t.join(), sig);
      EXPECT_TRUE(ignored(sig));  // and the disposition is back
    }
  });
}

TEST_P(signals, a_listener_queues_signals_between_waits) {
  rt().run([] {
    net::signal_listener l({SIGUSR1, SIGUSR2});
    ASSERT_EQ(::raise(SIGUSR1), 0);  // nobody waits yet
    EXPECT_EQ(l.wait(), SIGUSR1);
    for (int i = 0; i < 20; ++i) {
      int sig = i % 2 ? SIGUSR1 : SIGUSR2;
      auto t = taiga::spawn([&] { return l.wait(); });
      taiga::test::wait_parked(t);
      ASSERT_EQ(::kill(::getpid(), sig), 0);
      EXPECT_EQ(t.join(), sig);
    }
    l.close();
    EXPECT_TRUE(ignored(SIGUSR1));
    EXPECT_THROW(l.wait(), taiga::usage_error);
  });
}

TEST_P(signals, two_listeners_both_get_it_and_the_disposition_waits_for_the_last) {
  rt().run([] {
    auto a = std::make_unique<net::signal_listener>(std::initializer_list<int>{SIGUSR1});
    net::signal_listener b({SIGUSR1});
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    EXPECT_EQ(a->wait(), SIGUSR1);
    EXPECT_EQ(b.wait(), SIGUSR1);
    a.reset();
    EXPECT_FALSE(ignored(SIGUSR1));  // b still holds it
    auto t = taiga::spawn([&] { return b.wait(); });
    taiga::test::wait_parked(t);
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    EXPECT_EQ(t.join(), SIGUSR1);
  });
}

TEST_P(signals, kill_and_timeout_end_a_wait_and_the_listener_goes_on) {
  rt().run([] {
    net::signal_listener l({SIGUSR2});
    auto t = taiga::spawn([&] {
      l.wait();
      ADD_FAILURE() << "woke";
    });
    taiga::test::wait_parked(t);
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
    EXPECT_THROW(
        {
          taiga::timeout_scope ts(20ms);
          l.wait();
        },
        taiga::timeout_error);
    auto w = taiga::spawn([] {
      boost::system::error_code ec;
      taiga::timeout_scope ts(20ms);
      int sigs[] = {SIGUSR1};
      return net::wait_for_signal(sigs, ec);
    });
    EXPECT_THROW(w.join(), taiga::timeout_error);
    EXPECT_TRUE(ignored(SIGUSR1));
    // Not lost: a signal after the cancelled waits still arrives.
    ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
    EXPECT_EQ(l.wait(), SIGUSR2);
  });
}

TEST_P(signals, a_signal_that_cannot_be_caught_is_named) {
  rt().run([] {
    try {
      net::wait_for_signal({SIGUSR1, SIGKILL});
      ADD_FAILURE() << "waited for SIGKILL";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("signal " + std::to_string(SIGKILL)), std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(ignored(SIGUSR1));  // the one registered first was undone
    boost::system::error_code ec;
    int bad[] = {0};
    net::signal_listener l(bad, ec);
    EXPECT_EQ(ec, boost::asio::error::invalid_argument);
    EXPECT_FALSE(l.is_open());
  });
}
