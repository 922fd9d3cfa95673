// `export --format=chrome`: the Trace Event Format that chrome://tracing and
// Perfetto read. One track (tid) per worker with an `X` slice per run, flow
// arrows (`s` at the wake on the waker's track, `f` binding to the run it
// caused), `M` events naming the tracks, times in microseconds from the
// trace's start. The legacy viewer fails near a million events and Perfetto's
// JSON import near a gigabyte, so a bigger export asks for a window.
#include <cinttypes>

#include "commands.hpp"

namespace taiga::trace::cli {

std::string json_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 8);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char b = *p;
    if (b < 0x80) {
      if (b == '"' || b == '\\') {
        out += '\\';
        out += static_cast<char>(b);
      } else if (b < 0x20 || b == '<' || b == 0x7f) {
        char u[8];
        std::snprintf(u, sizeof u, "\\u%04x", b);
        out += u;
      } else {
        out += static_cast<char>(b);
      }
      ++p;
      continue;
    }
    // A well-formed UTF-8 sequence passes; anything else becomes U+FFFD.
    int n = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 0;
    bool good = n > 0 && end - p >= n;
    std::uint32_t cp = n == 2 ? b & 0x1f : n == 3 ? b & 0x0f : b & 0x07;
    for (int i = 1; good && i < n; ++i) {
      if ((p[i] & 0xc0) != 0x80) good = false;
      cp = cp << 6 | (p[i] & 0x3f);
    }
    if (good && ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
                 (n == 4 && (cp < 0x10000 || cp > 0x10ffff))))
      good = false;
    if (good) {
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
      p += n;
    } else {
      out += "\xef\xbf\xbd";
      ++p;
    }
  }
  return out;
}

namespace {

// Microseconds from the trace's start, as the format wants them.
std::string micros(const model& m, std::uint64_t t) {
  char b[32];
  std::uint64_t rel = t >= m.start ? t - m.start : 0;
  std::snprintf(b, sizeof b, "%" PRIu64 ".%03" PRIu64, rel / 1000, rel % 1000);
  return b;
}

// Non-worker threads get tracks after the workers.
constexpr std::uint64_t thread_track_base = 100000;

}  // namespace

int cmd_export(const context& c, std::ostream& out, std::ostream& err) {
  const auto& m = c.m;
  if (c.opts.get("format") != "chrome") {
    err << "taiga-trace: export needs --format=chrome (the only format so far)\n";
    return usage;
  }
  std::uint64_t from = m.start, to = m.end;
  bool window = false;
  if (c.opts.has("from")) from = m.start + *parse_duration(c.opts.get("from")), window = true;
  if (c.opts.has("to")) to = m.start + *parse_duration(c.opts.get("to")), window = true;
  std::optional<std::uint64_t> only;
  if (c.opts.has("tasklet")) {
    only = parse_count(c.opts.get("tasklet"));
    if (!only) {
      err << "taiga-trace: --tasklet takes a tasklet id\n";
      return usage;
    }
    window = true;
  }
  auto max_events = parse_count(c.opts.get("max-events", "1000000"));
  if (!max_events) {
    err << "taiga-trace: --max-events takes a count\n";
    return usage;
  }

  auto in_window = [&](const run_slice& s) {
    if (s.end < from || s.start > to) return false;
    return !only || s.tasklet == *only;
  };
  std::vector<std::uint32_t> slices;
  std::uint64_t flows = 0;
  for (std::uint32_t i = 0; i < m.slices.size(); ++i)
    if (in_window(m.slices[i])) {
      slices.push_back(i);
      if (m.slices[i].woken_by_wake != no_index) ++flows;
    }
  std::uint64_t total = slices.size() + 2 * flows;
  if (total > *max_events) {
    err << "taiga-trace: the export would hold " << total << " events, more than " << *max_events
        << " (chrome://tracing fails near a million): "
        << (window ? "narrow the window" : "choose a window with --from/--to or --tasklet")
        << ", or raise --max-events\n";
    return usage;
  }

  const auto pid = m.header.pid;
  out << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"source\":\"taiga-trace\",\"file\":\""
      << json_escape(c.path) << "\"},\"traceEvents\":[\n";
  bool first = true;
  auto sep = [&]() -> std::ostream& {
    if (!first) out << ",\n";
    first = false;
    return out;
  };
  std::set<std::uint64_t> tracks;
  for (auto i : slices) tracks.insert(m.slices[i].worker);
  for (auto i : slices)
    if (auto w = m.slices[i].woken_by_wake; w != no_index) {
      const auto& wk = m.wakes[w];
      tracks.insert(wk.thread_worker ? wk.thread_worker - 1 : thread_track_base + wk.thread);
    }
  sep() << "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" << pid
        << ",\"args\":{\"name\":\"taiga pid " << pid << " runtime " << m.header.runtime_id
        << "\"}}";
  for (auto t : tracks) {
    std::string name = t >= thread_track_base ? "thread " + std::to_string(t - thread_track_base)
                                              : "worker " + std::to_string(t);
    sep() << "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" << pid << ",\"tid\":" << t
          << ",\"args\":{\"name\":\"" << name << "\"}}";
    sep() << "{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":" << pid << ",\"tid\":" << t
          << ",\"args\":{\"sort_index\":" << t << "}}";
  }
  std::uint64_t flow_id = 0;
  for (auto i : slices) {
    const auto& s = m.slices[i];
    const auto& t = m.tasklets.at(s.tasklet);
    sep() << "{\"ph\":\"X\",\"cat\":\"run\",\"name\":\"" << json_escape(m.tasklet_label(s.tasklet))
          << "\",\"pid\":" << pid << ",\"tid\":" << s.worker << ",\"ts\":" << micros(m, s.start)
          << ",\"dur\":" << micros(m, m.start + (s.end - s.start))
          << ",\"args\":{\"tasklet\":" << s.tasklet << ",\"site\":\"" << json_escape(m.str(t.site))
          << "\",\"ended_by\":\""
          << (s.open ? "end of trace" : taiga::trace_format::event_name(s.ended_by)) << "\"}}";
    if (s.woken_by_wake == no_index) continue;
    const auto& w = m.wakes[s.woken_by_wake];
    ++flow_id;
    std::uint64_t track = w.thread_worker ? w.thread_worker - 1 : thread_track_base + w.thread;
    // Named by what the woken tasklet waited on: a send -> receive hand-off
    // shows as "wake: channel receive" (or "channel send" the other way).
    std::string name = "wake";
    if (w.park != no_index)
      name += std::string(": ") + taiga::trace_format::park_reason_name(m.parks[w.park].reason);
    sep() << "{\"ph\":\"s\",\"cat\":\"wake\",\"name\":\"" << name << "\",\"id\":" << flow_id
          << ",\"pid\":" << pid << ",\"tid\":" << track << ",\"ts\":" << micros(m, w.time)
          << ",\"args\":{\"waker\":" << w.waker << "}}";
    sep() << "{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"wake\",\"name\":\"" << name
          << "\",\"id\":" << flow_id << ",\"pid\":" << pid << ",\"tid\":" << s.worker
          << ",\"ts\":" << micros(m, s.start) << "}";
  }
  out << "\n]}\n";
  return ok;
}

}  // namespace taiga::trace::cli
