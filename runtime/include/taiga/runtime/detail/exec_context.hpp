// Installed because tasklet_core (below the public templates) embeds it.
// Users must not name anything in taiga::detail.
#pragma once

#include <cstddef>
#include <cstdint>

namespace taiga::detail {

/// One execution context: a tasklet's root stack, a fiber's stack, or the
/// original stack of an OS thread. The layout is the same in every build so
/// that sanitizer and plain translation units can be mixed.
struct exec_context {
  void* fctx = nullptr;               // saved Boost.Context fcontext while suspended
  void* stack_lo = nullptr;           // lowest usable address (above any guard page)
  union {                             // ASan and TSan never share a build
    void* asan_fake_stack = nullptr;  // ASan's fake-stack handle while suspended
    void* tsan_fiber;                 // TSan fiber id for this context
  };
  // Usable bytes. Not 32 bits: a thread's own stack can be huge (ulimit -s
  // unlimited), and ASan needs its real bounds on every switch back to it.
  std::size_t stack_size = 0;
  // The C++ runtime's per-thread exception state (the ABI's
  // __cxa_eh_globals: the chain of exceptions being handled, and how many
  // are in flight) while this context is suspended. The runtime keeps it
  // per OS thread, so a context that parks inside a catch block, or in a
  // destructor during unwinding, takes its own with it (context.hpp,
  // "Exception state").
  void* eh_caught = nullptr;
  std::uint32_t eh_uncaught = 0;
  std::uint8_t kind = 0;  // 0 thread, 1 tasklet, 2 fiber
  bool canary = false;    // 64 zero bytes below the slot, checked at each switch
  // 48 bytes: every started tasklet has one in its tasklet_frame, on its own
  // stack. The entry function of a fresh context lives at the top of its own
  // stack (make_context), not here.
};

}  // namespace taiga::detail
