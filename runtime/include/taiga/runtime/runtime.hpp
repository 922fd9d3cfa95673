#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <ostream>
#include <taiga/runtime/config.hpp>
#include <taiga/runtime/source_location.hpp>
#include <taiga/runtime/tasklet.hpp>
#include <vector>

namespace taiga {

/// Counters of one worker, readable at run time (relaxed snapshots).
struct worker_stats {
  std::uint64_t tasklets_run = 0;  // switches into a tasklet
  std::uint64_t steals = 0;        // tasklets this worker stole from others
  std::uint64_t stolen = 0;        // tasklets others stole from this worker
  std::uint64_t parks = 0;         // tasklets that parked here
  std::uint64_t spawns = 0;        // tasklets spawned from here
  std::uint64_t sleeps = 0;        // times the worker went to sleep
  std::chrono::nanoseconds idle_time{0};
};

/// Leak accounting, for tests and shutdown checks.
struct runtime_report {
  std::size_t live_tasklets = 0;
  std::size_t stacks_outstanding = 0;  // stacks of this runtime's tasklets
  std::size_t timers_pending = 0;
  std::size_t blocking_in_flight = 0;
  // I/O operations in flight in the runtime's pollers (taiga::net's
  // reads, writes, accepts, connects that parked a tasklet).
  std::size_t io_waits = 0;
  // Idle workers: in the idle list (asleep on their futex, or about to be);
  // always 0 for an embedded runtime, which has no worker threads.
  std::size_t workers_asleep = 0;
  std::size_t workers_spinning = 0;  // workers looking for work without sleeping
};

/// A runtime: worker threads, each running a fiber loop over its own ready
/// queue, balanced by work stealing. Several runtimes may live in one
/// process; one can be shut down and another started.
class runtime {
 public:
  explicit runtime(runtime_config config = {});
  /// Shuts down with shutdown_mode::kill if still running.
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Spawns `fn(args...)` on this runtime, from any thread. Prefer the free
  /// taiga::spawn(rt, fn, args...) form, which records the caller's line.
  template <class F, class... A>
  tasklet<detail::spawn_result_t<F, A...>> spawn(F&& f, A&&... a) {
    return detail::spawn_at(this, nullptr, detail::call_site::current(), std::forward<F>(f),
                            std::forward<A>(a)...);
  }

  /// Runs `fn` as this runtime's main tasklet and blocks the calling thread
  /// until it finishes; returns its result or rethrows its exception. With
  /// zero workers the calling thread drives the loop meanwhile.
  template <class F>
  auto run(F&& f, detail::call_site site = detail::call_site::current()) {
    using R = detail::spawn_result_t<F>;
    detail::tasklet_core* c = detail::make_tasklet(site, std::forward<F>(f));
    c->refs.store(2, std::memory_order_relaxed);
    c->flags.fetch_or(detail::tasklet_core::flag_main, std::memory_order_relaxed);
    spawn_options o;
    o.name = "main";
    detail::submit(c, this, &o);
    drive_until_done(c);
    return tasklet<R>(c).join(site);
  }

  /// Stops the runtime: kills (or waits for) every live tasklet, then stops
  /// the workers. Must not be called from one of its own tasklets.
  void shutdown(shutdown_mode mode = shutdown_mode::kill);
  bool stopped() const noexcept;

  /// Embedded mode (workers == 0): runs what is ready now, once each, on the
  /// calling thread and returns how many tasklets ran (libuv UV_RUN_NOWAIT).
  std::size_t run_once();
  /// Runs until nothing is ready (due timers included); returns the count.
  std::size_t run_until_idle();

  unsigned worker_count() const noexcept;
  worker_stats stats(unsigned worker) const;
  runtime_report report() const;
  const runtime_config& config() const noexcept;

  /// Writes one line per live tasklet: id, name, state, worker, spawn site
  /// and, when parked, what it waits on.
  void dump(std::ostream& os) const;
  /// Writes one line per group of live tasklets with the same spawn site,
  /// state and (when parked) reason, largest first: count, state, reason,
  /// the oldest wait (for parks that began while a trace recorded), site.
  void dump_summary(std::ostream& os) const;

  /// While a guard lives, deadlock detection assumes something outside the
  /// runtime (a plain thread) may still wake a tasklet.
  class keep_alive_guard {
   public:
    explicit keep_alive_guard(runtime& rt);
    ~keep_alive_guard();
    keep_alive_guard(const keep_alive_guard&) = delete;
    keep_alive_guard& operator=(const keep_alive_guard&) = delete;

   private:
    runtime* rt_;
  };
  keep_alive_guard keep_alive() { return keep_alive_guard(*this); }

  /// The guard mechanism new stacks get in this process: madvise or mprotect
  /// guard pages, or a canary checked at every switch (where the kernel
  /// offers neither, or after a fallback, which is announced once on stderr).
  static stack_guard_mode stack_guard();

  /// The runtime of the calling tasklet or worker thread, or nullptr.
  static runtime* current() noexcept;

  detail::runtime_impl* impl() const noexcept { return impl_.get(); }

 private:
  void drive_until_done(detail::tasklet_core* c);
  std::unique_ptr<detail::runtime_impl> impl_;
};

/// Starts a runtime with `config`, runs `fn` as its main tasklet, shuts the
/// runtime down and returns fn's result (or rethrows its exception).
template <class F>
auto run(F&& f, runtime_config config = {}, detail::call_site site = detail::call_site::current()) {
  runtime rt(std::move(config));
  return rt.run(std::forward<F>(f), site);
}

}  // namespace taiga
