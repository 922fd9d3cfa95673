// Internal to taiga-trace: what each command gets, and helpers they share.
#pragma once

#include <taiga/trace/model.hpp>

#include "cli.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace taiga::trace::cli {

struct options {
  std::vector<std::string> positional;       // after the command name
  std::map<std::string, std::string> flags;  // --name=value, --name value, -o value

  bool has(const std::string& k) const { return flags.count(k) != 0; }
  std::string get(const std::string& k, const std::string& fallback = {}) const {
    auto it = flags.find(k);
    return it == flags.end() ? fallback : it->second;
  }
};

struct context {
  std::string path;
  model m;
  stop_reason stopped = stop_reason::none;
  options opts;
};

int cmd_summary(const context& c, std::ostream& out, std::ostream& err);
int cmd_tasklets(const context& c, std::ostream& out, std::ostream& err);
int cmd_tasklet(const context& c, std::ostream& out, std::ostream& err);
int cmd_tree(const context& c, std::ostream& out, std::ostream& err);
int cmd_blocking(const context& c, std::ostream& out, std::ostream& err);
int cmd_check(const context& c, std::ostream& out, std::ostream& err);
int cmd_lint(const context& c, std::ostream& out, std::ostream& err);
int cmd_export(const context& c, std::ostream& out, std::ostream& err);
int cmd_html(const context& c, std::ostream& out, std::ostream& err);

/// Replaces site strings "0x..." by "function file:line" with addr2line when
/// the header's executable exists and its build-id matches; notes why not.
void symbolize(model& m, std::vector<std::string>& notes);
/// The GNU build-id of an ELF file in hex; "" if it has none or is no ELF.
std::string elf_build_id(const std::string& path);

/// Writes the summary (also embedded in the HTML page).
void write_summary(const context& c, std::ostream& out);

// --- text helpers -------------------------------------------------------------

inline std::string duration(std::uint64_t ns) {
  char b[32];
  if (ns < 1000)
    std::snprintf(b, sizeof b, "%llu ns", static_cast<unsigned long long>(ns));
  else if (ns < 1000000)
    std::snprintf(b, sizeof b, "%.2f us", static_cast<double>(ns) / 1e3);
  else if (ns < 1000000000)
    std::snprintf(b, sizeof b, "%.2f ms", static_cast<double>(ns) / 1e6);
  else
    std::snprintf(b, sizeof b, "%.3f s", static_cast<double>(ns) / 1e9);
  return b;
}

/// A time as an offset from the trace's start, in seconds with ns digits.
inline std::string offset(const model& m, std::uint64_t t) {
  char b[32];
  std::snprintf(b, sizeof b, "+%.6f", static_cast<double>(t >= m.start ? t - m.start : 0) / 1e9);
  return b;
}

inline std::string percent(std::uint64_t part, std::uint64_t whole) {
  char b[16];
  std::snprintf(b, sizeof b, "%.1f%%", whole ? 100.0 * static_cast<double>(part) / whole : 0.0);
  return b;
}

/// The p-th percentile (0..100) of sorted values, nearest rank.
inline std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

inline std::string object_name(std::uint64_t object) {
  if (object == 0) return "-";
  if (object & 1) return "fd " + std::to_string(object >> 1);
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(object));
  return b;
}

inline std::string or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

/// Columns padded to their widest cell; `right` marks numeric columns.
class table {
 public:
  explicit table(std::vector<std::string> head, std::vector<bool> right = {})
      : right_(std::move(right)) {
    rows_.push_back(std::move(head));
  }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::size_t size() const { return rows_.size() - 1; }
  void print(std::ostream& out, const std::string& indent = "  ") const {
    std::vector<std::size_t> w;
    for (const auto& r : rows_)
      for (std::size_t i = 0; i < r.size(); ++i) {
        if (w.size() <= i) w.push_back(0);
        w[i] = std::max(w[i], r[i].size());
      }
    for (const auto& r : rows_) {
      std::string line = indent;
      for (std::size_t i = 0; i < r.size(); ++i) {
        bool last = i + 1 == r.size();
        std::string pad(w[i] - r[i].size(), ' ');
        bool right = i < right_.size() && right_[i];
        if (right) line += pad;
        line += r[i];
        if (!right && !last) line += pad;
        if (!last) line += "  ";
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out << line << '\n';
    }
  }

 private:
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

/// Parses a decimal count (digits only, fits 64 bits).
std::optional<std::uint64_t> parse_count(const std::string& s);

/// Parses "1.5ms", "200us", "3s", "10ns" or a plain number of milliseconds.
std::optional<std::uint64_t> parse_duration(const std::string& s);

}  // namespace taiga::trace::cli

namespace taiga::trace::cli {

/// `s` as a JSON string body: quotes, backslashes and control characters
/// escaped, '<' too (the HTML page embeds JSON in a script element), and
/// bytes that are not UTF-8 replaced by U+FFFD so that any parser accepts it.
std::string json_escape(const std::string& s);

}  // namespace taiga::trace::cli
