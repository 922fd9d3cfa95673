// slab.hpp: memory for tasklet control blocks (see slab.cpp).
#pragma once

#include <cstddef>

namespace taiga::internal {

/// Blocks of up to slab_max bytes come from per-thread free lists over
/// pre-faulted chunks; larger ones from operator new.
inline constexpr std::size_t slab_max = 1024;
/// A block of `size` bytes is aligned to the largest power of two that
/// divides `size`, up to slab_max_align. A type's size is a multiple of its
/// alignment, so a block sized for one type (a tasklet_block<R, F>, whatever
/// F's alignas) is aligned for it.
inline constexpr std::size_t slab_max_align = 4096;
constexpr std::size_t block_alignment(std::size_t size) noexcept {
  std::size_t low = size & (~size + 1);
  return low < slab_max_align ? low : slab_max_align;
}
void* slab_allocate(std::size_t size);
void slab_free(void* p, std::size_t size) noexcept;

/// The process's 2 MiB chunks (all zero in sanitizer builds, which use
/// operator new).
struct slab_stats {
  std::size_t chunks = 0;          // opened (carved from), in all
  std::size_t chunks_ahead = 0;    // of those, populated by the filler thread
  std::size_t chunks_waiting = 0;  // populated ahead, not opened yet
  std::size_t populated_huge = 0;  // chunks populated as one huge page (chunk_policy)
};
slab_stats slab_statistics() noexcept;
/// Lets the slab start its filler thread once enough chunks have been
/// opened. Called when a runtime with worker threads starts: a process that
/// only runs embedded runtimes (no threads) keeps to the threads it made.
void slab_allow_filler() noexcept;

/// How the slab pre-faults its next 2 MiB chunk: as one transparent huge page
/// or in 4 KiB pages. Which one is cheaper depends on the host and on the
/// hour (slab.cpp, "Populating a chunk"), so the slab times every populate,
/// keeps to the cheaper kind, and tries the other one chunk in
/// `probe_every`. Not thread-safe: the slab's span lock guards it.
class chunk_policy {
 public:
  enum kind : unsigned char { huge = 0, small = 1 };
  static constexpr unsigned probe_every = 32;

  /// The kind to populate the next chunk as.
  kind next() noexcept {
    ++chunks_;
    // 4 KiB pages first: most programs need one chunk or a few, and after
    // idle (the usual start) 4 KiB pages are the cheap kind.
    if (cost_[small] < 0) return small;
    if (cost_[huge] < 0) return huge;
    // Huge pages also save TLB misses for as long as the chunk lives: they
    // keep the preference until they cost a quarter more.
    kind best = cost_[huge] <= 1.25 * cost_[small] ? huge : small;
    if (chunks_ % probe_every == 0) return best == huge ? small : huge;
    return best;
  }
  /// What populating one chunk as `k` just cost (any unit, the same for both).
  /// A kind's cost is the cheaper of its last two measurements: one populate
  /// slowed by a preemption does not send the next 31 chunks to the dearer
  /// kind; two dear ones in a row (the host really changed) do.
  void record(kind k, double cost) noexcept {
    cost_[k] = last_[k] < 0 || cost < last_[k] ? cost : last_[k];
    last_[k] = cost;
  }

 private:
  double cost_[2] = {-1, -1};  // what next() compares; -1: not measured yet
  double last_[2] = {-1, -1};  // the last measurement of each kind
  unsigned chunks_ = 0;
};

}  // namespace taiga::internal
