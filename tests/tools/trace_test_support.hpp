// Runs taiga-trace's commands in-process on traces the tests write.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "trace_writer.hpp"

namespace taiga::test {

struct cli_result {
  int rc = 0;
  std::string out, err;
};

/// A scratch directory per test, removed at the end.
class scratch_dir {
 public:
  scratch_dir() {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "x";
    for (auto& c : name)
      if (c == '/') c = '_';
    dir_ = std::filesystem::temp_directory_path() /
           ("taiga-trace-test-" + std::to_string(::getpid()) + "-" + name);
    std::filesystem::create_directories(dir_);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& file) const { return (dir_ / file).string(); }
  std::string write(const std::string& file, const std::string& bytes) const {
    auto p = path(file);
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

 private:
  std::filesystem::path dir_;
};

inline cli_result run_cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  cli_result r;
  r.rc = taiga::trace::cli::run(args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline std::size_t occurrences(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace taiga::test
