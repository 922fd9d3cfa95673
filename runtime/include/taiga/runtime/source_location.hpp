#pragma once

#include <cstdint>
#include <cstring>
#if __has_include(<source_location>)
#include <bit>
#include <source_location>
#endif

namespace taiga {

/// Where something was written: like std::source_location (same members),
/// but available with every compiler we support (clang 14's libstdc++ 12
/// headers lack std::source_location), with one layout in every build.
/// It holds pointers, not copies: a wrapper that builds one by hand must
/// pass strings that live as long as the program (string literals, as the
/// compiler's are). A tasklet keeps its site after its spawner returns, and
/// spawn interns each distinct (file, function, line, column), compared by
/// pointer, for good: a file name built at run time for every spawn would
/// dangle and grow that table without bound.
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

namespace taiga::detail {

// Where the compiler has std::source_location and it is one pointer to a
// static record (libstdc++ and libc++: g++ 11+, clang 15+), a spawn records
// that pointer. clang 14 with libstdc++ 12 (our TSan build) has neither.
#if defined(__cpp_lib_source_location) && (defined(__GLIBCXX__) || defined(_LIBCPP_VERSION))
#define TAIGA_STD_SOURCE_LOCATION 1
#else
#define TAIGA_STD_SOURCE_LOCATION 0
#endif

/// A call site as a tasklet records it: the layout of the record that
/// libstdc++'s and libc++'s std::source_location point to (two strings, a
/// line and a column). It lives as long as the program.
struct site_record {
  const char* file;
  const char* function;
  std::uint_least32_t line;
  std::uint_least32_t column;
};

/// The library's copy of `s`, one per distinct value, never freed: for
/// sites that are not a static record already (a taiga::source_location
/// passed on by a wrapper; every site where TAIGA_STD_SOURCE_LOCATION is 0).
const site_record* intern_site(const taiga::source_location& s);

inline taiga::source_location to_location(const site_record* r) noexcept {
  if (r == nullptr) return taiga::source_location();
  // A copy of the bytes: `r` may point to std::source_location's own record,
  // an object of another (layout-identical) type.
  site_record v;
  std::memcpy(&v, r, sizeof v);
  return taiga::source_location::current(v.file, v.function, v.line, v.column);
}

/// The trailing parameter of spawn, run and call_later: the caller's site
/// as one pointer, so that a tasklet block spends 8 bytes on it, not the 24
/// of a taiga::source_location (fresh memory is time: tasklet_core.hpp). A
/// taiga::source_location converts to it (a wrapper that passes on its own
/// caller's site), at the cost of one lookup in the library's table.
class call_site {
 public:
#if TAIGA_STD_SOURCE_LOCATION
  static call_site current(std::source_location s = std::source_location::current()) noexcept {
    static_assert(sizeof(std::source_location) == sizeof(const site_record*));
    return call_site(std::bit_cast<const site_record*>(s));
  }
#else
  static call_site current(const char* file = __builtin_FILE(),
                           const char* function = __builtin_FUNCTION(),
                           std::uint_least32_t line = __builtin_LINE(),
                           std::uint_least32_t column = TAIGA_BUILTIN_COLUMN()) {
    return call_site(taiga::source_location::current(file, function, line, column));
  }
#endif
  /// No site: what a wait without one records (prepare_wait's default).
  constexpr call_site() noexcept = default;
  call_site(const taiga::source_location& s) : record_(intern_site(s)) {}  // NOLINT: implicit
  const site_record* record() const noexcept {
    return record_;
  }

 private:
  explicit call_site(const site_record* r) noexcept : record_(r) {}
  const site_record* record_ = nullptr;
};

}  // namespace taiga::detail
