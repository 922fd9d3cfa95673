// taiga::net Unix sockets: listeners by path and abstract name, and fd
// passing, at 1, 2, 4 and 8 workers; every test ends with no tasklet, I/O
// wait or fd left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <vector>

#include "net_fixture.hpp"

namespace net = taiga::net;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

class unix_sockets : public taiga::test::net_workers {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/taiga-unix-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    net_workers::SetUp();
  }
  void TearDown() override {
    net_workers::TearDown();
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};
TAIGA_WORKER_COUNTS(unix_sockets);

std::string unique_abstract() {
  static std::atomic<int> n{0};
  return "@taiga-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

void echo_once(net::unix_listener& l, int conns) {
  std::vector<taiga::tasklet<void>> all;
  for (int i = 0; i < conns; ++i) {
    all.push_back(taiga::spawn([s = l.accept()]() mutable {
      char buf[1024];
      boost::system::error_code ec;
      for (;;) {
        std::size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) return;
        s.write_all(asio::buffer(buf, n));
      }
    }));
  }
  for (auto& t : all) t.join();
}

void check_echo(const std::string& name, int conns) {
  std::vector<taiga::tasklet<void>> clients;
  for (int c = 0; c < conns; ++c) {
    clients.push_back(taiga::spawn([name, c] {
      net::unix_stream s = net::connect_unix(name);
      for (long r = 0; r < taiga::test::scaled(100); ++r) {
        std::string msg = "hello " + std::to_string(c) + " " + std::to_string(r);
        s.write_all(asio::buffer(msg));
        std::string back(msg.size(), '\0');
        s.read_exact(asio::buffer(back));
        EXPECT_EQ(back, msg);
      }
    }));
  }
  for (auto& t : clients) t.join();
}

}  // namespace

TEST_P(unix_sockets, echo_over_a_path_and_the_file_goes_with_the_listener) {
  std::string p = path("echo.sock");
  rt().run([&] {
    {
      auto l = net::unix_listener::bind(p);
      EXPECT_TRUE(exists(p));
      EXPECT_EQ(l.name(), p);
      auto srv = taiga::spawn([&] { echo_once(l, 5); });
      check_echo(p, 5);
      srv.join();
    }
    EXPECT_FALSE(exists(p));  // unlink_on_close
  });
}

TEST_P(unix_sockets, echo_over_an_abstract_name) {
  rt().run([] {
    std::string name = unique_abstract();
    auto l = net::unix_listener::bind(name);
    EXPECT_EQ(l.local_endpoint().path()[0], '\0');
    auto srv = taiga::spawn([&] { echo_once(l, 3); });
    check_echo(name, 3);
    srv.join();
    l.close();
    try {
      net::connect_unix(name);
      ADD_FAILURE() << "connected to a closed listener";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::connection_refused);
      EXPECT_NE(std::string(e.what()).find("connect to unix " + name), std::string::npos)
          << e.what();
    }
  });
}

TEST_P(unix_sockets, a_stale_socket_file_is_replaced_a_live_one_is_not) {
  std::string p = path("stale.sock");
  // A socket file whose process is gone: bound, never listened, closed.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", p.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  ASSERT_TRUE(exists(p));
  rt().run([&] {
    try {
      net::unix_listener::bind(p, {.unlink_stale = false});
      ADD_FAILURE() << "bound over a file";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::address_in_use);
      EXPECT_NE(std::string(e.what()).find("bind unix " + p), std::string::npos) << e.what();
    }
    auto l = net::unix_listener::bind(p);  // unlink_stale (the default)
    // A live listener's file is never taken over.
    try {
      net::unix_listener::bind(p);
      ADD_FAILURE() << "took over a live listener";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::address_in_use);
    }
    // The probe connected to l: accept and drop it.
    net::unix_stream probe = l.accept();
    EXPECT_TRUE(exists(p));
    auto t = taiga::spawn([&] { return l.accept(); });
    net::unix_stream c = net::connect_unix(p);
    net::unix_stream s = t.join();
    c.write_all(asio::buffer(std::string("x")));
    char x;
    s.read_exact(asio::buffer(&x, 1));
    EXPECT_EQ(x, 'x');
  });
  EXPECT_FALSE(exists(p));
}

TEST_P(unix_sockets, malformed_names_and_missing_files_name_the_path) {
  rt().run([&] {
    auto expect_error = [](auto&& f, std::errc code, const std::string& named) {
      try {
        f();
        ADD_FAILURE() << "no error for " << named;
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
      }
    };
    std::string missing = path("missing.sock");
    expect_error([&] { net::connect_unix(missing); }, std::errc::no_such_file_or_directory,
                 "connect to unix " + missing);
    std::string too_long = "/tmp/" + std::string(200, 'n');
    expect_error([&] { net::connect_unix(too_long); }, std::errc::filename_too_long,
                 "connect to unix " + too_long);
    expect_error([&] { net::unix_listener::bind(too_long); }, std::errc::filename_too_long,
                 "bind unix " + too_long);
    expect_error([&] { net::unix_listener::bind(""); }, std::errc::invalid_argument, "bind unix");
    expect_error([&] { net::connect_unix(std::string("a\0b", 3)); }, std::errc::invalid_argument,
                 "connect to unix");
    expect_error([&] { net::unix_listener::bind(path("no-such-dir/x.sock")); },
                 std::errc::no_such_file_or_directory, "bind unix " + path("no-such-dir/x.sock"));
    boost::system::error_code ec;
    net::unix_stream s = net::connect_unix(missing, ec);
    EXPECT_EQ(ec, boost::system::errc::no_such_file_or_directory);
    EXPECT_FALSE(s.is_open());
  });
}

