// serve.cpp: the accept loop and connection tasklets of serve()
// (net/include/taiga/net/serve.hpp).
//
// Bookkeeping (counters, the connection handles, `stopping`) is under a
// std::mutex that is never held across a park point: a connection's
// tasklet takes it once at its end, the accept loop once per connection.
// Everything that waits parks on taiga primitives outside it:
//   - the accept loop on `wake` (one waiter: itself), at the connection
//     limit and in a backoff sleep; close() and a connection's end signal
//     it, and it rechecks its condition under the mutex after each reset,
//     so a signal is never lost;
//   - stop() and join() on `finished`, set once when the accept loop has
//     ended and no connection is left.
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <taiga/net/serve.hpp>
#include <taiga/runtime.hpp>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace taiga::net {

namespace detail {

struct server_state {
  tcp_listener* l = nullptr;
  std::unique_ptr<tcp_listener> owned;
  conn_handler handler;
  serve_options opt;
  tcp::endpoint local;

  std::mutex m;  // what follows, up to `wake`; never held across a park
  bool stopping = false;
  bool loop_ended = false;
  std::uint64_t next_id = 0;
  std::unordered_map<std::uint64_t, taiga::tasklet<void>> conns;
  std::unordered_set<std::uint64_t> killed_ids;  // by stop(), counted once
  serve_stats st;
  error_code accept_error;

  taiga::wake_slot wake;   // the accept loop's
  taiga::event finished;   // the loop ended and no connection is left
  taiga::mutex stop_gate;  // joins the accept loop once
  taiga::tasklet<void> loop;

  // Stops accepting; true for the first call.
  bool close() noexcept {
    bool first;
    {
      std::lock_guard g(m);
      first = !stopping;
      stopping = true;
    }
    if (first) l->close();
    wake.signal();
    return first;
  }
};

namespace {

void report(server_state& s, std::exception_ptr e, const tcp::endpoint& peer) {
  try {
    if (s.opt.on_error) {
      s.opt.on_error(e, peer);
      return;
    }
    std::string what;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
      what = "an exception not derived from std::exception";
    }
    std::string line =
        peer == tcp::endpoint()
            ? "taiga::net::serve " + describe(s.local) + ": accept loop ended: " + what
            : "taiga::net::serve " + describe(s.local) + ": connection from " + describe(peer) +
                  ": " + what;
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  } catch (const taiga::tasklet_exit&) {
    throw;
  } catch (...) {  // on_error's own exception: dropped (it must not stop the server)
  }
}

// Accept errors that no waiting cures: the loop ends.
bool fatal(const error_code& ec) {
  if (ec.category() != boost::system::system_category()) return false;
  switch (ec.value()) {
    case EBADF:
    case EINVAL:  // not listening
    case ENOTSOCK:
    case EFAULT:
      return true;
    default:
      return false;
  }
}

bool out_of_fds(const error_code& ec) {
  return ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open ||
         ec == boost::system::errc::too_many_files_open_in_system;
}

// Parks the accept loop until `wake` is signaled or `until` (when given)
// passes.
void park_loop(server_state& s, park_cause what,
               const std::chrono::steady_clock::time_point* until) {
  wake_status w = until ? s.wake.wait_until(*until, what, &s) : s.wake.wait(what, &s);
  if (w == wake_status::interrupted) taiga::raise_interruption();
}

void run_connection(const std::shared_ptr<server_state>& sp, std::uint64_t id, tcp_stream& c,
                    const tcp::endpoint& peer) {
  server_state& s = *sp;
  struct at_end {
    server_state& s;
    std::uint64_t id;
    ~at_end() {
      taiga::tasklet<void> self;  // dropped after the unlock: it detaches
      bool fin;
      {
        std::lock_guard g(s.m);
        if (auto it = s.conns.find(id); it != s.conns.end()) {
          self = std::move(it->second);
          s.conns.erase(it);
        }
        --s.st.active;
        fin = s.loop_ended && s.st.active == 0;
      }
      if (s.opt.max_connections != 0) s.wake.signal();
      if (fin) s.finished.set();
    }
  } end{s, id};
  try {
    s.handler(c);
  } catch (const taiga::tasklet_exit&) {
    throw;  // a kill: not an error
  } catch (...) {
    {
      std::lock_guard g(s.m);
      ++s.st.handler_errors;
    }
    report(s, std::current_exception(), peer);
  }
}

void accept_loop(const std::shared_ptr<server_state>& sp) {
  server_state& s = *sp;
  struct at_end {
    server_state& s;
    ~at_end() {
      bool fin;
      {
        std::lock_guard g(s.m);
        s.loop_ended = true;
        fin = s.st.active == 0;
      }
      if (fin) s.finished.set();
    }
  } end{s};
  const std::size_t limit = s.opt.max_connections;
  auto backoff = s.opt.backoff_min;
  // Sleeps the backoff (the listener stays readable while an error lasts,
  // so an immediate retry would spin); false when close() cut it short.
  auto back_off = [&] {
    auto until = std::chrono::steady_clock::now() + backoff;
    backoff = std::min(backoff * 2, s.opt.backoff_max);
    while (std::chrono::steady_clock::now() < until) {
      s.wake.reset();  // before the check: a signal after it is kept
      {
        std::lock_guard g(s.m);
        if (s.stopping) return false;
      }
      park_loop(s, park_cause(park_reason::sleep, "net serve: accept backoff"), &until);
    }
    return true;
  };
  for (;;) {
    // The limit: wait (accepting nothing) until a connection ends.
    bool counted = false;
    for (;;) {
      s.wake.reset();
      {
        std::lock_guard g(s.m);
        if (s.stopping) return;
        if (limit == 0 || s.st.active < limit) break;
        if (!counted) ++s.st.limit_waits;
        counted = true;
      }
      park_loop(s, park_cause(park_reason::other, "net serve: at max_connections"), nullptr);
    }

    tcp::endpoint peer;
    error_code ec;
    tcp_stream c = s.l->accept(peer, ec);
    if (ec) {
      bool end = fatal(ec);
      {
        std::lock_guard g(s.m);
        if (s.stopping) return;
        if (ec == asio::error::operation_aborted) return;  // the listener was closed
        ++s.st.accept_errors;
        if (out_of_fds(ec)) ++s.st.emfile_backoffs;
        if (end) s.accept_error = ec;
      }
      if (end) {
        try {
          detail::throw_error(ec, "accept on", describe(s.local));
        } catch (const std::system_error&) {
          report(s, std::current_exception(), tcp::endpoint());
        }
        return;
      }
      if (!back_off()) return;
      continue;
    }
    backoff = s.opt.backoff_min;

    bool spawned = false;
    try {
      spawn_options so;
      so.name = s.opt.name + " " + describe(peer);
      std::lock_guard g(s.m);
      std::uint64_t id = ++s.next_id;
      // Registered under the lock, so the tasklet (which may start at once
      // on another worker) finds its handle when it ends.
      auto& slot = s.conns[id];  // first: nothing can throw once it runs
      try {
        slot = taiga::spawn(
            so, [sp, id, peer, c = std::move(c)]() mutable { run_connection(sp, id, c, peer); });
      } catch (...) {
        s.conns.erase(id);
        throw;
      }
      ++s.st.accepted;
      if (++s.st.active > s.st.peak) s.st.peak = s.st.active;
      spawned = true;
    } catch (const std::bad_alloc&) {  // no memory for a stack: as ENOMEM
    } catch (const std::system_error&) {
    }
    if (!spawned) {
      {
        std::lock_guard g(s.m);
        ++s.st.accept_errors;
      }
      if (!back_off()) return;
    }
  }
}

}  // namespace
}  // namespace detail

