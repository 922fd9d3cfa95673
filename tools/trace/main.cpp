// taiga-trace: reads a taiga trace file; see `taiga-trace help` and
// docs/guide/tracing.md.
#include <exception>
#include <iostream>
#include <new>

#include "cli.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::ios::sync_with_stdio(false);
  try {
    return taiga::trace::cli::run(args, std::cout, std::cerr);
  } catch (const std::bad_alloc&) {
    std::cerr << "taiga-trace: out of memory (a window or a smaller trace may help)\n";
  } catch (const std::exception& e) {
    // The fuzzer treats any escaping exception as a bug; this is the last net.
    std::cerr << "taiga-trace: internal error: " << e.what() << "\n";
  }
  return 70;  // EX_SOFTWARE
}
