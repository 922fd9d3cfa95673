// The only interface to Boost.Context. See context.cpp for the design notes.
#pragma once

#include <taiga/runtime/detail/exec_context.hpp>

namespace taiga::internal {

using detail::exec_context;

/// Fills `ctx` for the calling OS thread's own stack (the context a worker
/// loop or a plain thread runs on). Call once per thread before switching.
void init_thread_context(exec_context& ctx);

/// Prepares `ctx` to run `ctx.entry(payload)` on [lo, lo + size) when first
/// switched to. `ctx.entry`, `ctx.owner` and `ctx.kind` must be set.
void make_context(exec_context& ctx, void* lo, std::size_t size);

/// Suspends `from` and resumes `to`, handing it `payload`. Returns the payload
/// handed over by whoever later resumes `from`.
void* switch_context(exec_context& from, exec_context& to, void* payload);

/// Like switch_context, for a context that will never be resumed: its stack
/// may be recycled by the resumed side as soon as it runs.
[[noreturn]] void exit_context(exec_context& from, exec_context& to, void* payload);

/// Releases sanitizer state of a context that has exited (called by the side
/// that recycles its stack, never by the context itself).
void destroy_context(exec_context& ctx);

/// The context running on this thread right now (or nullptr before the
/// thread's first switch). Used by the stack overflow handler.
exec_context* running_context() noexcept;

/// Which switch annotations this build carries ("none", "asan", "tsan").
const char* sanitizer_annotations() noexcept;

}  // namespace taiga::internal
