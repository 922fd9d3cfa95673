// Park and spawn sites as source lines. The recorder stores a site as the
// return address of the public call, written "0x<hex>" relative to the
// executable's load address (what addr2line takes), and the header records
// the executable's path and GNU build-id. Symbolizing runs binutils'
// addr2line once per 256 addresses, but only against the very binary that
// wrote the trace: a rebuilt executable at the same path has another
// build-id, and its lines would be confidently wrong.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "commands.hpp"

extern char** environ;

namespace taiga::trace::cli {

namespace {

bool is_address(const std::string& s) {
  if (s.size() < 3 || s.size() > 18 || s[0] != '0' || s[1] != 'x') return false;
  for (std::size_t i = 2; i < s.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

std::uint64_t le(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// Runs `argv` and returns its standard output; nullopt if it could not run
// or failed.
std::optional<std::string> capture(const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) return std::nullopt;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0)
      out.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string elf_build_id(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  unsigned char eh[64];
  if (!f.read(reinterpret_cast<char*>(eh), sizeof eh)) return {};
  // 64-bit little-endian ELF only: what taiga builds for.
  if (std::memcmp(eh,
                  "\x7f"
                  "ELF",
                  4) != 0 ||
      eh[4] != 2 || eh[5] != 1)
    return {};
  std::uint64_t phoff = le(eh + 0x20, 8), phentsize = le(eh + 0x36, 2), phnum = le(eh + 0x38, 2);
  if (phentsize < 56 || phnum > 4096) return {};
  for (std::uint64_t i = 0; i < phnum; ++i) {
    unsigned char ph[56];
    f.seekg(static_cast<std::streamoff>(phoff + i * phentsize));
    if (!f.read(reinterpret_cast<char*>(ph), sizeof ph)) return {};
    if (le(ph, 4) != 4) continue;  // PT_NOTE
    std::uint64_t off = le(ph + 8, 8), size = le(ph + 32, 8);
    if (size > (1u << 20)) continue;
    std::string notes(static_cast<std::size_t>(size), '\0');
    f.seekg(static_cast<std::streamoff>(off));
    if (!f.read(notes.data(), static_cast<std::streamsize>(size))) return {};
    const auto* p = reinterpret_cast<const unsigned char*>(notes.data());
    std::size_t at = 0;
    while (at + 12 <= notes.size()) {
      std::uint64_t namesz = le(p + at, 4), descsz = le(p + at + 4, 4), type = le(p + at + 8, 4);
      std::uint64_t name_at = at + 12, desc_at = name_at + ((namesz + 3) & ~std::uint64_t{3});
      std::uint64_t next = desc_at + ((descsz + 3) & ~std::uint64_t{3});
      if (namesz > notes.size() || descsz > notes.size() || next > notes.size()) break;
      if (type == 3 && namesz == 4 && std::memcmp(p + name_at, "GNU", 4) == 0) {  // NT_GNU_BUILD_ID
        std::string hex;
        for (std::uint64_t j = 0; j < descsz; ++j) {
          char b[3];
          std::snprintf(b, sizeof b, "%02x", p[desc_at + j]);
          hex += b;
        }
        return hex;
      }
      at = static_cast<std::size_t>(next);
    }
  }
  return {};
}

void symbolize(model& m, std::vector<std::string>& notes) {
  std::vector<std::uint32_t> addresses;
  for (std::uint32_t i = 1; i < m.strings.size(); ++i)
    if (is_address(m.strings[i])) addresses.push_back(i);
  if (addresses.empty()) return;
  const auto& h = m.header;
  auto why_not = [&](const std::string& reason) {
    notes.push_back("sites stay addresses: " + reason);
  };
  if (h.exe_path.empty() || h.build_id.empty())
    return why_not("the trace records no executable and build-id");
  std::string id = elf_build_id(h.exe_path);
  if (id.empty()) return why_not(h.exe_path + " is missing or has no build-id");
  std::string want = h.build_id;
  for (auto& ch : want) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (id != want)
    return why_not(h.exe_path + " has build-id " + id + ", the trace was written by " + want);
  constexpr std::size_t chunk = 256;
  for (std::size_t from = 0; from < addresses.size(); from += chunk) {
    std::vector<std::string> args = {"addr2line", "-f", "-C", "-e", h.exe_path};
    std::size_t n = std::min(chunk, addresses.size() - from);
    for (std::size_t i = 0; i < n; ++i) args.push_back(m.strings[addresses[from + i]]);
    auto out = capture(args);
    if (!out) return why_not("addr2line did not run (binutils installed?)");
    // Two lines per address: function, then file:line.
    std::vector<std::string> lines;
    std::size_t at = 0;
    while (at < out->size()) {
      auto nl = out->find('\n', at);
      if (nl == std::string::npos) nl = out->size();
      lines.push_back(out->substr(at, nl - at));
      at = nl + 1;
    }
    if (lines.size() < 2 * n) return why_not("addr2line's output was not understood");
    for (std::size_t i = 0; i < n; ++i) {
      auto& s = m.strings[addresses[from + i]];
      const auto& fn = lines[2 * i];
      auto file = lines[2 * i + 1];
      if (auto slash = file.rfind('/'); slash != std::string::npos) file = file.substr(slash + 1);
      if (fn == "??" && file.rfind("??", 0) == 0) continue;
      s = fn + " " + file + " (" + s + ")";
    }
  }
}

}  // namespace taiga::trace::cli
