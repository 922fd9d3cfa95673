// The I/O hook: how an event source (taiga::net's Asio contexts) plugs into
// the worker loops without the runtime knowing what a socket is.
//
// Each worker of a runtime may own one poller. The worker
//   - polls it (never blocking) when its own queues run dry, before it
//     steals (Go's findRunnable), and from its loop at most every
//     poll_interval while the poller has operations in flight, so a stream
//     of local work cannot starve I/O;
//   - when it has nothing to do, waits in it instead of sleeping on its
//     futex, up to its next timer; worker::unpark interrupts that wait;
// spinning workers poll the pollers of busy workers (those running a
// tasklet) that have operations in flight and were not polled for
// poll_interval, and sysmon polls one left unpolled for 10 ms while its
// worker is stuck in one tasklet (it must not stall its connections:
// tokio#4730). An embedded
// runtime's run_once() polls worker 0's poller; its drive loop waits in it.
// The protocol that keeps wake-ups from being lost is in
// runtime/src/scheduler.cpp ("Idle workers", I6).
//
// A poller's completions must only wake tasklets (wake_slot::signal, or
// claim/complete): they run inside poll() or wait(), on the worker's main
// context, a spinner or sysmon, and must not switch or run user code.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace taiga {

class runtime;

class poller {
 public:
  virtual ~poller() = default;
  /// Runs the completions that are ready now, without blocking; returns
  /// how many ran. Any thread; may run concurrently with wait() on the
  /// owner (then it only runs what is ready).
  virtual std::size_t poll() = 0;
  /// The owning worker only: blocks until a completion ran, `deadline_ns`
  /// (steady_clock nanoseconds since its epoch; INT64_MAX: none) passed, or
  /// interrupt() was called (also when that call came first, since the last
  /// wait: an interrupt is never lost).
  virtual void wait(std::int64_t deadline_ns) = 0;
  /// Any thread, noexcept, may be called often: makes the owner's wait()
  /// return soon.
  virtual void interrupt() noexcept = 0;
  /// Operations in flight (a relaxed read): the worker polls only while
  /// this is not zero, and deadlock detection counts them as wakeable.
  virtual std::size_t in_flight() const noexcept = 0;
};

/// How often a busy worker (or a spinner, for another worker) polls a
/// poller that has operations in flight.
inline constexpr std::chrono::microseconds poll_interval{50};

/// Installs pollers on every worker of `rt`, made by `make(worker_index)`,
/// once per runtime: later calls return at once. Any thread, at any time
/// while the runtime runs (sleeping workers are woken to wait in their new
/// poller). Throws what `make` throws; then none is installed.
void install_pollers(runtime& rt, const std::function<std::unique_ptr<poller>(unsigned)>& make);
/// Worker `index`'s poller, or nullptr before install_pollers.
poller* poller_of(runtime& rt, unsigned index) noexcept;

}  // namespace taiga
