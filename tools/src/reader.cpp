// The trace reader.
//
// A trace is written by a running program that may die at any instant: a
// fatal signal, an OOM kill, a full disk. The recorder therefore writes
// self-contained generations and the reader's first duty is to salvage: it
// reads frame by frame, keeps a generation only once its 'E' frame has
// arrived, and on the first damage stops with one sentence saying where and
// why, handing back everything complete before it. The second duty is to
// never trust the file: every length, count and varint is checked against
// the bytes that are really there (a frame's u32 length against the file's
// size before anything is allocated, an event count against the bytes left,
// since each event takes at least two), so a foreign or hostile file costs
// at most its own size in memory and ends with an error, never a crash. A
// libFuzzer target (tools/fuzz) holds the reader to that.
//
// Versions. The header's version tells which event types the writer knew.
// A reader can decode a file no newer than itself, since it knows the
// argument count of every type such a file may hold; analyses ignore types
// they do not care about. A newer file is refused up front with a sentence
// saying so: guessing at an unknown type's length would misread everything
// after it.
//
// Order. Each 'B' frame is one thread's events in that thread's order. The
// generation's batches are merged by timestamp with a stable sort (ties keep
// thread, then batch order); the model (model.cpp) then orders each
// tasklet's own events by their sequence numbers, because the clock reading
// of a wake on one core and of the park on another may disagree with the
// order in which the runtime's state changed.
#include <taiga/trace/reader.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace taiga::trace {

namespace {

// Smallest encoding of an event: type byte and a one-byte dt.
constexpr std::size_t min_event_bytes = 2;

struct cursor {
  const std::uint8_t* p;
  const std::uint8_t* end;

  bool varint(std::uint64_t& v) {
    auto r = format::get_varint(p, end);
    if (!r) return false;
    v = *r;
    return true;
  }
  bool string(std::string& s) {
    std::uint64_t n = 0;
    if (!varint(n)) return false;
    if (n > static_cast<std::uint64_t>(end - p)) return false;
    s.assign(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    p += n;
    return true;
  }
  bool done() const { return p == end; }
};

// The event types a file of `version` may hold, with their argument counts.
// Version 1 is the first; a later format appends types and this function
// learns which version introduced each one.
int arg_count_for(std::uint8_t type, std::uint64_t version) {
  if (version < 1 || version > format::version) return -1;
  if (type >= format::event_type_count) return -1;
  return format::event_arg_count[type];
}

}  // namespace

std::string generation::string(std::uint64_t id) const {
  if (id == 0) return {};
  auto it = strings.find(id);
  if (it == strings.end()) return "<string " + std::to_string(id) + "?>";
  return it->second;
}

namespace {

// Decodes the events of one 'B' frame payload after its generation number;
// returns an error message or "".
std::string decode_batch(const std::uint8_t* p, const std::uint8_t* end, std::uint64_t version,
                         std::vector<event>& out, std::uint64_t& thread) {
  cursor c{p, end};
  std::uint64_t base = 0, count = 0;
  if (!c.varint(thread) || !c.varint(base) || !c.varint(count)) return "batch header is cut short";
  if (thread > UINT32_MAX) return "batch names thread " + std::to_string(thread);
  if (count > static_cast<std::uint64_t>(c.end - c.p) / min_event_bytes)
    return "batch claims " + std::to_string(count) + " events in " + std::to_string(c.end - c.p) +
           " bytes";
  std::uint64_t t = base;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (c.p >= c.end) return "batch ends after " + std::to_string(i) + " of its events";
    event e;
    e.type = *c.p++;
    int n = arg_count_for(e.type, version);
    if (n < 0)
      return "unknown event type " + std::to_string(e.type) + " for format version " +
             std::to_string(version);
    std::uint64_t dt = 0;
    if (!c.varint(dt)) return "event " + std::to_string(i) + " has a bad time delta";
    if (dt > UINT64_MAX - t) return "event " + std::to_string(i) + " overflows the clock";
    t += dt;
    e.time = t;
    e.thread = static_cast<std::uint32_t>(thread);
    e.position = static_cast<std::uint32_t>(std::min<std::uint64_t>(i, UINT32_MAX));
    e.arg_count = static_cast<std::uint8_t>(n);
    for (int a = 0; a < n; ++a)
      if (!c.varint(e.args[a]))
        return "event " + std::to_string(i) + " (" + format::event_name(e.type) +
               ") has a bad argument";
    out.push_back(e);
  }
  if (!c.done()) return "batch has bytes after its last event";
  return {};
}

}  // namespace

