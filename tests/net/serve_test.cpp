// taiga::net::serve: the connection limit, a graceful stop (in-flight
// requests finish, a stuck one is killed at the deadline), backoff when
// accept runs out of file descriptors (EMFILE), and handler exceptions,
// at 1, 2, 4 and 8 workers; every test ends with no tasklet, I/O wait or
// fd left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <vector>

#include "hang_guard.hpp"
#include "net_fixture.hpp"

namespace net = taiga::net;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using taiga::test::loopback;

namespace {

class serve : public taiga::test::net_workers {};
TAIGA_WORKER_COUNTS(serve);

// Polls `pred` (parking between tries) until it holds or `limit` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    taiga::this_tasklet::sleep_for(1ms);
  }
  return true;
}

// Reads `n` bytes within `limit`, or throws taiga::timeout_error.
std::string read_n(net::tcp_stream& s, std::size_t n, std::chrono::milliseconds limit) {
  taiga::timeout_scope t(limit);
  std::string buf(n, '\0');
  s.read_exact(asio::buffer(buf));
  return buf;
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Lowers RLIMIT_NOFILE to a little above the highest fd in use and fills
// what is left with /dev/null, so the next socket fails with EMFILE;
// release(n) frees n. The destructor closes them all and restores the limit.
class fd_squeeze {
 public:
  fd_squeeze() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    int top = 0;
    for (int fd = 0; fd < 65536; ++fd)  // highest open fd (dense enough to scan)
      if (::fcntl(fd, F_GETFD) != -1) top = fd;
    rlimit r = saved_;
    r.rlim_cur = static_cast<rlim_t>(top) + 1 + 48;
    if (r.rlim_cur > saved_.rlim_cur) r.rlim_cur = saved_.rlim_cur;
    ::setrlimit(RLIMIT_NOFILE, &r);
    for (;;) {
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) break;
      fillers_.push_back(fd);
    }
    exhausted_ = errno == EMFILE;
  }
  ~fd_squeeze() {
    release(fillers_.size());
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  fd_squeeze(const fd_squeeze&) = delete;
  fd_squeeze& operator=(const fd_squeeze&) = delete;
  bool exhausted() const { return exhausted_; }
  void release(std::size_t n) {
    for (; n > 0 && !fillers_.empty(); --n) {
      ::close(fillers_.back());
      fillers_.pop_back();
    }
  }

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
  bool exhausted_ = false;
};

}  // namespace

TEST_P(serve, the_connection_limit_holds_the_next_one_in_the_backlog) {
  taiga::test::hang_guard hg("serve.the_connection_limit");
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto port = l.local_endpoint().port();
    auto srv = net::serve(l,
                          [](net::tcp_stream& s) {
                            s.write_all(asio::buffer(std::string("hi")));
                            char x;
                            boost::system::error_code ec;
                            s.read_some(asio::buffer(&x, 1), ec);  // until the client closes
                          },
                          {.max_connections = 2});
    net::tcp_stream c1 = net::connect(loopback(port));
    net::tcp_stream c2 = net::connect(loopback(port));
    EXPECT_EQ(read_n(c1, 2, 5s), "hi");
    EXPECT_EQ(read_n(c2, 2, 5s), "hi");
    // The third connects (the kernel's backlog) but is not accepted.
    net::tcp_stream c3 = net::connect(loopback(port));
    EXPECT_THROW(read_n(c3, 2, 150ms), taiga::timeout_error);
    auto st = srv.stats();
    EXPECT_EQ(st.accepted, 2u);
    EXPECT_EQ(st.active, 2u);
    EXPECT_GE(st.limit_waits, 1u);
    // One ends: the third is accepted, nothing was accepted and dropped.
    c1.close();
    EXPECT_EQ(read_n(c3, 2, 5s), "hi");
    st = srv.stats();
    EXPECT_EQ(st.accepted, 3u);
    EXPECT_EQ(st.peak, 2u);
    c2.close();
    c3.close();
    EXPECT_TRUE(eventually([&] { return srv.stats().active == 0; }));
    auto t0 = std::chrono::steady_clock::now();
    srv.stop(10s);  // nothing in flight: at once
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    EXPECT_TRUE(srv.done());
    EXPECT_EQ(srv.stats().killed, 0u);
    EXPECT_EQ(srv.stats().accept_errors, 0u);
  });
}

