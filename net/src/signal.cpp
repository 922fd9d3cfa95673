// signal.cpp: waiting for POSIX signals (net/include/taiga/net/signal.hpp).
//
// Asio's signal_set installs its handler with sigaction when a signal gets
// its first registration (of any signal_set in the process) and puts back
// SIG_DFL when it loses its last. Here every taiga registration goes
// through one table that saves the disposition found before the first and
// restores it after the last, when Asio left SIG_DFL there (another Asio
// signal_set still holding the signal keeps Asio's handler). The table's
// mutex orders that with Asio's own add and remove.
#include <signal.h>

#include <algorithm>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <mutex>
#include <string>
#include <taiga/net/signal.hpp>
#include <vector>

namespace taiga::net {

namespace {

struct disposition_table {
  struct entry {
    unsigned count = 0;  // taiga registrations
    struct sigaction saved {};
  };
  std::mutex m;
  entry e[NSIG];
};

disposition_table& table() {
  static disposition_table t;
  return t;
}

std::string signal_name(int sig) {
  return "signal " + std::to_string(sig);
}

}  // namespace

struct signal_listener::state {
  explicit state(detail::io_poller& p) : home(&p), set(p.context()) {}
  ~state() { remove_all(); }
  detail::io_poller* home;
  asio::basic_signal_set<asio::io_context::executor_type> set;
  detail::direction rd;
  std::vector<int> sigs;

  void add(int sig, error_code& ec) {
    disposition_table& t = table();
    std::lock_guard lk(t.m);
    if (sig <= 0 || sig >= NSIG) {
      ec = asio::error::invalid_argument;
      return;
    }
    if (std::find(sigs.begin(), sigs.end(), sig) != sigs.end()) return;
    auto& e = t.e[sig];
    struct sigaction before {};
    if (e.count == 0 && ::sigaction(sig, nullptr, &before) != 0) {
      ec = error_code(errno, boost::system::system_category());
      return;
    }
    set.add(sig, ec);  // EINVAL for SIGKILL and SIGSTOP
    if (ec) return;
    if (e.count++ == 0) e.saved = before;
    sigs.push_back(sig);
  }

  void remove_all() noexcept {
    if (sigs.empty()) return;
    disposition_table& t = table();
    std::lock_guard lk(t.m);
    error_code ec;
    set.clear(ec);  // Asio: SIG_DFL for a signal that lost its last registration
    for (int sig : sigs) {
      auto& e = t.e[sig];
      if (--e.count != 0) continue;
      struct sigaction now {};
      if (::sigaction(sig, nullptr, &now) == 0 && (now.sa_flags & SA_SIGINFO) == 0 &&
          now.sa_handler == SIG_DFL)
        ::sigaction(sig, &e.saved, nullptr);
    }
    sigs.clear();
  }
};

std::unique_ptr<signal_listener::state> signal_listener::make(std::span<const int> signals,
                                                              error_code& ec, int& bad) {
  auto st = std::make_unique<state>(detail::current_poller());
  ec = {};
  for (int sig : signals) {
    st->add(sig, ec);
    if (ec) {
      bad = sig;
      return nullptr;  // ~state unregisters what was added
    }
  }
  return st;
}

signal_listener::signal_listener(std::span<const int> signals, error_code& ec) {
  int bad = 0;
  st_ = make(signals, ec, bad);
}

signal_listener::signal_listener(std::span<const int> signals) {
  error_code ec;
  int bad = 0;
  st_ = make(signals, ec, bad);
  if (ec) detail::throw_error(ec, "listen to", signal_name(bad));
}

signal_listener::signal_listener(std::initializer_list<int> signals)
    : signal_listener(std::span<const int>(signals.begin(), signals.size())) {}

signal_listener::signal_listener(signal_listener&&) noexcept = default;
signal_listener& signal_listener::operator=(signal_listener&& o) noexcept {
  if (this != &o) {
    close();
    st_ = std::move(o.st_);
  }
  return *this;
}
signal_listener::~signal_listener() = default;

int signal_listener::wait(error_code& ec, call_site site) {
  if (!st_) throw usage_error("taiga::net: wait on a signal_listener that is not open");
  state& s = *st_;
  std::unique_lock g(s.rd.gate);  // E2; an interruption point
  std::size_t n = detail::await_op(
      s.rd, *s.home, park_cause(park_reason::io_signal, "net signal wait"), &s, nullptr, ec,
      [&](auto&& h) { s.set.async_wait(std::move(h)); }, site);
  return ec ? 0 : static_cast<int>(n);
}

int signal_listener::wait(call_site site) {
  error_code ec;
  int sig = wait(ec, site);
  if (ec) {
    std::string names;
    for (int s : st_->sigs) names += (names.empty() ? "" : ", ") + std::to_string(s);
    detail::throw_error(ec, "wait for", "signals " + names);
  }
  return sig;
}

void signal_listener::close() noexcept {
  st_.reset();
}

bool signal_listener::is_open() const noexcept {
  return st_ != nullptr;
}

int wait_for_signal(std::span<const int> signals, error_code& ec, taiga::detail::call_site site) {
  signal_listener l(signals, ec);
  if (ec) return 0;
  return l.wait(ec, site);
}

int wait_for_signal(std::initializer_list<int> signals, taiga::detail::call_site site) {
  signal_listener l(signals);
  return l.wait(site);
}

}  // namespace taiga::net
