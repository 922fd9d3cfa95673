// A TCP chat server on taiga's actors and taiga::net: each room and each
// connection is an actor under a supervisor, so a room that crashes is
// restarted and its members are told, while the other rooms and the
// connections carry on.
//
//   chat_server [--port P] [--workers N]      serves until killed
//   chat_server --self-test [--workers N]     serves on an ephemeral port, runs
//       clients against it (join, talk, one room made to crash and come back,
//       the other room undisturbed) and exits 0 when every check holds.
//
// The line protocol (one command per line):
//   NICK name    set the name shown to others (default: guest<N>)
//   JOIN room    join a room (leaving the one before); rooms: general, random
//   SAY text     say something in the room: everyone in it, you too, gets
//                "<room> <name>: text"
//   CRASH        make the room crash (to show the supervisor at work)
// Server lines start with "*" for news: "* joined general",
// "* general restarted", "* error ...".
//
// The tree:   chat (one_for_one)
//               +- rooms (one_for_one): room "general", room "random"
//               |    each registered as "chat.room.<name>"
//               +- connections (one_for_one): one temporary child per
//                    connection, added by the acceptor
//               +- acceptor: accepts connections, asks "connections" to
//                    start a child for each
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <taiga/channels.hpp>
#include <taiga/net.hpp>
#include <variant>
#include <vector>

namespace net = taiga::net;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> room_names{"general", "random"};

// ---- rooms -------------------------------------------------------------------

// What a connection actor gets: a line to write to its client, a line its
// reader read, the end of its client's input. And a room's down (monitor).
struct to_client {
  std::string line;
};
struct from_client {
  std::string line;
};
struct client_closed {};
using conn_msg = std::variant<to_client, from_client, client_closed>;

// [doc:room]
struct join_room {
  std::string nick;
  taiga::actor_ref<conn_msg> member;
};
struct say {
  std::string nick;
  std::string text;
};
struct crash {};
using room_msg = std::variant<join_room, say, crash>;

// A room: its members, told every line said in it. A member that ends
// (monitored) or moves to another room is dropped from the list.
void room(taiga::actor_self<room_msg>& self, std::string name) {
  std::map<std::uint64_t, taiga::actor_ref<conn_msg>> members;
  for (;;) {
    self.receive([&](auto& m) {
      using M = std::decay_t<decltype(m)>;
      if constexpr (std::is_same_v<M, join_room>) {
        members[m.member.id()] = m.member;
        self.monitor(m.member);
        (void)m.member.tell(to_client{"* joined " + name});
      } else if constexpr (std::is_same_v<M, say>) {
        for (auto it = members.begin(); it != members.end();) {
          // A member that has ended answers dead at once: forget it.
          if (it->second.tell(to_client{name + " " + m.nick + ": " + m.text}) ==
              taiga::send_status::dead) {
            it = members.erase(it);
          } else {
            ++it;
          }
        }
      } else if constexpr (std::is_same_v<M, crash>) {
        throw std::runtime_error("room " + name + " crashed on request");
      } else if constexpr (std::is_same_v<M, taiga::down>) {
        members.erase(m.actor.id());
      }
    });
  }
}
// [/doc]

taiga::actor_ref<room_msg> find_room(const std::string& name) {
  // Right after a crash the name is free until the supervisor has
  // restarted the room: look again for a while.
  for (int i = 0; i < 2000; ++i) {
    if (auto r = taiga::whereis<room_msg>("chat.room." + name)) return *r;
    taiga::this_tasklet::sleep_for(1ms);
  }
  return {};
}

// ---- connections -------------------------------------------------------------

