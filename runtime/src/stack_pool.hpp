// Stack pool: lazily committed tasklet and fiber stacks carved from large
// mappings, guard-paged, recycled warm. See stack_pool.cpp for the design.
#pragma once

#include <taiga/runtime/config.hpp>

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAIGA_STACK_POOL_HAS_ASAN 1
#endif
#endif
#ifndef TAIGA_STACK_POOL_HAS_ASAN
#define TAIGA_STACK_POOL_HAS_ASAN 0
#endif

namespace taiga::internal {

// The page size, read once at start-up (stack_pool.cpp). Visible here so that
// the switch path's stack arithmetic is inline, not a call per tasklet.
extern std::size_t g_page;

// The top `canary_bytes` of every slot are not part of its stack: they are
// the canary of the slot right above it (stack_pool::canary_at).
inline constexpr std::size_t canary_bytes = 64;

struct stack {
  char* base = nullptr;     // start of the slot, guard page included
  std::uint32_t total = 0;  // slot size in bytes (guard + usable + canary_bytes)
  stack_guard_mode guard = stack_guard_mode::none;

  char* lo() const noexcept { return base + g_page; }  // lowest usable byte
  std::size_t usable() const noexcept { return total - g_page - canary_bytes; }
  explicit operator bool() const noexcept { return base != nullptr; }
};

struct stack_pool_stats {
  std::size_t mapped_bytes = 0;  // address space reserved by all regions
  std::size_t outstanding = 0;   // stacks handed out and not yet returned
  std::size_t warm = 0;          // free stacks whose top page is resident
  std::size_t cold = 0;          // free stacks with no resident pages
  std::size_t regions = 0;
  std::size_t mprotect_guards = 0;  // stacks guarded with mprotect (2 VMAs each)
  std::size_t canary_guards = 0;    // stacks guarded by a canary only
};

class stack_pool {
 public:
  static stack_pool& instance();

  /// A stack with at least `usable` bytes below its top. Throws std::bad_alloc.
  stack allocate(std::size_t usable);
  void release(stack s) noexcept;
  /// Hands out again a stack its last user kept instead of releasing it (a
  /// worker's spare), as allocate() would: ASan's poisoning cleared (a
  /// canary needs nothing). Still counted as outstanding.
  static stack reissue(stack s) noexcept {
    // The compiler's own ASan macros, not TAIGA_SANITIZE_ADDRESS (defined for
    // the module targets only): every includer must compile the same body.
#if !defined(__SANITIZE_ADDRESS__) && !TAIGA_STACK_POOL_HAS_ASAN
    return s;  // every spawn's path
#else
    return reissue_slow(s);
#endif
  }

  /// Returns the memory of free stacks beyond `keep_warm` to the OS.
  void trim(std::size_t keep_warm = 0) noexcept;

  /// The guard mechanism new stacks get: the best this kernel offers (or the
  /// one forced by TAIGA_STACK_GUARD=madvise|mprotect|canary), until a
  /// fallback to canaries (the mprotect budget spent, MADV_GUARD_INSTALL
  /// failing), which is announced once on stderr.
  stack_guard_mode mode() const noexcept {
    return current_.load(std::memory_order_relaxed);
  }
  stack_pool_stats stats() const noexcept;

  /// Free stacks kept warm when trim_idle() gives memory back.
  void set_keep_warm(std::size_t n) noexcept {
    keep_warm_ = n;
  }
  /// Gives back what stayed free beyond keep_warm (called periodically).
  void trim_idle() noexcept {
    trim_class_all(keep_warm_);
  }

  // Canary mode. A stack's canary is 64 bytes kept zero right below its
  // slot: the top of the slot underneath (reserved in every slot, never part
  // of a stack), or a region's leading page for its lowest slot. An overflow
  // runs through the slot's own guard page (not a guard in this mode, just
  // nobody's memory) and then over the canary before it reaches anyone
  // else's; every switch off the stack checks it.
  //
  // Not the bottom of the stack itself, and not a pattern: both would touch
  // a page that a parked tasklet never touches. A pattern must be written,
  // and reading an untouched page maps a fresh page too on some kernels
  // (this guest's 6.18 does not use the shared zero page). With a million
  // parked tasklets: 8,342 B each with a pattern at the bottom, 4,280 B here
  // (bench_alive_1m, TAIGA_STACK_GUARD=canary; design/tasklets.md, section 4).
  // The slot underneath is in use, its top page resident, whenever the pool
  // is crowded (it hands out the lowest addresses first), and a trim leaves
  // zeros. The price: an overflow that writes only zeros over the 64 bytes
  // goes unseen, as does one whose frame skips them (pattern or not), and an
  // overflow by less than a page is not reported at all: it wrote nobody's
  // memory.
  static const void* canary_at(const void* stack_lo) noexcept {
    return static_cast<const char*>(stack_lo) - g_page - canary_bytes;
  }
  static bool canary_intact(const void* stack_lo) noexcept {
    const auto* w = static_cast<const std::uint64_t*>(canary_at(stack_lo));
    std::uint64_t any = 0;
    for (std::size_t i = 0; i < canary_bytes / sizeof *w; ++i) any |= w[i];
    return any == 0;
  }
  static std::size_t page_size() noexcept {
    return g_page;
  }

  /// Installs the SIGSEGV/SIGBUS overflow handler (once per process) and an
  /// alternate signal stack for the calling thread (once per thread).
  static void prepare_thread() noexcept;

  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;

 private:
  static stack reissue_slow(stack s) noexcept;
  stack_pool();
  struct size_class;
  size_class& class_for(std::uint32_t total);
  void release_to_class(stack s) noexcept;
  void trim_class(size_class& c, std::size_t keep) noexcept;
  void trim_class_all(std::size_t keep) noexcept;
  void count_outstanding(std::int64_t d) noexcept;
  void fall_back_to_canary(const char* why) noexcept;
  const stack_guard_mode mode_;            // what detect_mode() chose
  std::atomic<stack_guard_mode> current_;  // what new stacks get
  std::size_t keep_warm_ = 8192;
  struct impl;
  impl* impl_;
  friend struct thread_cache;
};

/// Describes the overflowing context for the overflow message; installed by
/// the tasklet layer. Must be async-signal-safe: formats into `buf`. `owner`
/// is null when the guard page caught it: the context running on this
/// thread overflowed.
using overflow_describer = std::size_t (*)(const void* owner, std::uint8_t kind, char* buf,
                                           std::size_t len);
void set_overflow_describer(overflow_describer fn) noexcept;

/// madvise(advice) over every range, batched with process_madvise where the
/// kernel allows it; false if any range failed (each is still tried).
bool madvise_many(const std::vector<iovec>& ranges, int advice);

/// Reports a stack overflow of the context (canary mode) and aborts.
[[noreturn]] void report_overflow(const void* owner, std::uint8_t kind) noexcept;

}  // namespace taiga::internal
