// taiga::trace::model: what the tasklets and workers of a trace did,
// rebuilt from its events: every run slice, park and wake, each tasklet's
// life (created, ready, running, parked, done), per-worker busy, spin and
// idle time, and the violations of the state machine that `taiga-trace
// check` reports.
#pragma once

#include <taiga/trace/reader.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace taiga::trace {

enum class tasklet_state : std::uint8_t {
  unknown,  // first seen after its spawn (the trace started later)
  created,  // spawned, not yet ready; format version 1's spawn event makes a
            // tasklet ready at once, so its traces never leave one here
  ready,
  running,
  parked,
  done,
};
const char* state_name(tasklet_state s) noexcept;
/// Parses a state name as state_name prints it; false if it is none.
bool parse_state(const std::string& name, tasklet_state& out) noexcept;

inline constexpr std::uint32_t no_index = UINT32_MAX;

/// One stretch of a tasklet on a worker, from its run event to the park,
/// yield or exit that ended it (or the end of the trace: `open`).
struct run_slice {
  std::uint64_t tasklet = 0;
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t worker = 0;
  std::uint8_t ended_by = 0;  // trace_format::event: park, yield, exit; 0 when open
  bool open = false;
  std::uint32_t woken_by_wake = no_index;  // index in model::wakes that made it ready
};

/// One park, from the park event to the unblock that ended it.
struct park_record {
  std::uint64_t tasklet = 0;
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // unblock time; the trace's end while still parked
  std::uint64_t object = 0;
  std::uint32_t site = 0;         // index in model::strings
  std::uint32_t wake = no_index;  // index in model::wakes; no_index: still parked
  std::uint8_t reason = 0;        // trace_format::park_reason
};

/// One unblock: who made a parked tasklet ready, and when.
struct wake_record {
  std::uint64_t tasklet = 0;
  std::uint64_t waker = 0;  // tasklet id, 0: not a tasklet
  std::uint64_t time = 0;
  std::uint32_t thread = 0;         // the writer's thread (generation-local id)
  std::uint64_t thread_worker = 0;  // its worker index + 1, 0: not a worker thread
  std::uint8_t how = 0;             // trace_format::wake_how
  std::uint32_t run = no_index;     // the run slice it led to
  std::uint32_t park = no_index;    // the park it ended; no_index: none seen
};

struct tasklet_info {
  std::uint64_t id = 0;
  std::uint64_t parent = 0;
  std::uint32_t name = 0;  // index in model::strings
  std::uint32_t site = 0;  // index in model::strings
  bool spawn_seen = false;
  std::uint64_t spawn_time = 0;  // or the first event's time
  std::uint64_t end_time = 0;    // exit time when done
  tasklet_state state = tasklet_state::unknown;
  std::uint8_t exit_how = 0;
  std::uint32_t exception = 0;  // index in model::strings
  std::uint64_t run_time = 0;
  std::uint64_t wait_time = 0;
  std::uint32_t runs = 0;
  std::uint32_t parks = 0;
  std::uint32_t yields = 0;
  std::uint32_t last_park = no_index;    // index in model::parks
  std::vector<std::uint32_t> slices;     // indices in model::slices, in order
  std::vector<std::uint32_t> park_list;  // indices in model::parks, in order
  std::vector<std::uint64_t> yield_times;
};

struct worker_info {
  std::uint64_t index = 0;
  std::uint64_t busy = 0;  // in run slices
  std::uint64_t spin = 0;  // spinning for work
  std::uint64_t idle = 0;  // asleep
  std::uint64_t slices = 0;
  std::uint64_t steals = 0;     // steal events by this worker
  std::uint64_t stolen = 0;     // tasklets it took
  std::uint64_t os_delay = 0;   // sampled OS run delay: time the host did not run it
  std::uint64_t max_queue = 0;  // longest sampled queue
};

/// A watchdog or deadlock report, or a user's log line.
struct report_record {
  std::uint64_t time = 0;
  std::uint64_t tasklet = 0;   // watchdog, log: the tasklet; deadlock: 0
  std::uint64_t value = 0;     // watchdog: run time so far; deadlock: tasklets in the report
  std::uint32_t category = 0;  // log: index in model::strings
  std::uint32_t message = 0;   // log: index in model::strings
};

/// Events that are not tasklet transitions, counted.
struct other_events {
  std::uint64_t timer_fires = 0;
  std::uint64_t io_waits = 0;
  std::uint64_t blocking_jobs = 0;  // begin/end pairs seen
  std::uint64_t blocking_time = 0;  // their total length
  std::uint64_t regions = 0;
  std::uint64_t samples = 0;
  std::uint64_t max_live = 0;                       // sampled live tasklets
  std::uint64_t max_ready = 0;                      // sampled ready tasklets
  std::map<std::uint32_t, std::uint64_t> counters;  // name -> last value
};

struct violation {
  std::uint64_t time = 0;
  std::uint64_t tasklet = 0;
  std::string message;
};

struct model {
  file_header header;
  std::uint64_t start = 0;  // earliest time seen (header start or first event)
  std::uint64_t end = 0;    // latest time seen
  std::uint64_t events = 0;
  std::uint64_t generations = 0;
  std::uint64_t dropped = 0;   // 'E' frames' counts plus `dropped` events
  std::uint64_t spawned = 0;   // spawn events
  std::uint64_t finished = 0;  // exit events
  std::uint64_t steals = 0;
  std::uint64_t stolen = 0;
  std::uint64_t migrations = 0;      // runs on another worker than the tasklet's last run
  std::vector<std::string> strings;  // interned; 0 is ""
  std::map<std::uint64_t, tasklet_info> tasklets;
  std::vector<run_slice> slices;  // in the order tasklets' runs were replayed
  std::vector<park_record> parks;
  std::vector<wake_record> wakes;
  std::map<std::uint64_t, worker_info> workers;
  std::vector<std::uint64_t> ready_latency;  // ready -> running, ns, one per run
  std::vector<report_record> watchdogs;
  std::vector<report_record> deadlocks;
  std::vector<report_record> logs;
  other_events other;
  std::vector<violation> violations;  // state machine breaks (check)
  std::vector<std::string> notes;     // e.g. truncation, drops

  const std::string& str(std::uint32_t i) const { return strings[i < strings.size() ? i : 0]; }
  /// "name" or "tasklet N".
  std::string tasklet_label(std::uint64_t id) const;
};

/// Builds a model from generations added in file order; only the model's
/// own records stay in memory, not the events.
class model_builder {
 public:
  explicit model_builder(const file_header& header);
  ~model_builder();
  model_builder(const model_builder&) = delete;
  model_builder& operator=(const model_builder&) = delete;

  void add(const generation& g);
  /// Replays the tasklets; the reader's stop reason becomes a note. Call once.
  model finish(stop_reason stopped, const std::string& error);

 private:
  struct state;
  std::unique_ptr<state> s_;
};

/// Replays a file read whole.
model build_model(const trace_file& file);
/// Reads the rest of `r` one generation at a time and replays it.
model build_model(reader& r);

}  // namespace taiga::trace
