// tasklet_internal.hpp: a tasklet's side record (tasklet_core::extra), shared
// by tasklet.cpp and park.cpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stop_token>
#include <string>
#include <taiga/runtime/detail/tasklet_core.hpp>
#include <unordered_map>
#include <utility>

namespace taiga::detail {

struct tasklet_locals {
  std::unordered_map<std::size_t, std::pair<void*, void (*)(void*)>> slots;
  ~tasklet_locals() {
    for (auto& [k, v] : slots)
      if (v.first) v.second(v.first);
  }
};

/// The rarely used part of a tasklet's state (tasklet_core::extra). Who
/// writes what: `name` and `stop` under the tasklet's lock (or before it is published);
/// `locals`, `scope_deadline` only by the tasklet itself; `pending` under the
/// lock; `error` by the tasklet before it publishes `done` (release), read by
/// others after seeing `done` (acquire).
struct tasklet_extra {
  std::string name;
  tasklet_locals* locals = nullptr;
  std::exception_ptr pending;  // throw_into, delivered at the next park point
  std::exception_ptr error;    // how the tasklet ended, if it threw
  std::int64_t scope_deadline = INT64_MAX;
  std::uint32_t stack_request = 0;  // spawn_options::stack_size (usable bytes); 0 = default
  // tasklet::request_stop and the tokens: no stop state until first use
  // (stop_source_of), under the lock; a copy made under it is used outside.
  std::stop_source stop{std::nostopstate};
  ~tasklet_extra() { delete locals; }
};

/// The side record, installed on first use by whoever needs it first (any
/// thread: set_name, throw_into; or the tasklet). Installed once, by CAS, and
/// never replaced, so a pointer read once stays valid until the block dies.
inline tasklet_extra& extra_of(tasklet_core* t) {
  tasklet_extra* e = t->extra.load(std::memory_order_acquire);
  if (e != nullptr) return *e;
  auto* fresh = new tasklet_extra;
  if (t->extra.compare_exchange_strong(e, fresh, std::memory_order_acq_rel,
                                       std::memory_order_acquire))
    return *fresh;
  delete fresh;
  return *e;
}

inline tasklet_extra* extra_if_any(const tasklet_core* t) noexcept {
  return t->extra.load(std::memory_order_acquire);
}

}  // namespace taiga::detail