// One connection: a reader tasklet turns the client's lines into
// from_client messages; this actor handles them, writes what rooms send,
// and rejoins its room when the room is restarted.
void connection(taiga::actor_self<conn_msg>& self, std::shared_ptr<net::tcp_stream> s, int n) {
  auto me = self.ref();
  auto reader = taiga::spawn([s, me] {
    std::string buf;
    char chunk[1024];
    boost::system::error_code ec;
    for (;;) {
      std::size_t got = s->read_some(asio::buffer(chunk), ec);
      if (ec) break;
      buf.append(chunk, got);
      for (std::size_t nl; (nl = buf.find('\n')) != std::string::npos; buf.erase(0, nl + 1)) {
        std::string line = buf.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (me.tell(from_client{line}) == taiga::send_status::dead) return;
      }
    }
    (void)me.tell(client_closed{});
  });
  std::string nick = "guest" + std::to_string(n);
  std::string room_name;
  taiga::actor_ref<room_msg> current;
  auto write = [&](const std::string& line) {
    boost::system::error_code ec;
    s->write_all(asio::buffer(line + "\n"), ec);
  };
  auto enter = [&](const std::string& name) {
    current = find_room(name);
    if (!current) return write("* error: no room " + name);
    room_name = name;
    self.monitor(current);
    (void)current.tell(join_room{nick, me});
  };
  bool open = true;
  while (open) {
    self.receive([&](auto& m) {
      using M = std::decay_t<decltype(m)>;
      if constexpr (std::is_same_v<M, to_client>) {
        write(m.line);
      } else if constexpr (std::is_same_v<M, client_closed>) {
        open = false;
      } else if constexpr (std::is_same_v<M, taiga::down>) {
        // The room we are in ended (it crashed): its supervisor starts a
        // fresh one under the same name; tell the client and join it.
        if (m.actor == taiga::any_actor_ref(current)) {
          write("* " + room_name + " restarted");
          enter(room_name);
        }
      } else if constexpr (std::is_same_v<M, from_client>) {
        const std::string& l = m.line;
        if (l.rfind("NICK ", 0) == 0) {
          nick = l.substr(5);
        } else if (l.rfind("JOIN ", 0) == 0) {
          enter(l.substr(5));
        } else if (l.rfind("SAY ", 0) == 0 && current) {
          (void)current.tell(say{nick, l.substr(4)});
        } else if (l == "CRASH" && current) {
          (void)current.tell(crash{});
        } else {
          write("* error: " + l);
        }
      }
    });
  }
  reader.join();
}

// ---- the tree ----------------------------------------------------------------

void acceptor(taiga::actor_self<int>& self, std::shared_ptr<net::tcp_listener> l) {
  (void)self;
  auto conns = taiga::whereis<taiga::supervisor_msg>("chat.connections");
  if (!conns) throw std::runtime_error("no connections supervisor");
  for (int n = 1;; ++n) {
    auto s = std::make_shared<net::tcp_stream>(l->accept());
    s->no_delay(true);
    taiga::child_spec c = taiga::actor_child("conn" + std::to_string(n), connection, s, n);
    c.restart = taiga::restart_type::temporary;  // a connection is not restarted
    c.shutdown = 100ms;
    (void)conns->ask(taiga::start_child{c}, 5s);
  }
}

// [doc:chat_tree]
taiga::supervisor_ref start_chat(std::shared_ptr<net::tcp_listener> l) {
  std::vector<taiga::child_spec> rooms;
  for (const auto& name : room_names) {
    taiga::child_spec r = taiga::actor_child(name, room, name);
    r.registered_name = "chat.room." + name;  // follows the live incarnation
    rooms.push_back(r);
  }
  taiga::child_spec conns =
      taiga::supervisor_child("connections", {.name = "connections", .max_restarts = 1000}, {});
  conns.registered_name = "chat.connections";
  return taiga::spawn_supervisor(
      {.name = "chat", .strategy = taiga::restart_strategy::rest_for_one},
      {taiga::supervisor_child("rooms", {.name = "rooms", .max_restarts = 10}, rooms), conns,
       taiga::actor_child("acceptor", acceptor, l)});
}
// [/doc]

// ---- self-test ---------------------------------------------------------------

// A test client: writes commands, reads lines (each read bounded).
struct client {
  net::tcp_stream s;
  std::string buf;
  explicit client(unsigned short port)
      : s(net::connect({asio::ip::address_v4::loopback(), port}, {.no_delay = true})) {}
  void send(const std::string& line) { s.write_all(asio::buffer(line + "\n")); }
  std::string line() {
    taiga::timeout_scope t(5s);
    char chunk[512];
    std::size_t nl;
    while ((nl = buf.find('\n')) == std::string::npos)
      buf.append(chunk, s.read_some(asio::buffer(chunk)));
    std::string l = buf.substr(0, nl);
    buf.erase(0, nl + 1);
    return l;
  }
  // True if nothing comes within `d`.
  bool quiet_for(std::chrono::milliseconds d) {
    if (!buf.empty()) return false;
    try {
      taiga::timeout_scope t(d);
      char c;
      buf.append(&c, s.read_some(asio::buffer(&c, 1)));
      return false;
    } catch (const taiga::timeout_error&) {
      return true;
    }
  }
};

