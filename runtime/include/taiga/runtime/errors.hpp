#pragma once

#include <chrono>

#include <stdexcept>
#include <string>
#include <taiga/runtime/source_location.hpp>
#include <vector>

namespace taiga {

/// Raised inside a tasklet by kill(). It ends the tasklet silently when it
/// leaves the tasklet's function. It deliberately does not derive from
/// std::exception, so `catch (const std::exception&)` does not swallow a kill
/// (Stackless's TaskletExit derives from SystemExit for the same reason).
/// Code that catches it with `catch (...)` must rethrow.
struct tasklet_exit {};

/// Thrown by join() when the joined tasklet was killed.
class tasklet_killed : public std::runtime_error {
 public:
  tasklet_killed() : std::runtime_error("taiga: the joined tasklet was killed") {}
};

/// Raised in parked tasklets when the runtime finds that none of them can
/// ever be woken (see runtime_config::detect_deadlock).
class deadlock_error : public std::runtime_error {
 public:
  explicit deadlock_error(const std::string& what) : std::runtime_error(what) {}
};

/// A broken rule of the fiber layer: switching to a finished fiber, to
/// oneself, or to a fiber of another thread; starting with a value.
class fiber_error : public std::logic_error {
 public:
  explicit fiber_error(const std::string& what) : std::logic_error(what) {}
};

/// A taiga call made where it cannot work (no current runtime, a tasklet-only
/// call from a plain thread, joining oneself, ...).
class usage_error : public std::logic_error {
 public:
  explicit usage_error(const std::string& what) : std::logic_error(what) {}
};

/// A timed wait ran out (thrown only by calls documented to throw it).
class timeout_error : public std::runtime_error {
 public:
  timeout_error() : std::runtime_error("taiga: timed out") {}
};

/// What a tasklet was, for diagnostics (error handler, watchdog, reports).
class tasklet_info {
 public:
  std::uint64_t id = 0;
  std::string name;
  taiga::source_location spawn_site;
  std::string state;
  std::string parked_on;  // what it waits for, when parked
  // The object it waits on (a channel, a mutex, the tasklet it joins), when
  // parked: two tasklets with the same address wait on the same thing.
  const void* parked_object = nullptr;
  // The file descriptor it waits on (an I/O wait), or -1.
  int parked_fd = -1;
  // Where it parked, when parked and the primitive passed its caller's site
  // (join, sleep_for, ...): the user's blocking call. Empty (line 0) if not.
  taiga::source_location parked_at;
  // How long it has been parked, for parks that began while a trace was
  // recording (taiga/runtime/trace.hpp); -1 when not known.
  std::chrono::milliseconds parked_for{-1};
  // The worker it runs or last ran on; -1 when it has not started, or has
  // ended and left the registry (the error handler's view of a detached
  // tasklet that threw: its stack, where the worker was kept, is gone).
  int worker = -1;
  std::string describe() const;
};

struct deadlock_report {
  std::vector<tasklet_info> parked;
  std::string text() const;
};

}  // namespace taiga