server serve_impl(tcp_listener* l, std::unique_ptr<tcp_listener> owned, detail::conn_handler h,
                  serve_options o) {
  if (l == nullptr || !l->is_open())
    throw usage_error("taiga::net::serve: the listener is not open");
  if (!h) throw usage_error("taiga::net::serve: empty handler");
  if (o.backoff_min.count() <= 0) o.backoff_min = std::chrono::milliseconds(1);
  if (o.backoff_max < o.backoff_min) o.backoff_max = o.backoff_min;
  auto s = std::make_shared<detail::server_state>();
  s->l = l;
  s->owned = std::move(owned);
  s->handler = std::move(h);
  s->opt = std::move(o);
  s->local = l->local_endpoint();
  spawn_options so;
  so.name = s->opt.name + " " + detail::describe(s->local);
  s->loop = taiga::spawn(so, [s] { detail::accept_loop(s); });
  return server(std::move(s));
}

server::server(std::shared_ptr<detail::server_state> s) noexcept : st_(std::move(s)) {}
server::server(server&&) noexcept = default;

server& server::operator=(server&& o) noexcept {
  if (this != &o) {
    if (st_) {
      try {
        stop(std::chrono::steady_clock::now());
      } catch (...) {
      }
    }
    st_ = std::move(o.st_);
  }
  return *this;
}

server::~server() {
  if (!st_) return;
  try {
    stop(std::chrono::steady_clock::now());
  } catch (...) {  // a kill of the caller while it waited: the tasklets still unwind
  }
}

void server::close() noexcept {
  if (st_) st_->close();
}

void server::stop(std::chrono::steady_clock::time_point deadline) {
  if (!st_) return;
  detail::server_state& s = *st_;
  s.close();
  {
    std::unique_lock g(s.stop_gate);
    if (s.loop.joinable()) {
      taiga::tasklet<void> t = std::move(s.loop);
      try {
        t.join();
      } catch (const taiga::tasklet_killed&) {  // a runtime shutdown
      }
    }
  }
  if (s.finished.is_set()) return;
  // Ask first (outside the lock: request_stop runs the handlers' callbacks).
  std::vector<std::stop_source> asks;
  {
    std::lock_guard g(s.m);
    asks.reserve(s.conns.size());
    for (auto& [id, t] : s.conns) asks.push_back(t.get_stop_source());
  }
  for (auto& a : asks) a.request_stop();
  asks.clear();
  if (s.finished.wait_until(deadline)) return;
  {
    std::lock_guard g(s.m);
    for (auto& [id, t] : s.conns) {
      if (t.alive()) t.kill();
      if (s.killed_ids.insert(id).second) ++s.st.killed;  // once, whoever stops
    }
  }
  s.finished.wait();
}

void server::join() {
  if (!st_) return;
  st_->finished.wait();
  std::unique_lock g(st_->stop_gate);
  if (st_->loop.joinable()) {
    taiga::tasklet<void> t = std::move(st_->loop);
    try {
      t.join();
    } catch (const taiga::tasklet_killed&) {
    }
  }
}

bool server::done() const noexcept {
  return st_ == nullptr || st_->finished.is_set();
}

serve_stats server::stats() const noexcept {
  if (!st_) return {};
  std::lock_guard g(st_->m);
  return st_->st;
}

error_code server::accept_error() const {
  if (!st_) return {};
  std::lock_guard g(st_->m);
  return st_->accept_error;
}

tcp::endpoint server::local_endpoint() const {
  if (!st_) throw usage_error("taiga::net::server: no server");
  return st_->local;
}

}  // namespace taiga::net
