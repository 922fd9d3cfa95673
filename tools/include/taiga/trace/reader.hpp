// taiga::trace_reader: reads a taiga trace file (format version 1 and older,
// <taiga/runtime/trace_format.hpp>) generation by generation. Every read is
// bounds-checked: a damaged, truncated or foreign file gives an error message,
// never a crash, and a truncated file yields every generation that was
// complete (ended by its 'E' frame) before the cut.
//
//   taiga::trace::reader r;
//   if (!r.open("app.trace")) { std::cerr << r.error() << '\n'; return 1; }
//   taiga::trace::generation g;
//   while (r.next(g)) { for (const auto& e : g.events) ... }
//   if (!r.error().empty()) std::cerr << "note: " << r.error() << '\n';
#pragma once

#include <taiga/runtime/trace_format.hpp>

#include <cstdint>
#include <istream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace taiga::trace {

namespace format = taiga::trace_format;

/// The file header ('H' frame).
struct file_header {
  std::uint64_t version = 0;
  std::uint64_t clock = 0;  // 1: CLOCK_MONOTONIC nanoseconds
  std::uint64_t pid = 0;
  std::uint64_t runtime_id = 0;
  std::uint64_t start_time = 0;  // on the clock
  std::uint64_t start_wall = 0;  // ns since the Unix epoch
  std::string build_id;          // hex, may be empty
  std::string exe_path;          // may be empty
};

/// One thread that wrote events ('T' frame).
struct thread_info {
  std::uint64_t id = 0;  // the recorder's dense thread id
  std::uint64_t os_tid = 0;
  std::uint8_t kind = 0;  // trace_format::thread_kind
  std::uint64_t worker = 0;
  std::uint64_t name_id = 0;
  std::string name;  // resolved from name_id when the generation ends
};

/// One decoded event. `time` is absolute on the header's clock; `args` holds
/// arg_count values (trace_format::event_arg_count), the rest are zero.
struct event {
  std::uint64_t time = 0;
  std::uint64_t args[format::max_event_args] = {};
  std::uint32_t thread = 0;    // thread_info::id of the writer
  std::uint32_t position = 0;  // index in its batch, for stable ordering
  std::uint8_t type = 0;       // trace_format::event
  std::uint8_t arg_count = 0;

  std::uint64_t arg(int i) const noexcept { return i < arg_count ? args[i] : 0; }
};

/// One complete generation: its strings, threads and events, the events of
/// all threads merged by time (ties keep the writer's order).
struct generation {
  std::uint64_t number = 0;
  std::unordered_map<std::uint64_t, std::string> strings;
  std::map<std::uint64_t, thread_info> threads;
  std::vector<event> events;
  std::uint64_t events_written = 0;  // as the 'E' frame says
  std::uint64_t events_dropped = 0;  // as the 'E' frame says
  std::uint64_t end_time = 0;
  std::uint64_t offset = 0;  // file offset of its first frame

  /// The string with id `id`; "" for 0, "<string N?>" for an unknown id.
  std::string string(std::uint64_t id) const;
};

/// Why the reader stopped early, if it did.
enum class stop_reason {
  none,       // clean end of file (or still reading)
  bad_file,   // not a trace, newer version, damaged frame: error() says which
  truncated,  // the file ends inside a generation: complete ones were read
};

class reader {
 public:
  reader();
  ~reader();
  reader(reader&&) noexcept;
  reader& operator=(reader&&) noexcept;

  /// Opens a file and reads its header. False (error() says why) on an
  /// unreadable file, a foreign one, or a version newer than this reader.
  bool open(const std::string& path);
  /// The same over bytes in memory (tests, fuzzers, pipes).
  bool open_bytes(std::string bytes);

  const file_header& header() const noexcept;

  /// Reads the next complete generation into `out`. False at the end of the
  /// file or at the first damage; then stopped() and error() say which.
  bool next(generation& out);

  stop_reason stopped() const noexcept;
  /// Empty, or one sentence naming the problem and its file offset.
  const std::string& error() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The whole file at once: header, complete generations, and the reader's
/// stop reason. Convenience for scripts and small traces.
struct trace_file {
  file_header header;
  std::vector<generation> generations;
  stop_reason stopped = stop_reason::none;
  std::string error;    // empty when stopped == none
  bool opened = false;  // false: the header could not be read (see error)
};
trace_file read_file(const std::string& path);
trace_file read_bytes(std::string bytes);

}  // namespace taiga::trace
