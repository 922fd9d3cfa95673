// The Boost.Asio peer of bench_tcp_echo: the idiomatic fast callback echo
// server. N threads, each running its own io_context (concurrency hint 1: no
// locking inside) with its own acceptor on the same port (SO_REUSEPORT: the
// kernel spreads the connections over the acceptors). Each connection:
// async_read_some into a 4 KiB buffer of its own, async_write of what was
// read, repeat. Built into bench_tcp_echo, which runs it in a child process
// (`bench_tcp_echo --serve asio --threads N`).
#include <boost/asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "tcp_echo_servers.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket s) : socket_(std::move(s)) {}

  void start() { read(); }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                    boost::system::error_code ec, std::size_t n) {
      if (!ec) self->write(n);
    });
  }
  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buf_, n),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  tcp::socket socket_;
  char buf_[4096];
};

class server {
 public:
  server(asio::io_context& io, unsigned short port) : acceptor_(io) {
    tcp::endpoint ep(asio::ip::address_v4::loopback(), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
    acceptor_.bind(ep);
    acceptor_.listen(4096);
    accept();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (!ec) {
        s.set_option(tcp::no_delay(true), ec);
        std::make_shared<session>(std::move(s))->start();
      } else if (ec == asio::error::no_descriptors) {
        std::fprintf(stderr, "asio_echo_server: accept: %s\n", ec.message().c_str());
      }
      accept();
    });
  }

  tcp::acceptor acceptor_;
};

}  // namespace

void taiga_bench::serve_asio_echo(unsigned threads, void (*report_port)(unsigned short)) {
  if (threads == 0) threads = 1;
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<std::unique_ptr<server>> servers;
  unsigned short port = 0;
  try {
    for (unsigned i = 0; i < threads; ++i) {
      ios.push_back(std::make_unique<asio::io_context>(1));
      servers.push_back(std::make_unique<server>(*ios.back(), port));
      port = servers.back()->port();  // the first binds port 0, the others its port
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_echo_server: %s\n", e.what());
    std::exit(1);
  }
  report_port(port);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io = *ios[i]] { io.run(); });
  ios[0]->run();  // never returns: every io_context always has an accept pending
  for (auto& t : pool) t.join();
  std::exit(0);
}