TEST_P(unix_sockets, a_pipe_passed_over_the_socket_works_and_nothing_leaks) {
  rt().run([&] {
    auto l = net::unix_listener::bind(path("fds.sock"));
    int before = taiga::test::open_fds();
    auto srv = taiga::spawn([&] {
      net::unix_stream s = l.accept();
      char buf[16];
      net::received_fds r = net::receive_fds(s, asio::buffer(buf));
      EXPECT_EQ(std::string(buf, r.size), "take this");
      EXPECT_EQ(r.fds.size(), 1u);
      if (r.fds.size() != 1) return;
      EXPECT_EQ(::fcntl(r.fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
      const char msg[] = "through the passed fd";
      EXPECT_EQ(::write(r.fds[0].get(), msg, sizeof msg - 1), ssize_t(sizeof msg - 1));
      s.write_all(asio::buffer(std::string("done")));
    });  // the received fd closes here
    net::unix_stream c = net::connect_unix(path("fds.sock"));
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    int fds[] = {p[1]};
    EXPECT_EQ(net::send_fds(c, fds, asio::buffer(std::string("take this"))), 9u);
    ::close(p[1]);  // ours; the server's copy is the only writer left
    std::string done(4, '\0');
    c.read_exact(asio::buffer(done));
    EXPECT_EQ(done, "done");
    srv.join();
    std::string got;
    char buf[64];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) got.append(buf, std::size_t(n));
    EXPECT_EQ(got, "through the passed fd");  // and end of file: every copy closed
    ::close(p[0]);
    c.close();
    EXPECT_EQ(taiga::test::open_fds(), before) << taiga::test::fd_list();
  });
}

TEST_P(unix_sockets, truncated_control_data_is_an_error_and_closes_what_arrived) {
  rt().run([] {
    auto pair = net::unix_stream_pair();
    net::unix_stream& a = pair.first;
    net::unix_stream& b = pair.second;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    int before = taiga::test::open_fds();
    int fds[] = {p[0], p[1], p[1]};
    net::send_fds(a, fds, asio::buffer(std::string("three")));
    char buf[16];
    boost::system::error_code ec;
    net::received_fds r = net::receive_fds(b, asio::buffer(buf), 1, ec);
    EXPECT_EQ(ec, asio::error::message_size);
    EXPECT_EQ(r.size, 5u);  // the bytes still came
    EXPECT_TRUE(r.fds.empty());
    EXPECT_EQ(taiga::test::open_fds(), before) << taiga::test::fd_list();
    // The throwing form names the socket and the cause.
    net::send_fds(a, fds, asio::buffer(std::string("again")));
    try {
      net::receive_fds(b, asio::buffer(buf), 2);
      ADD_FAILURE() << "no error";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::message_size);
      EXPECT_NE(std::string(e.what()).find("control data truncated"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(taiga::test::open_fds(), before) << taiga::test::fd_list();
    // Plain bytes with no descriptors, and several descriptors whole.
    a.write_all(asio::buffer(std::string("plain")));
    r = net::receive_fds(b, asio::buffer(buf));
    EXPECT_EQ(std::string(buf, r.size), "plain");
    EXPECT_TRUE(r.fds.empty());
    net::send_fds(a, fds, asio::buffer(std::string("all")));
    r = net::receive_fds(b, asio::buffer(buf), 3);
    EXPECT_EQ(std::string(buf, r.size), "all");
    EXPECT_EQ(r.fds.size(), 3u);
    r = {};
    EXPECT_EQ(taiga::test::open_fds(), before) << taiga::test::fd_list();
    ::close(p[0]);
    ::close(p[1]);
    boost::system::error_code ec2;
    EXPECT_EQ(net::send_fds(a, fds, asio::buffer(std::string()), ec2), 0u);
    EXPECT_EQ(ec2, asio::error::invalid_argument);
  });
}

TEST_P(unix_sockets, a_killed_receive_fds_loses_nothing_and_eof_is_reported) {
  rt().run([] {
    auto pair = net::unix_stream_pair();
    net::unix_stream& a = pair.first;
    net::unix_stream& b = pair.second;
    auto t = taiga::spawn([&] {
      char buf[8];
      net::receive_fds(b, asio::buffer(buf));  // parks
      ADD_FAILURE() << "received";
    });
    taiga::test::wait_parked(t);
    t.kill();
    EXPECT_THROW(t.join(), taiga::tasklet_killed);
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    int fds[] = {p[0]};
    auto rx = taiga::spawn([&] {
      char buf[8];
      net::received_fds r = net::receive_fds(b, asio::buffer(buf));
      return std::make_pair(std::string(buf, r.size), r.fds.size());
    });
    taiga::test::wait_parked(rx);
    net::send_fds(a, fds, asio::buffer(std::string("late")));
    EXPECT_EQ(rx.join(), std::make_pair(std::string("late"), std::size_t{1}));
    ::close(p[0]);
    ::close(p[1]);
    {
      taiga::timeout_scope ts(20ms);
      char buf[8];
      EXPECT_THROW(net::receive_fds(b, asio::buffer(buf)), taiga::timeout_error);
    }
    a.close();
    char buf[8];
    boost::system::error_code ec;
    net::receive_fds(b, asio::buffer(buf), 4, ec);
    EXPECT_EQ(ec, asio::error::eof);
  });
}

TEST_P(unix_sockets, closing_the_listener_wakes_a_parked_accept) {
  rt().run([&] {
    auto l = net::unix_listener::bind(unique_abstract());
    auto t = taiga::spawn([&] {
      boost::system::error_code ec;
      net::unix_stream s = l.accept(ec);
      return ec;
    });
    taiga::test::wait_parked(t);
    l.close();
    EXPECT_EQ(t.join(), asio::error::operation_aborted);
    EXPECT_FALSE(l.is_open());
  });
}