int failures = 0;
void expect(const std::string& got, const std::string& want) {
  if (got == want) return;
  std::fprintf(stderr, "chat_server self-test: got \"%s\", want \"%s\"\n", got.c_str(),
               want.c_str());
  ++failures;
}

int self_test(taiga::runtime& rt) {
  return rt.run([] {
    auto l = std::make_shared<net::tcp_listener>(
        net::tcp_listener::bind({asio::ip::address_v4::loopback(), 0}));
    const unsigned short port = l->local_endpoint().port();
    auto chat = start_chat(l);

    client alice(port), bob(port), carol(port);
    for (auto [c, nick, rm] :
         {std::tuple{&alice, "alice", "general"}, std::tuple{&bob, "bob", "general"},
          std::tuple{&carol, "carol", "random"}}) {
      c->send(std::string("NICK ") + nick);
      c->send(std::string("JOIN ") + rm);
      expect(c->line(), std::string("* joined ") + rm);
    }
    auto random_before = taiga::whereis("chat.room.random");

    alice.send("SAY hello");
    expect(alice.line(), "general alice: hello");
    expect(bob.line(), "general alice: hello");

    // general crashes: its members are told and rejoin the restarted room.
    bob.send("CRASH");
    for (client* c : {&alice, &bob}) {
      expect(c->line(), "* general restarted");
      expect(c->line(), "* joined general");
    }
    bob.send("SAY still here?");
    expect(alice.line(), "general bob: still here?");
    expect(bob.line(), "general bob: still here?");

    // Nothing else was disturbed: random is the same actor, carol heard
    // nothing and is still served.
    auto random_after = taiga::whereis("chat.room.random");
    if (!random_before || !random_after || !(*random_before == *random_after)) {
      std::fprintf(stderr, "chat_server self-test: room random was restarted\n");
      ++failures;
    }
    if (!carol.quiet_for(50ms)) {
      std::fprintf(stderr, "chat_server self-test: carol heard something\n");
      ++failures;
    }
    carol.send("SAY hi");
    expect(carol.line(), "random carol: hi");

    auto kids = chat.ask(taiga::which_children{}, 5s);
    std::uint64_t restarts = 0;
    if (kids) {
      auto rooms = taiga::actor_ref_cast<taiga::supervisor_msg>(kids->at(0).ref);
      for (const auto& k : *rooms.ask(taiga::which_children{}, 5s)) restarts += k.restarts;
    }
    if (restarts != 1) {
      std::fprintf(stderr, "chat_server self-test: %llu room restarts, want 1\n",
                   static_cast<unsigned long long>(restarts));
      ++failures;
    }

    chat.tell(taiga::stop_supervisor{});
    auto why = chat.join();
    l->close();
    std::printf(
        "chat_server self-test: 3 clients, 2 rooms, 1 room crash and restart; %d failures; "
        "chat ended %s\n",
        failures, why.describe().c_str());
    return failures == 0 && why.kind == taiga::exit_kind::normal ? 0 : 1;
  });
}

}  // namespace

int main(int argc, char** argv) {
  unsigned workers = taiga::all_cores;
  unsigned short port = 7010;
  bool test = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--self-test") == 0) {
      test = true;
    } else if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      workers = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: chat_server [--self-test] [--port P] [--workers N]\n");
      return 2;
    }
  }
  taiga::runtime rt(taiga::runtime_config{.workers = workers});
  if (test) return self_test(rt);
  return rt.run([port] {
    auto l =
        std::make_shared<net::tcp_listener>(net::tcp_listener::bind({asio::ip::tcp::v4(), port}));
    std::printf("chat_server: listening on port %u\n", static_cast<unsigned>(port));
    std::fflush(stdout);
    auto chat = start_chat(l);
    auto why = chat.join();
    std::fprintf(stderr, "chat_server: ended: %s\n", why.describe().c_str());
    return why.kind == taiga::exit_kind::normal ? 0 : 1;
  });
}
