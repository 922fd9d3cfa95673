// POSIX signals for tasklets: park until one of a set of signals arrives.
//
//     int sig = taiga::net::wait_for_signal({SIGINT, SIGTERM});   // parks
//
//     taiga::net::signal_listener hup({SIGHUP});                  // caught from here on
//     for (;;) { hup.wait(); reload(); }                          // one at a time
//
// Built on Asio's signal_set: while a listener (or a wait_for_signal) is
// registered, its signals are caught process-wide by Asio's handler (which
// writes to a pipe; the tasklet wakes on a worker, never in the handler)
// instead of their previous disposition. When the last taiga listener of a
// signal goes, its previous disposition (a handler of the program's, SIG_IGN
// or SIG_DFL) is put back, unless some other Asio signal_set still holds
// it. A signal that arrives while the listener exists but nobody waits is
// queued (one per signal number, as the kernel does) for the next wait.
//
// A kill, throw_into or expired timeout_scope ends a parked wait and
// cancels it; a signal that arrives meanwhile stays queued in the
// listener. Errors (a signal that cannot be caught: SIGKILL, SIGSTOP, or an
// invalid number) throw std::system_error naming the signal, or set an
// error_code&.
#pragma once

#include <initializer_list>
#include <memory>
#include <span>
#include <taiga/net/detail/io.hpp>

namespace taiga::net {

/// Catches and queues a set of signals for as long as it lives; wait()
/// parks until one arrives. One waiter at a time (two take turns).
class signal_listener {
 public:
  using call_site = taiga::detail::call_site;

  /// Listens to nothing.
  signal_listener() = default;
  /// Registers `signals` now (on the calling tasklet's worker's I/O
  /// context): from here on they are caught and queued. Throws
  /// system_error naming a signal that cannot be caught.
  explicit signal_listener(std::initializer_list<int> signals);
  explicit signal_listener(std::span<const int> signals);
  signal_listener(std::span<const int> signals, error_code& ec);
  signal_listener(signal_listener&&) noexcept;
  signal_listener& operator=(signal_listener&&) noexcept;
  /// Unregisters (close()).
  ~signal_listener();

  /// Parks until one of the signals arrives (returns at once with one that
  /// is queued); returns its number. Throws system_error; usage_error on a
  /// listener that is closed (or default-constructed).
  int wait(call_site site = call_site::current());
  int wait(error_code& ec, call_site site = call_site::current());

  /// Stops catching the signals (their previous disposition is back once no
  /// other listener holds them); queued ones are dropped. Must not race a
  /// wait of another tasklet on this listener: kill that one first.
  void close() noexcept;
  bool is_open() const noexcept;

 private:
  struct state;
  static std::unique_ptr<state> make(std::span<const int> signals, error_code& ec, int& bad);
  std::unique_ptr<state> st_;
};

/// Parks until one of `signals` arrives; returns its number. The signals
/// are caught only during the call (a signal_listener catches them between
/// waits too). Throws system_error naming a signal that cannot be caught.
int wait_for_signal(std::initializer_list<int> signals,
                    taiga::detail::call_site site = taiga::detail::call_site::current());
int wait_for_signal(std::span<const int> signals, error_code& ec,
                    taiga::detail::call_site site = taiga::detail::call_site::current());

}  // namespace taiga::net
