#pragma once

#include <cstdint>

namespace taiga {

/// Where something was written: like std::source_location (same members),
/// but available with every compiler we support (clang 14's libstdc++ 12
/// headers lack std::source_location), with one layout in every build.
#if defined(__has_builtin)
#if __has_builtin(__builtin_COLUMN)
#define TAIGA_BUILTIN_COLUMN() __builtin_COLUMN()
#endif
#endif
#ifndef TAIGA_BUILTIN_COLUMN
#define TAIGA_BUILTIN_COLUMN() 0
#endif

class source_location {
 public:
  static constexpr source_location current(
      const char* file = __builtin_FILE(), const char* function = __builtin_FUNCTION(),
      std::uint_least32_t line = __builtin_LINE(),
      std::uint_least32_t column = TAIGA_BUILTIN_COLUMN()) noexcept {
    source_location s;
    s.file_ = file;
    s.function_ = function;
    s.line_ = line;
    s.column_ = column;
    return s;
  }
  constexpr source_location() noexcept = default;
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return column_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
  std::uint_least32_t column_ = 0;
};

}  // namespace taiga
