// trace.hpp: the recorder's emission points, as the runtime's sources call
// them. Each is out of line and called only behind detail::trace_on() (one
// relaxed load and a test when nothing records), so the switch path keeps
// its shape when tracing is off. The recorder itself, its invariants and the
// file it writes are in trace.cpp and docs/design/trace-format.md.
#pragma once

#include <cstdint>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/detail/tasklet_core.hpp>
#include <taiga/runtime/trace_format.hpp>

namespace taiga::detail {
struct runtime_impl;
}

namespace taiga::internal {
struct worker;
}

namespace taiga::internal::trace {

using detail::runtime_impl;
using detail::tasklet_core;

/// What kind of thread this is, for its buffer's 'T' frame: set once by the
/// runtime's own threads (pool, sysmon); workers are known by this_worker().
void set_thread_kind(trace_format::thread_kind k) noexcept;

// Events (trace_format.hpp has their arguments).
void spawn(tasklet_core* t) noexcept;             // t admitted, registered (and perhaps queued)
void run(worker* w, tasklet_core* t) noexcept;    // first in prepare()
void park(worker* w, tasklet_core* t) noexcept;   // before the park's switch
void yield(worker* w, tasklet_core* t) noexcept;  // before a yield's switch
void exit(tasklet_core* t) noexcept;  // after the body: how it ended, from flags and error
void steal(worker* w, unsigned victim, unsigned count) noexcept;
void worker_spin(worker* w) noexcept;
void worker_sleep(worker* w, std::int64_t deadline_ns) noexcept;
void worker_wake(worker* w) noexcept;  // by the calling thread
void blocking(runtime_impl* rt, bool begin, std::uint64_t tid, std::uint64_t job) noexcept;
void timer_fire(runtime_impl* rt, std::uint64_t tid) noexcept;
void watchdog(runtime_impl* rt, std::uint64_t tid, std::int64_t ran_ns) noexcept;
void deadlock(runtime_impl* rt, std::size_t parked) noexcept;
/// sysmon, every period while a trace records: one sample event per worker.
void sample(runtime_impl* rt) noexcept;

/// Runtime life: TAIGA_TRACE at start; a trace still recording at the end
/// of shutdown (every thread of the runtime joined) is stopped and flushed.
void on_runtime_start(runtime_impl* rt);
void on_runtime_shutdown(runtime_impl* rt) noexcept;
/// The flight recorder's triggers (watchdog, deadlock): writes what it
/// holds to its configured path, if any. sysmon thread.
void flight_trigger(runtime_impl* rt, const char* why) noexcept;

}  // namespace taiga::internal::trace
