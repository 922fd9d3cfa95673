// The trace file format, version 1: the one contract between the recorder
// (runtime/src/trace*.cpp) and every reader (tools/, scripts). Header-only,
// no dependency beyond the standard library, so tools/ includes it without
// linking the runtime. docs/design/trace-format.md explains the choices.
//
// A file is a sequence of frames:
//
//   frame  := kind:u8  length:u32le  payload[length]
//
// The first frame is the file header (kind 'H'). After it come generations.
// A generation is a run of frames that ends with its 'E' frame; everything a
// generation's events refer to (strings, thread descriptions) is inside the
// same generation, so a reader can start at any generation and a file cut
// short yields every generation whose 'E' frame arrived (the recorder cuts a
// generation every second or 4 MiB, and the flight recorder keeps whole
// generations).
//
//   'H' header     magic[8] = "TAIGATRC", then varints: version, clock
//                  (1 = CLOCK_MONOTONIC ns), pid, runtime id, start time on
//                  the clock, start wall time (ns since the Unix epoch), then
//                  strings (varint length + bytes): build-id (hex), exe path
//   'S' strings    varint generation, then pairs: varint id, string.
//                  Ids are per generation, 0 is the empty string.
//   'T' thread     varint generation, thread id (the recorder's, dense),
//                  os tid, thread_kind, worker index (or 0), name string id
//   'B' batch      varint generation, thread id, base time, event count, then
//                  events. One batch holds events of one thread, in order.
//   'E' gen. end   varint generation, events written, events dropped, end
//                  time. A generation without it is incomplete.
//
// An event inside a batch:
//
//   event := type:u8  dt:varint  args:varint[arg_count(type)]
//
// `dt` is nanoseconds since the previous event of the batch (the first:
// since the batch's base time): one clock for every thread, deltas keep most
// timestamps to one or two bytes. The number of arguments is fixed per type
// (event_arg_count below): a reader skips a type it does not know only if it
// knows the count, so new types are appended with a new version number and
// an old reader reports "version N is newer than this reader" instead of
// misreading.
//
// Ordering. Timestamps of different threads come from one monotonic clock
// but are taken at slightly different moments than the state changes they
// describe; events about one tasklet that another thread emits (unblock from
// a waker, spawn from the parent) carry the tasklet's sequence number, which
// the recorder increments at each park, unblock and run of that tasklet, so
// a reader sorts one tasklet's events by `seq`, not by time. The number is
// 15 bits wide and wraps (the recorder carries it inside the park protocol's
// 32-bit wait word): compare two of one tasklet's with serial-number
// arithmetic, ((b - a) & seq_mask) < seq_mask / 2 meaning a before b. A
// spawn is 0, the first run 1; a park counts 2 (the park, and the unblock
// that ends it, which carries the park's seq + 1), a yield and a run 1 each.
//
// Varints are unsigned LEB128 (7 bits per byte, low first, at most 10
// bytes). Signed values (none in version 1) would be zigzag-coded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taiga::trace_format {

inline constexpr char magic[8] = {'T', 'A', 'I', 'G', 'A', 'T', 'R', 'C'};
inline constexpr std::uint32_t version = 1;

enum class frame_kind : std::uint8_t {
  header = 'H',
  strings = 'S',
  thread = 'T',
  batch = 'B',
  generation_end = 'E',
};

enum class thread_kind : std::uint8_t {
  worker = 1,   // a runtime worker; `worker index` names which
  pool = 2,     // a blocking-pool thread
  sysmon = 3,   // the runtime's monitor thread
  outside = 4,  // any other thread that woke or spawned a tasklet
};

// Why a tasklet parked. The object argument names what it waits on: the
// address of the channel, mutex, ... (even), or an fd (fd * 2 + 1, as
// detail::fd_object does), or 0.
enum class park_reason : std::uint8_t {
  other = 0,
  channel_send = 1,
  channel_receive = 2,
  select = 3,
  select_no_case = 4,
  join = 5,
  sleep = 6,
  mutex = 7,
  shared_mutex = 8,
  recursive_mutex = 9,
  condition_variable = 10,
  semaphore = 11,
  event = 12,
  latch = 13,
  barrier = 14,
  wait_group = 15,
  queue_put = 16,
  queue_get = 17,
  queue_join = 18,
  future = 19,
  blocking_call = 20,
  pool_shutdown = 21,
  io_read = 22,
  io_write = 23,
  io_accept = 24,
  io_connect = 25,
  io_handshake = 26,
  io_resolve = 27,
  io_signal = 28,
  user = 29,  // a wake_slot wait with a user's reason string
};
inline constexpr std::uint8_t park_reason_count = 30;

// How a wait ended (unblock's `how`).
enum class wake_how : std::uint8_t { signaled = 0, timeout = 1, interrupted = 2 };

// How a tasklet ended (exit's `how`).
enum class exit_how : std::uint8_t { returned = 0, exception = 1, killed = 2, deadlock = 3 };

