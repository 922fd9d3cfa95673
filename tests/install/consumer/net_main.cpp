// taiga::net from an installed taiga: a loopback echo of one message.
#include <taiga/net.hpp>

#include <cstdio>
#include <string>

int main() {
  std::string got = taiga::run(
      [] {
        namespace net = taiga::net;
        auto l = net::tcp_listener::bind({boost::asio::ip::address_v4::loopback(), 0});
        auto server = taiga::spawn([&] {
          net::tcp_stream s = l.accept();
          std::string buf;
          std::size_t n = s.read_until(buf, "\n", 100);
          s.write_all(boost::asio::buffer(buf.data(), n));
        });
        net::tcp_stream c = net::connect(l.local_endpoint());
        c.write_all(boost::asio::buffer(std::string("hello\n")));
        std::string back;
        back.resize(c.read_until(back, "\n", 100));
        server.join();
        return back;
      },
      taiga::runtime_config{.workers = 2, .name = "consumer_net"});
  std::printf("consumer_net got %s", got.c_str());
  return got == "hello\n" ? 0 : 1;
}
