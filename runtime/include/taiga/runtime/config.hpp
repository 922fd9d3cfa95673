#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace taiga {

class tasklet_info;
struct deadlock_report;

/// How stack overflow is caught. Chosen per stack by the stack pool.
enum class stack_guard_mode : std::uint8_t {
  none,      // not a pooled stack
  madvise,   // MADV_GUARD_INSTALL guard page (Linux 6.13+): no extra mapping
  mprotect,  // PROT_NONE guard page: costs one extra kernel mapping per stack
  canary,    // a canary checked at every switch (when mappings run out)
};
const char* to_string(stack_guard_mode m) noexcept;

/// What runtime::shutdown does with tasklets that are still alive.
enum class shutdown_mode : std::uint8_t {
  kill,  // raise tasklet_exit in each (destructors run), then stop
  wait,  // wait until every tasklet has finished on its own, then stop
};

/// Sentinel for runtime_config::workers: one worker per core.
inline constexpr unsigned all_cores = ~0u;

/// Every member has a default member initializer, so designated
/// initializers that name a few (`runtime_config{.workers = 2}`) compile
/// cleanly under -Wextra (-Wmissing-field-initializers) and -Werror; keep
/// it so for new members (tests/runtime/config_init_test.cpp).
struct runtime_config {
  /// Worker threads. `all_cores` = one per hardware thread. 0 = embedded: no
  /// threads; the host drives the runtime with run_once()/run_until_idle().
  unsigned workers = all_cores;
  /// Usable stack bytes of a tasklet unless spawn_options say otherwise
  /// (rounded up to whole pages; the runtime keeps the top 112 bytes for the
  /// tasklet's frame and entry).
  std::size_t stack_size = 128 * 1024;
  /// Name used in diagnostics.
  std::string name = "taiga";
  /// Called with the tasklet's description and its exception when a detached
  /// tasklet ends with an uncaught exception (other than tasklet_exit). The
  /// default prints both and calls std::terminate. It runs on the dying
  /// tasklet (or in detach(), on its caller, when the tasklet had already
  /// ended) and may park (send to a channel, sleep); a kill that reaches it
  /// on the dying tasklet (runtime shutdown) ends it early. An exception
  /// escaping it there ends the process.
  std::function<void(const tasklet_info&, std::exception_ptr)> error_handler = nullptr;
  /// Deadlock detection: when every tasklet is parked and nothing can wake
  /// them. The handler gets the report; the default prints it to stderr. The
  /// runtime then raises taiga::deadlock_error in every parked tasklet.
  bool detect_deadlock = true;
  std::function<void(const deadlock_report&)> deadlock_handler = nullptr;
  /// A tasklet that runs this long without parking is reported (it cannot be
  /// preempted). Zero disables the watchdog.
  std::chrono::milliseconds watchdog_threshold{1000};
  std::function<void(const tasklet_info&, std::chrono::milliseconds)> watchdog_handler = nullptr;
  /// Threads for taiga::blocking(); created on demand, never workers.
  unsigned blocking_threads = 64;
  /// Idle spin rounds before a worker sleeps.
  unsigned spin_rounds = 64;
};

/// Per-spawn options: `taiga::spawn(spawn_options{.name = "x"}, fn, args...)`.
/// Every member has a default member initializer (as runtime_config's).
struct spawn_options {
  std::string name = {};
  /// Usable stack bytes (as runtime_config::stack_size); 0 = the runtime's default.
  std::size_t stack_size = 0;
  /// Never migrate: the tasklet always runs on the worker it starts on.
  bool pinned = false;
  /// Start on this worker (implies nothing about later migration unless
  /// pinned). -1 = wherever the scheduler puts it.
  int worker = -1;
};

}  // namespace taiga
