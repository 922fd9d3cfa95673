// libFuzzer target: any bytes through the reader, the model and every
// command's output (except symbolizing, which runs addr2line). The reader
// promises an error message, never a crash, never undefined behaviour, and
// memory bounded by the input's size; ASan and UBSan hold it to that.
//
//   scripts/fuzz-trace [SECONDS]
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  taiga::trace::reader r;
  if (!r.open_bytes(std::string(reinterpret_cast<const char*>(data), size))) return 0;
  namespace cli = taiga::trace::cli;
  cli::context c;
  c.path = "fuzz.trace";
  c.m = taiga::trace::build_model(r);
  c.stopped = r.stopped();
  c.opts.flags["format"] = "chrome";
  std::ostringstream out, err;
  cli::cmd_summary(c, out, err);
  cli::cmd_tasklets(c, out, err);
  cli::cmd_tree(c, out, err);
  cli::cmd_blocking(c, out, err);
  cli::cmd_check(c, out, err);
  cli::cmd_lint(c, out, err);
  cli::cmd_export(c, out, err);
  cli::cmd_html(c, out, err);
  // One tasklet's life: the first one, if any.
  if (!c.m.tasklets.empty()) {
    c.opts.positional = {c.path, std::to_string(c.m.tasklets.begin()->first)};
    cli::cmd_tasklet(c, out, err);
  }
  return 0;
}
