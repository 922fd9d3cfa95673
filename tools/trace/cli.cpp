// taiga-trace's argument parsing and dispatch. Every command reads the whole
// file through taiga::trace::read_file and replays it with build_model; the
// file's condition decides the exit status as much as the command does: a
// truncated or damaged trace still gets its report (the complete
// generations), a note on stderr and exit status 4, so that a script cannot
// mistake half a trace for a whole one.
#include "cli.hpp"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "commands.hpp"

namespace taiga::trace::cli {

namespace {

constexpr const char* usage_text =
    R"(usage: taiga-trace COMMAND FILE [options]

commands:
  summary FILE                 duration, workers, spawn sites, park reasons,
                               scheduler latency, dropped events
  tasklets FILE [--name=S] [--site=S] [--state=STATE]
                               one line per tasklet (STATE: created, ready,
                               running, parked, done, unknown)
  tasklet FILE ID              one tasklet's life: runs, parks, wakes
  tree FILE                    the spawn tree, folded by spawn site
  blocking FILE                wait time by reason, park site and object
  check FILE                   replays the state machine; exit 1 on a break
  lint FILE [--slice-ms=10] [--yield-storm=1000]
                               long run slices, yield storms, lost wakers,
                               channels nobody receives from; exit 1 if any
  export --format=chrome FILE [-o OUT.json] [--from=T] [--to=T] [--tasklet=ID]
         [--max-events=N]      Perfetto / chrome://tracing JSON
  html FILE [-o OUT.html]      one self-contained page: timeline and tables
  help                         this text

FILE may be - (standard input) or a pipe. Times (--from, --to) are offsets from the trace's start: 1.5ms, 200us, 2s,
or a plain number of milliseconds. --no-symbolize keeps park sites as
addresses. Exit status: 0 ok, 1 findings (check, lint), 2 usage, 3 not a
readable trace, 4 truncated or damaged (the output covers what was complete).
)";

// Flags that take a value; everything else starting with "--" is a switch.
bool takes_value(const std::string& k) {
  static const char* const with_value[] = {"name",   "site",       "state",    "format",
                                           "from",   "to",         "tasklet",  "o",
                                           "output", "max-events", "slice-ms", "yield-storm"};
  for (auto* v : with_value)
    if (k == v) return true;
  return false;
}

bool known_switch(const std::string& k) {
  return k == "no-symbolize" || k == "help";
}

}  // namespace

std::optional<std::uint64_t> parse_count(const std::string& s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return std::nullopt;
    auto d = static_cast<std::uint64_t>(ch - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<std::uint64_t> parse_duration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno != 0 || !(v >= 0) || !std::isfinite(v)) return std::nullopt;
  std::string unit(end);
  double scale = 0;
  if (unit.empty() || unit == "ms")
    scale = 1e6;
  else if (unit == "ns")
    scale = 1;
  else if (unit == "us")
    scale = 1e3;
  else if (unit == "s")
    scale = 1e9;
  else
    return std::nullopt;
  double ns = v * scale;
  if (ns > 1.8e19) return std::nullopt;
  return static_cast<std::uint64_t>(ns);
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << usage_text;
    return args.empty() ? usage : ok;
  }
  using command_fn = int (*)(const context&, std::ostream&, std::ostream&);
  static const std::map<std::string, command_fn> commands = {
      {"summary", cmd_summary}, {"tasklets", cmd_tasklets}, {"tasklet", cmd_tasklet},
      {"tree", cmd_tree},       {"blocking", cmd_blocking}, {"check", cmd_check},
      {"lint", cmd_lint},       {"export", cmd_export},     {"html", cmd_html}};
  auto cmd = commands.find(args[0]);
  if (cmd == commands.end()) {
    err << "taiga-trace: unknown command '" << args[0] << "'\n" << usage_text;
    return usage;
  }

  context c;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a.size() > 1 && a[0] == '-' && a != "-") {
      std::string k = a.substr(a[1] == '-' ? 2 : 1), v;
      auto eq = k.find('=');
      bool inline_value = eq != std::string::npos;
      if (inline_value) {
        v = k.substr(eq + 1);
        k.resize(eq);
      }
      if (k == "output") k = "o";
      if (takes_value(k)) {
        if (!inline_value) {
          if (i + 1 >= args.size()) {
            err << "taiga-trace: " << a << " needs a value\n";
            return usage;
          }
          v = args[++i];
        }
      } else if (!known_switch(k) || inline_value) {
        err << "taiga-trace: unknown option " << a << "\n";
        return usage;
      }
      c.opts.flags[k] = v;
    } else {
      c.opts.positional.push_back(a);
    }
  }
  std::size_t want = args[0] == "tasklet" ? 2 : 1;
  if (c.opts.positional.size() != want) {
    err << "taiga-trace: " << args[0] << " takes " << (want == 2 ? "FILE ID" : "FILE")
        << " (see taiga-trace help)\n";
    return usage;
  }
  for (const char* k : {"from", "to"})
    if (c.opts.has(k) && !parse_duration(c.opts.get(k))) {
      err << "taiga-trace: --" << k << "=" << c.opts.get(k)
          << " is not a time (examples: 1.5ms, 200us, 2s)\n";
      return usage;
    }

  c.path = c.opts.positional[0];
  if (c.path == "-") c.path = "/dev/stdin";
  // One generation in memory at a time: the model keeps only its records.
  reader r;
  if (!r.open(c.path)) {
    err << "taiga-trace: " << c.path << ": " << r.error() << "\n";
    return unreadable;
  }
  c.m = build_model(r);
  c.stopped = r.stopped();
  if (!c.opts.has("no-symbolize")) symbolize(c.m, c.m.notes);
  for (const auto& n : c.m.notes) err << "taiga-trace: note: " << n << "\n";

  std::ofstream file_out;
  std::ostream* dest = &out;
  if (c.opts.has("o") && c.opts.get("o") != "-") {
    file_out.open(c.opts.get("o"), std::ios::binary | std::ios::trunc);
    if (!file_out) {
      err << "taiga-trace: cannot write " << c.opts.get("o") << "\n";
      return usage;
    }
    dest = &file_out;
  }
  int rc = cmd->second(c, *dest, err);
  if (file_out.is_open()) {
    file_out.close();
    if (!file_out) {
      err << "taiga-trace: writing " << c.opts.get("o") << " failed\n";
      return usage;
    }
  }
  if (rc != ok) return rc;
  if (c.stopped != stop_reason::none) return damaged;
  return ok;
}

}  // namespace taiga::trace::cli
