// context.cpp (with context.hpp, its other half): every Boost.Context call and
// every sanitizer fiber hook lives in these two files. The switch itself is
// inline in context.hpp, so that the frame that jumps is its caller's (see
// `jump` and `switch_context` there); nothing else includes fcontext.hpp.
//
// What: a tiny layer over Boost.Context's fcontext primitives (make_fcontext,
// jump_fcontext) that switches between exec_contexts and hands a payload
// pointer across each switch.
//
// Why fcontext and not boost::context::fiber or ucontext: a jump_fcontext is a
// handful of instructions (save six callee-saved registers, swap stack
// pointers), while `fiber` adds a heap record and a resume-with-lambda
// protocol we would only wrap again, and ucontext saves signal masks with a
// syscall on every switch (~1.2 us on our machines, 30x the target switch
// cost). Boost 1.81 only annotates its ucontext backend for sanitizers, so we
// annotate the fcontext switch ourselves; that keeps one switch path for
// every build (reliability.md part B: hand annotations around fcontext are
// clean under ASan and clang's TSan).
//
// Protocol of one switch (from -> to, payload p):
//  1. The switcher records where the thread is going (running_context = to),
//     moves the thread's C++ exception state from the thread into `from`
//     and from `to` into the thread (context.hpp, "Exception state"), and
//     tells ASan which stack it is about to run on and TSan which fiber.
//  2. jump_fcontext(to.fctx, msg{&from, p}) saves from's registers on from's
//     stack and resumes `to`.
//  3. The resumed side, in its own frame, stores the fcontext that jump
//     returned into msg.from->fctx. Only now is `from` resumable: nobody may
//     publish `from` to another thread before this store, which is why every
//     "make the previous tasklet ready" action runs on the resumed side
//     (scheduler.cpp, after_switch).
//  4. The resumed side finishes the ASan switch and returns p.
//
// Invariants:
//  X1 a context is resumed at most once per suspension (owners guarantee it).
//  X2 `from->fctx` is written only by the side that resumes after `from`
//     suspended, before anything can resume `from` again.
//  X3 a context's stack is recycled only after a switch away from it has
//     completed (exit_context, then destroy_context on the resumed side).
//  X4 (TSan) __tsan_switch_to_fiber is called only from the frame that calls
//     jump_fcontext (before_switch is always_inline), and every context gets
//     a fresh TSan fiber, destroyed with it. See before_switch, make_context.
//  X5 a context whose entry function is at its bottom frame may go on with a
//     new owner instead of exiting (a fresh tasklet adopting the stack:
//     worker::exit_current): no switch, the same TSan fiber (its shadow
//     stack is balanced: the ended owner's frames all returned or unwound),
//     and reuse_below clears ASan's poisoning of the dead part of the stack.
#include "context.hpp"

namespace bctx = boost::context::detail;

#include <cxxabi.h>
#if defined(TAIGA_SANITIZE_ADDRESS)
#include <sanitizer/asan_interface.h>
#endif
#include <pthread.h>

#include <cstdio>
#include <cstdlib>

namespace taiga::internal {

constinit thread_local exec_context* tls_running = nullptr;
constinit thread_local eh_globals* tls_eh = nullptr;

eh_globals* init_eh_globals() noexcept {
  tls_eh = reinterpret_cast<eh_globals*>(abi::__cxa_get_globals());
  return tls_eh;
}

namespace {
using namespace detail_switch;
constexpr std::size_t entry_slot = 16;  // keeps make_fcontext's sp 16-aligned

context_entry* entry_of(const exec_context& ctx) noexcept {
  return reinterpret_cast<context_entry*>(static_cast<char*>(ctx.stack_lo) + ctx.stack_size -
                                          entry_slot);
}

void trampoline(bctx::transfer_t t) {
  exec_context* self = tls_running;
  context_entry entry = *entry_of(*self);
  void* payload = after_switch(t, nullptr);
  entry(payload);
  // entry functions leave through exit_context and never return here.
  std::fputs("taiga: a context's entry function returned\n", stderr);
  std::abort();
}

}  // namespace

void init_thread_context(exec_context& ctx) {
  ctx.kind = 0;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      ctx.stack_lo = addr;
      ctx.stack_size = size;
    }
    pthread_attr_destroy(&attr);
  }
#if defined(TAIGA_SANITIZE_THREAD)
  ctx.tsan_fiber = __tsan_get_current_fiber();
#endif
  if (tls_running == nullptr) tls_running = &ctx;
}

void make_context(exec_context& ctx, void* lo, std::size_t size, context_entry entry) {
  ctx.eh_caught = nullptr;  // no exception being handled yet
  ctx.eh_uncaught = 0;
  ctx.stack_lo = lo;
  ctx.stack_size = size;
  ctx.asan_fake_stack = nullptr;
  *entry_of(ctx) = entry;
  // make_fcontext writes its frame just below the sp it is given.
  ctx.fctx = bctx::make_fcontext(static_cast<char*>(lo) + size - entry_slot, size - entry_slot,
                                 &trampoline);
#if defined(TAIGA_SANITIZE_THREAD)
  // One TSan fiber per context, destroyed by destroy_context once the context
  // has exited. A fiber cannot be reused for the next context on the same
  // stack: an exited context leaves its frames (trampoline, entry, ...,
  // exit_context) on the fiber's shadow stack forever, and there is no API to
  // reset it, so a reused fiber's shadow stack (64Ki entries) would overflow
  // after ~10k tasklets had run on that stack slot.
  ctx.tsan_fiber = __tsan_create_fiber(0);
#endif
}

void exit_context(exec_context& from, exec_context& to, void* payload) {
  switch_msg msg{&from, payload};
  bctx::fcontext_t target = to.fctx;
  before_switch(from, to, true);
  jump(target, &msg);
  std::fputs("taiga: an exited context was resumed\n", stderr);
  std::abort();
}

void destroy_context([[maybe_unused]] exec_context& ctx) {
#if defined(TAIGA_SANITIZE_THREAD)
  // Runs on the resumed side, so `ctx`'s fiber is not the running one.
  if (ctx.tsan_fiber != nullptr && ctx.kind != 0) __tsan_destroy_fiber(ctx.tsan_fiber);
#endif
  ctx.tsan_fiber = nullptr;
  ctx.fctx = nullptr;
}

void reuse_below([[maybe_unused]] exec_context& ctx, [[maybe_unused]] void* live) noexcept {
#if defined(TAIGA_SANITIZE_ADDRESS)
  // Frames that ended by unwinding left their redzones poisoned, and a frame
  // without redzones of its own does not rewrite the shadow of the bytes it
  // uses: the next owner's loads there would be reported.
  auto* lo = static_cast<char*>(ctx.stack_lo);
  auto* top = static_cast<char*>(live);
  if (top > lo) ASAN_UNPOISON_MEMORY_REGION(lo, static_cast<std::size_t>(top - lo));
#endif
}

exec_context* running_context() noexcept {
  return tls_running;
}

const char* sanitizer_annotations() noexcept {
#if defined(TAIGA_SANITIZE_ADDRESS)
  return "asan";
#elif defined(TAIGA_SANITIZE_THREAD)
  return "tsan";
#else
  return "none";
#endif
}

}  // namespace taiga::internal