TEST_P(serve, stop_lets_requests_in_flight_finish_and_kills_a_stuck_one_at_the_deadline) {
  taiga::test::hang_guard hg("serve.stop");
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto port = l.local_endpoint().port();
    taiga::latch started(4);
    std::atomic<int> saw_stop_request{0};
    auto srv = net::serve(l, [&](net::tcp_stream& s) {
      std::string req;
      std::size_t n = s.read_until(req, "\n", 64);
      if (req.substr(0, n) == "stuck\n") {
        started.count_down();
        char x;
        s.read_some(asio::buffer(&x, 1));  // the client never writes: killed here
        return;
      }
      started.count_down();
      taiga::this_tasklet::sleep_for(200ms);  // a request in flight when stop() starts
      if (taiga::this_tasklet::stop_requested()) saw_stop_request.fetch_add(1);
      s.write_all(asio::buffer(std::string("done\n")));
    });
    std::vector<taiga::tasklet<std::string>> workers;
    for (int i = 0; i < 3; ++i) {
      workers.push_back(taiga::spawn([port] {
        net::tcp_stream c = net::connect(loopback(port));
        c.write_all(asio::buffer(std::string("work\n")));
        return read_n(c, 5, 10s);
      }));
    }
    net::tcp_stream stuck = net::connect(loopback(port));
    stuck.write_all(asio::buffer(std::string("stuck\n")));
    started.wait();

    auto t0 = std::chrono::steady_clock::now();
    srv.stop(700ms);
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(took, 650ms);  // the stuck one was given until the deadline
    EXPECT_LT(took, 5s);
    for (auto& w : workers) EXPECT_EQ(w.join(), "done\n");
    EXPECT_EQ(saw_stop_request.load(), 3);
    // The stuck handler was killed: its stream closed.
    char x;
    boost::system::error_code ec;
    stuck.read_some(asio::buffer(&x, 1), ec);
    EXPECT_EQ(ec, asio::error::eof);
    auto st = srv.stats();
    EXPECT_EQ(st.accepted, 4u);
    EXPECT_EQ(st.active, 0u);
    EXPECT_EQ(st.killed, 1u);
    EXPECT_EQ(st.handler_errors, 0u);  // a kill is not an error
    EXPECT_TRUE(srv.done());
    EXPECT_FALSE(l.is_open());
    net::connect(loopback(port), {}, ec);  // not listening any more
    EXPECT_EQ(ec, asio::error::connection_refused);
    srv.stop(1s);  // again: nothing to do
  });
}

TEST_P(serve, accept_out_of_fds_backs_off_without_spinning_and_resumes) {
  taiga::test::hang_guard hg("serve.emfile");
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto port = l.local_endpoint().port();
    auto srv = net::serve(l, [](net::tcp_stream& s) {
      char x;
      s.read_exact(asio::buffer(&x, 1));
      s.write_all(asio::buffer(std::string("ok")));
      boost::system::error_code ec;
      s.read_some(asio::buffer(&x, 1), ec);
    });
    {
      // One round first, with every operation parking once (connect, accept,
      // read): UBSan's vptr check of an Asio cancellation handler, the first
      // time it sees its type, opens a pipe, and reports a false "invalid
      // vptr" when that fails with EMFILE.
      net::tcp_stream w = net::connect(loopback(port));
      auto r = taiga::spawn([&w] { return read_n(w, 2, 5s); });
      taiga::test::wait_parked(r);
      w.write_all(asio::buffer("x", 1));
      EXPECT_EQ(r.join(), "ok");
    }
    EXPECT_TRUE(eventually([&] { return srv.stats().active == 0; }));
    net::tcp_stream c;
    {
      fd_squeeze squeeze;
      ASSERT_TRUE(squeeze.exhausted());
      squeeze.release(1);
      c = net::connect(loopback(port));  // takes the last fd: accept gets EMFILE
      c.write_all(asio::buffer("x", 1));
      const auto window = 400ms;
      double cpu0 = cpu_seconds();
      auto t0 = std::chrono::steady_clock::now();
      taiga::this_tasklet::sleep_for(window);
      double cpu = cpu_seconds() - cpu0;
      double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      auto st = srv.stats();
      // 10, 20, 40, 80, 160 ms...: about 5 in 400 ms. A spin would be thousands.
      EXPECT_GE(st.emfile_backoffs, 2u);
      EXPECT_LE(st.emfile_backoffs, 12u);
      EXPECT_EQ(st.accept_errors, st.emfile_backoffs);
      EXPECT_EQ(st.accepted, 1u);  // the first round's
      EXPECT_LT(cpu, 0.5 * wall) << "cpu " << cpu << " s over " << wall << " s";
      // Room again: the next retry accepts.
      squeeze.release(8);
      EXPECT_EQ(read_n(c, 2, 5s), "ok");
      EXPECT_EQ(srv.stats().accepted, 2u);
    }
    c.close();
    srv.stop(5s);
    EXPECT_EQ(srv.stats().killed, 0u);
  });
}

