// The runtime trace: records what tasklets did (spawns, runs, parks and who
// woke them, steals, worker sleeps, blocking calls, timers) into a file that
// `taiga-trace` reads. The format is trace_format.hpp, explained in
// docs/design/trace-format.md.
//
//     taiga::trace::start(rt, "server.trace");   // or TAIGA_TRACE=server.trace
//     ...
//     taiga::trace::stop(rt);                    // also at the runtime's shutdown
//
// Or, always on and cheap: a flight recorder keeps the last few MiB in
// memory and writes them when asked, when the watchdog or the deadlock
// detector fires, or when the process dies of a fatal signal:
//
//     taiga::trace::start_flight_recorder(rt, {.max_bytes = 8 << 20,
//                                              .path = "crash.trace"});
//     taiga::trace::write_flight_recorder(rt, "now.trace");
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace taiga {
class runtime;
}

namespace taiga::trace {

/// Receives the trace's bytes, in order, from the recorder's own thread
/// (never a worker): the header first, then whole generations.
using sink = std::function<void(std::string_view bytes)>;

/// Starts recording `rt` into the file at `path` (created or truncated).
/// Throws std::system_error if it cannot be opened, usage_error if `rt`
/// records already. Any thread.
void start(runtime& rt, const std::string& path);
/// Starts recording `rt` into `s`.
void start(runtime& rt, sink s);
/// The calling tasklet's (or worker's) runtime; usage_error elsewhere.
void start(const std::string& path);
void start(sink s);
/// Stops recording `rt`: flushes every thread's events, writes the last
/// generation and closes the file. No-op when it does not record. Any
/// thread, not one of rt's tasklets (it waits for the recorder's thread).
void stop(runtime& rt);
void stop();
/// Whether `rt` records now (to a file, a sink or the flight recorder).
bool recording(const runtime& rt) noexcept;

struct flight_options {
  /// Memory for complete generations; the oldest are dropped past it (the
  /// newest one is always kept, and generations are cut at a quarter of
  /// this so that about four fit).
  std::size_t max_bytes = 8u << 20;
  /// Where the watchdog, the deadlock detector and a fatal signal (SIGSEGV,
  /// SIGBUS, SIGILL, SIGFPE, SIGABRT) write what is held; empty: nowhere.
  std::string path;
};
/// Records `rt` into memory only (usage_error if it records already).
void start_flight_recorder(runtime& rt, flight_options o = {});
/// Writes what the flight recorder holds (the current generation is cut
/// first) as a complete trace file. Throws std::system_error if `path`
/// cannot be written, usage_error if `rt` has no flight recorder.
void write_flight_recorder(runtime& rt, const std::string& path);
/// Bytes the flight recorder holds in complete generations now.
std::size_t flight_recorder_bytes(const runtime& rt) noexcept;

/// User annotations, in the calling tasklet's runtime's trace (or nowhere:
/// no-ops when it does not record, or outside a runtime). Names and
/// messages are copied.
void region_begin(std::string_view name);
void region_end(std::string_view name);
/// A region for the life of a scope (region_begin / region_end).
class region {
 public:
  explicit region(std::string_view name) : name_(name) { region_begin(name_); }
  ~region() { region_end(name_); }
  region(const region&) = delete;
  region& operator=(const region&) = delete;

 private:
  std::string name_;
};
void log(std::string_view category, std::string_view message);
void counter(std::string_view name, std::uint64_t value);

}  // namespace taiga::trace