// Event types and their arguments (all varints; "str" is a string id of the
// generation, "tid" a tasklet id, 0 meaning none or "not a tasklet").
enum class event : std::uint8_t {
  //                      args
  spawn = 1,            // tid, parent tid, site str, name str, seq
  run = 2,              // tid, worker, previous worker + 1 (0: first run), seq
  park = 3,             // tid, park_reason, object, site str, seq
  yield = 4,            // tid, seq
  unblock = 5,          // tid, waker tid, wake_how, seq
  steal = 6,            // victim worker, count
  exit = 7,             // tid, exit_how, exception type str, seq
  worker_spin = 8,      // worker
  worker_sleep = 9,     // worker, deadline (absolute ns, 0 none)
  worker_wake = 10,     // worker, by worker + 1 (0: not a worker)
  blocking_begin = 11,  // tid, job id
  blocking_end = 12,    // tid, job id
  timer_fire = 13,      // tid
  watchdog = 14,        // tid, run time so far (ns)
  deadlock = 15,        // number of tasklets in the report
  region_begin = 16,    // tid, name str
  region_end = 17,      // tid, name str
  log = 18,             // tid, category str, message str
  counter = 19,         // name str, value
  sample = 20,          // live tasklets, ready tasklets, worker, queue length,
                        //   os run delay of that worker since last sample (ns)
  dropped = 21,         // events lost by this thread since its last batch
  io_wait = 22,         // tid, fd (waits in the reactor; net's E6 start)
  // Appended after version 1's first draft (same version number: no file
  // had been written yet).
  park_label = 23,  // tid, label str: the text of the park that follows
                    //   (a user's reason, or a primitive's more precise one:
                    //   "shared_mutex (shared)"); emitted just before that park
};
inline constexpr std::uint8_t event_type_count = 24;
inline constexpr std::uint32_t seq_mask = 0x7fff;  // seq arguments wrap at 15 bits

// Arguments per event type (index = type); -1 for an unused type number.
inline constexpr int event_arg_count[event_type_count] = {
    -1,  // 0 unused
    5,   // spawn
    4,   // run
    5,   // park
    2,   // yield
    4,   // unblock
    2,   // steal
    4,   // exit
    1,   // worker_spin
    2,   // worker_sleep
    2,   // worker_wake
    2,   // blocking_begin
    2,   // blocking_end
    1,   // timer_fire
    2,   // watchdog
    1,   // deadlock
    2,   // region_begin
    2,   // region_end
    3,   // log
    2,   // counter
    5,   // sample
    1,   // dropped
    2,   // io_wait
    2,   // park_label
};
inline constexpr int max_event_args = 5;

inline const char* event_name(std::uint8_t type) noexcept {
  static constexpr const char* names[event_type_count] = {
      "?",           "spawn",          "run",          "park",        "yield",
      "unblock",     "steal",          "exit",         "worker_spin", "worker_sleep",
      "worker_wake", "blocking_begin", "blocking_end", "timer_fire",  "watchdog",
      "deadlock",    "region_begin",   "region_end",   "log",         "counter",
      "sample",      "dropped",        "io_wait",      "park_label"};
  return type < event_type_count ? names[type] : "?";
}

inline const char* park_reason_name(std::uint8_t r) noexcept {
  static constexpr const char* names[park_reason_count] = {"other",
                                                           "channel send",
                                                           "channel receive",
                                                           "select",
                                                           "select with no enabled case",
                                                           "join",
                                                           "sleep",
                                                           "mutex",
                                                           "shared_mutex",
                                                           "recursive_mutex",
                                                           "condition_variable",
                                                           "semaphore",
                                                           "event",
                                                           "latch",
                                                           "barrier",
                                                           "wait_group",
                                                           "queue put",
                                                           "queue get",
                                                           "queue join",
                                                           "future",
                                                           "blocking call",
                                                           "task_pool shutdown",
                                                           "read",
                                                           "write",
                                                           "accept",
                                                           "connect",
                                                           "handshake",
                                                           "resolve",
                                                           "signal",
                                                           "user"};
  return r < park_reason_count ? names[r] : "?";
}

// --- varints ---------------------------------------------------------------

/// Writes `v` at `out` (room for 10 bytes); returns the bytes written.
inline std::size_t put_varint(std::uint8_t* out, std::uint64_t v) noexcept {
  std::size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<std::uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<std::uint8_t>(v);
  return n;
}

/// Reads a varint from [p, end); advances p. nullopt on a truncated or
/// over-long (more than 10 bytes) varint: the caller reports a bad file.
inline std::optional<std::uint64_t> get_varint(const std::uint8_t*& p,
                                               const std::uint8_t* end) noexcept {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 70 && p < end; shift += 7) {
    std::uint8_t b = *p++;
    if (shift == 63 && b > 1) return std::nullopt;  // does not fit 64 bits
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  return std::nullopt;
}

inline void append_varint(std::string& out, std::uint64_t v) {
  std::uint8_t b[10];
  out.append(reinterpret_cast<const char*>(b), put_varint(b, v));
}

inline void append_string(std::string& out, std::string_view s) {
  append_varint(out, s.size());
  out.append(s);
}

/// Appends a frame: kind, little-endian length, payload.
inline void append_frame(std::string& out, frame_kind kind, std::string_view payload) {
  out.push_back(static_cast<char>(kind));
  auto n = static_cast<std::uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(payload);
}

}  // namespace taiga::trace_format
