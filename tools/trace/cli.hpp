// taiga-trace's commands behind one entry point, so that the executable and
// the tests run the same code.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace taiga::trace::cli {

/// Exit statuses of taiga-trace.
enum exit_status : int {
  ok = 0,
  findings = 1,    // check or lint found problems
  usage = 2,       // bad arguments
  unreadable = 3,  // not a trace, a newer format, or no file
  damaged = 4,     // truncated or damaged: the output covers the complete generations
};

/// Runs `taiga-trace args...` (args[0] is the command). Output goes to `out`,
/// messages to `err`; returns an exit_status.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace taiga::trace::cli
