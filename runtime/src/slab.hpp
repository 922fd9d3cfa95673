// slab.hpp: memory for tasklet control blocks (see slab.cpp).
#pragma once

#include <cstddef>

namespace taiga::internal {

/// Blocks of up to slab_max bytes come from per-thread free lists over
/// pre-faulted chunks; larger ones from operator new.
inline constexpr std::size_t slab_max = 1024;
void* slab_allocate(std::size_t size);
void slab_free(void* p, std::size_t size) noexcept;

}  // namespace taiga::internal