struct reader::impl {
  std::unique_ptr<std::istream> in;
  std::uint64_t size = 0;    // bytes in the file
  std::uint64_t offset = 0;  // of the next frame
  file_header header;
  stop_reason stopped = stop_reason::none;
  std::string error;
  bool at_end = false;
  std::vector<std::uint8_t> payload;

  bool fail(stop_reason why, std::string msg) {
    stopped = why;
    error = std::move(msg);
    at_end = true;
    return false;
  }

  std::string at(std::uint64_t off) const { return " at offset " + std::to_string(off); }

  // Reads one frame. 0: clean end of file; -1: truncated inside the frame;
  // 1: a frame, in `kind` and `payload`.
  int read_frame(std::uint8_t& kind) {
    if (offset == size) return 0;
    std::uint8_t head[5];
    if (size - offset < sizeof head) return -1;
    in->read(reinterpret_cast<char*>(head), sizeof head);
    if (!*in) return -1;
    kind = head[0];
    std::uint64_t len = std::uint64_t{head[1]} | std::uint64_t{head[2]} << 8 |
                        std::uint64_t{head[3]} << 16 | std::uint64_t{head[4]} << 24;
    // The length is checked against the file before anything is allocated.
    if (len > size - offset - sizeof head) return -1;
    payload.resize(static_cast<std::size_t>(len));
    if (len) in->read(reinterpret_cast<char*>(payload.data()), static_cast<std::streamsize>(len));
    if (!*in) return -1;
    offset += sizeof head + len;
    return 1;
  }

  bool start(std::unique_ptr<std::istream> s, std::uint64_t n) {
    in = std::move(s);
    size = n;
    std::uint8_t kind = 0;
    int r = read_frame(kind);
    if (r <= 0 || kind != static_cast<std::uint8_t>(format::frame_kind::header) ||
        payload.size() < sizeof format::magic ||
        std::memcmp(payload.data(), format::magic, sizeof format::magic) != 0) {
      // Tell a foreign file from a trace cut inside its header.
      bool magic_seen = false;
      if (size >= 5 + sizeof format::magic) {
        char buf[5 + sizeof format::magic];
        in->clear();
        in->seekg(0);
        in->read(buf, sizeof buf);
        magic_seen = *in && std::memcmp(buf + 5, format::magic, sizeof format::magic) == 0;
      }
      if (magic_seen && r < 0)
        return fail(stop_reason::bad_file,
                    "the file ends inside its header (" + std::to_string(size) + " bytes)");
      return fail(stop_reason::bad_file,
                  size == 0 ? std::string("the file is empty")
                            : std::string("not a taiga trace (no TAIGATRC header)"));
    }
    cursor c{payload.data() + sizeof format::magic, payload.data() + payload.size()};
    auto& h = header;
    if (!c.varint(h.version)) return fail(stop_reason::bad_file, "the header is damaged");
    if (h.version == 0)
      return fail(stop_reason::bad_file, "the header names format version 0, which never existed");
    if (h.version > format::version)
      return fail(stop_reason::bad_file,
                  "format version " + std::to_string(h.version) +
                      " is newer than this reader (version " + std::to_string(format::version) +
                      "): use a taiga-trace built from the same taiga as the program");
    if (!c.varint(h.clock) || !c.varint(h.pid) || !c.varint(h.runtime_id) ||
        !c.varint(h.start_time) || !c.varint(h.start_wall) || !c.string(h.build_id) ||
        !c.string(h.exe_path))
      return fail(stop_reason::bad_file, "the header is damaged (a field is cut short)");
    // Later versions may append header fields; version 1 readers ignore them.
    return true;
  }

