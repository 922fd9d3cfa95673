// taiga-trace: reads a taiga trace file; see `taiga-trace help` and
// docs/guide/tracing.md.
#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::ios::sync_with_stdio(false);
  return taiga::trace::cli::run(args, std::cout, std::cerr);
}
