#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <taiga/runtime/errors.hpp>

namespace taiga {
namespace detail {
/// Slot storage of the calling tasklet (created on first use). Throws
/// usage_error outside tasklets.
void*& tasklet_local_slot(std::size_t key, void (*destroy)(void*));
std::size_t new_tasklet_local_key();
}  // namespace detail

/// Per-tasklet storage, like thread_local but for tasklets (which migrate
/// between worker threads, so thread_local is not per tasklet). Each tasklet
/// sees its own T, value-initialised (or built by `init`) on first access and
/// destroyed when the tasklet ends, on the tasklet (the destructor may park).
/// A destructor may use other tasklet_locals: values made that way are
/// destroyed too, in up to 4 rounds, as POSIX does for thread keys; what is
/// still made after that is leaked, with a line on stderr.
template <class T>
class tasklet_local {
 public:
  tasklet_local() : key_(detail::new_tasklet_local_key()) {}
  explicit tasklet_local(std::function<T()> init)
      : key_(detail::new_tasklet_local_key()), init_(std::move(init)) {}
  tasklet_local(const tasklet_local&) = delete;
  tasklet_local& operator=(const tasklet_local&) = delete;

  T& get() {
    void*& slot = detail::tasklet_local_slot(key_, [](void* p) { delete static_cast<T*>(p); });
    if (slot == nullptr) slot = init_ ? new T(init_()) : new T();
    return *static_cast<T*>(slot);
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }

 private:
  std::size_t key_;
  std::function<T()> init_;
};

}  // namespace taiga