  bool next(generation& g) {
    if (at_end) return false;
    g = generation{};
    bool open = false;  // a frame of g has been read
    std::uint64_t gen_offset = offset;
    for (;;) {
      std::uint64_t frame_offset = offset;
      std::uint8_t kind = 0;
      int r = read_frame(kind);
      if (r == 0) {
        at_end = true;
        if (!open) return false;
        return fail(stop_reason::truncated, "the file ends inside generation " +
                                                std::to_string(g.number) + " (started" +
                                                at(gen_offset) + "); it was skipped");
      }
      if (r < 0)
        return fail(
            stop_reason::truncated,
            "the file is cut short" + at(frame_offset) +
                (open ? " inside generation " + std::to_string(g.number) + ", which was skipped"
                      : std::string()));
      cursor c{payload.data(), payload.data() + payload.size()};
      auto damaged = [&](const std::string& what) {
        return fail(stop_reason::bad_file, "damaged '" + std::string(1, static_cast<char>(kind)) +
                                               "' frame" + at(frame_offset) + ": " + what);
      };
      if (kind == static_cast<std::uint8_t>(format::frame_kind::header))
        return damaged("a second file header");
      if (kind != 'S' && kind != 'T' && kind != 'B' && kind != 'E')
        return fail(stop_reason::bad_file, "unknown frame kind " + std::to_string(kind) +
                                               at(frame_offset) + " (a damaged file?)");
      std::uint64_t number = 0;
      if (!c.varint(number)) return damaged("no generation number");
      if (!open) {
        open = true;
        g.number = number;
        g.offset = frame_offset;
        gen_offset = frame_offset;
      } else if (number != g.number) {
        return damaged("generation " + std::to_string(number) + " starts before generation " +
                       std::to_string(g.number) + " ended");
      }
      switch (static_cast<format::frame_kind>(kind)) {
        case format::frame_kind::strings:
          while (!c.done()) {
            std::uint64_t id = 0;
            std::string s;
            if (!c.varint(id) || !c.string(s)) return damaged("a string is cut short");
            g.strings[id] = std::move(s);
          }
          break;
        case format::frame_kind::thread: {
          thread_info t;
          std::uint64_t kind_v = 0;
          if (!c.varint(t.id) || !c.varint(t.os_tid) || !c.varint(kind_v) || !c.varint(t.worker) ||
              !c.varint(t.name_id))
            return damaged("a field is cut short");
          t.kind = static_cast<std::uint8_t>(std::min<std::uint64_t>(kind_v, 255));
          // The name may come in a later 'S' frame: resolved at the 'E' frame.
          g.threads[t.id] = std::move(t);
          break;
        }
        case format::frame_kind::batch: {
          std::uint64_t thread = 0;
          auto msg = decode_batch(c.p, c.end, header.version, g.events, thread);
          if (!msg.empty()) return damaged(msg);
          break;
        }
        case format::frame_kind::generation_end: {
          if (!c.varint(g.events_written) || !c.varint(g.events_dropped) || !c.varint(g.end_time))
            return damaged("a field is cut short");
          for (auto& [id, t] : g.threads) t.name = g.string(t.name_id);
          std::stable_sort(g.events.begin(), g.events.end(), [](const event& a, const event& b) {
            if (a.time != b.time) return a.time < b.time;
            return a.thread < b.thread;
          });
          return true;
        }
        default:
          break;
      }
    }
  }
};

reader::reader() : impl_(std::make_unique<impl>()) {}
reader::~reader() = default;
reader::reader(reader&&) noexcept = default;
reader& reader::operator=(reader&&) noexcept = default;

bool reader::open(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    impl_->fail(stop_reason::bad_file, path + " is a directory, not a trace file");
    return false;
  }
  auto f = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*f) {
    impl_->fail(stop_reason::bad_file, "cannot open " + path + ": " + std::strerror(errno));
    return false;
  }
  // A regular file is read frame by frame. A pipe (/dev/stdin, a process
  // substitution) cannot tell its size, which the frame checks need, so it
  // is read whole first.
  if (std::filesystem::is_regular_file(path, ec)) {
    f->seekg(0, std::ios::end);
    auto n = f->tellg();
    f->seekg(0);
    if (n >= 0 && *f) return impl_->start(std::move(f), static_cast<std::uint64_t>(n));
    f->clear();
    f->seekg(0);
  }
  std::ostringstream all;
  all << f->rdbuf();
  if (f->bad()) {
    impl_->fail(stop_reason::bad_file, "cannot read " + path);
    return false;
  }
  return open_bytes(std::move(all).str());
}

bool reader::open_bytes(std::string bytes) {
  auto n = bytes.size();
  return impl_->start(std::make_unique<std::istringstream>(std::move(bytes)), n);
}

const file_header& reader::header() const noexcept {
  return impl_->header;
}
bool reader::next(generation& out) {
  return impl_->next(out);
}
stop_reason reader::stopped() const noexcept {
  return impl_->stopped;
}
const std::string& reader::error() const noexcept {
  return impl_->error;
}

namespace {
trace_file read_all(reader& r, bool opened) {
  trace_file f;
  f.opened = opened;
  if (opened) {
    f.header = r.header();
    generation g;
    while (r.next(g)) f.generations.push_back(std::move(g));
  }
  f.stopped = r.stopped();
  f.error = r.error();
  return f;
}
}  // namespace

trace_file read_file(const std::string& path) {
  reader r;
  bool ok = r.open(path);
  return read_all(r, ok);
}

trace_file read_bytes(std::string bytes) {
  reader r;
  bool ok = r.open_bytes(std::move(bytes));
  return read_all(r, ok);
}

}  // namespace taiga::trace