TEST_P(serve, handler_exceptions_are_reported_and_the_server_keeps_serving) {
  taiga::test::hang_guard hg("serve.handler_exceptions");
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    auto port = l.local_endpoint().port();
    std::mutex m;
    std::vector<std::pair<std::string, unsigned short>> errors;
    // By value: the handler owns the stream.
    auto srv = net::serve(l,
                          [](net::tcp_stream s) {
                            std::string req;
                            std::size_t n = s.read_until(req, "\n", 64);
                            if (req.substr(0, n) == "boom\n")
                              throw std::runtime_error("boom requested");
                            s.write_all(asio::buffer(req.substr(0, n)));
                          },
                          {.on_error = [&](std::exception_ptr e, const net::tcp::endpoint& peer) {
                            try {
                              std::rethrow_exception(e);
                            } catch (const std::exception& x) {
                              std::lock_guard g(m);
                              errors.emplace_back(x.what(), peer.port());
                            }
                          }});
    std::vector<unsigned short> ports;
    for (int i = 0; i < 5; ++i) {
      net::tcp_stream c = net::connect(loopback(port));
      ports.push_back(c.local_endpoint().port());
      c.write_all(asio::buffer(std::string("boom\n")));
      char x;
      boost::system::error_code ec;
      c.read_some(asio::buffer(&x, 1), ec);  // the handler ended: closed
      EXPECT_EQ(ec, asio::error::eof);
    }
    net::tcp_stream c = net::connect(loopback(port));
    c.write_all(asio::buffer(std::string("echo\n")));
    EXPECT_EQ(read_n(c, 5, 5s), "echo\n");
    EXPECT_TRUE(eventually([&] { return srv.stats().active == 0; }));
    EXPECT_EQ(srv.stats().handler_errors, 5u);
    {
      std::lock_guard g(m);
      ASSERT_EQ(errors.size(), 5u);
      // In any order: a client sees its connection closed before the report.
      std::vector<unsigned short> reported;
      for (auto& [what, peer] : errors) {
        EXPECT_EQ(what, "boom requested");
        reported.push_back(peer);
      }
      std::sort(reported.begin(), reported.end());
      std::sort(ports.begin(), ports.end());
      EXPECT_EQ(reported, ports);
    }
    srv.stop(1s);
  });
}

TEST_P(serve, the_default_error_report_is_one_line_on_stderr) {
  rt().run([] {
    auto srv = net::serve(net::tcp_listener::bind(loopback()),  // the server owns it
                          [](net::tcp_stream&) { throw std::runtime_error("handler failed"); });
    testing::internal::CaptureStderr();
    {
      net::tcp_stream c = net::connect(loopback(srv.local_endpoint().port()));
      EXPECT_TRUE(
          eventually([&] { return srv.stats().handler_errors == 1 && srv.stats().active == 0; }));
    }
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("taiga::net::serve 127.0.0.1:"), std::string::npos) << err;
    EXPECT_NE(err.find(": connection from 127.0.0.1:"), std::string::npos) << err;
    EXPECT_NE(err.find("handler failed"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    srv.close();  // from here on, join() returns once nothing is left
    srv.join();
    EXPECT_TRUE(srv.done());
  });
}

TEST_P(serve, destroying_a_running_server_kills_its_connections) {
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    net::tcp_stream c;
    {
      auto srv = net::serve(l, [](net::tcp_stream& s) {
        char x;
        s.read_some(asio::buffer(&x, 1));  // never returns on its own
      });
      c = net::connect(loopback(l.local_endpoint().port()));
      EXPECT_TRUE(eventually([&] { return srv.stats().active == 1; }));
    }
    char x;
    boost::system::error_code ec;
    c.read_some(asio::buffer(&x, 1), ec);
    EXPECT_EQ(ec, asio::error::eof);
  });
}

TEST_P(serve, an_accept_error_that_cannot_pass_ends_the_loop_and_is_reported) {
  taiga::test::hang_guard hg("serve.fatal_accept_error");
  rt().run([] {
    auto l = net::tcp_listener::bind(loopback());
    std::atomic<int> reported{0};
    auto srv = net::serve(l, [](net::tcp_stream&) {},
                          {.on_error = [&](std::exception_ptr, const net::tcp::endpoint& peer) {
                            EXPECT_EQ(peer, net::tcp::endpoint());  // the accept loop's own error
                            reported.fetch_add(1);
                          }});
    // Linux: a listening socket shut down wakes its accept with EINVAL.
    ASSERT_EQ(::shutdown(l.native_handle(), SHUT_RDWR), 0);
    srv.join();  // the loop ended by itself
    EXPECT_TRUE(srv.done());
    EXPECT_EQ(srv.accept_error(), boost::system::errc::invalid_argument);
    EXPECT_EQ(reported.load(), 1);
    EXPECT_EQ(srv.stats().accept_errors, 1u);
  });
}
