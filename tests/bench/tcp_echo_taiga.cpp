// The taiga server of bench_tcp_echo: a runtime of W workers, the main
// tasklet accepts, one tasklet per connection reads into a 4 KiB buffer and
// writes back what it read (taiga::net's tcp_stream parks the tasklet while
// the socket is not ready). Built only when the taiga::net target exists;
// bench_tcp_echo runs it in a child process (`--serve taiga --threads W`).
#include <taiga/net.hpp>
#include <taiga/runtime.hpp>

#include <boost/asio.hpp>
#include <cstdio>
#include <cstdlib>

#include "tcp_echo_servers.hpp"

void serve_taiga_echo(unsigned workers, void (*report_port)(unsigned short)) {
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  rt.run([&] {
    auto l = taiga::net::tcp_listener::bind(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0),
        {.backlog = 4096});
    report_port(l.local_endpoint().port());
    for (;;) {
      taiga::net::tcp_stream s = l.accept();
      // TCP_NODELAY like the Asio peer (Go sets it on every connection).
      s.no_delay(true);
      taiga::spawn([s = std::move(s)]() mutable {
        char buf[4096];
        boost::system::error_code ec;
        for (;;) {
          std::size_t n = s.read_some(boost::asio::buffer(buf), ec);
          if (ec) return;
          s.write_all(boost::asio::buffer(buf, n), ec);
          if (ec) return;
        }
      }).detach();
    }
  });
  std::fprintf(stderr, "tcp_echo_taiga: the accept loop ended\n");
  std::exit(1);
}
