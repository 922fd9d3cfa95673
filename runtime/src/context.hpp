// The only interface to Boost.Context. See context.cpp for the design notes.
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <taiga/runtime/detail/exec_context.hpp>

#if defined(TAIGA_SANITIZE_ADDRESS)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(TAIGA_SANITIZE_THREAD)
#include <sanitizer/tsan_interface.h>
#endif

// A sanitizer build without the matching annotations would report false
// stack overflows (ASan) or crash once tasklets migrate (TSan).
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(TAIGA_SANITIZE_ADDRESS)
#error "ASan build without TAIGA_SANITIZE_ADDRESS: fiber switches would be unannotated"
#endif
#if __has_feature(thread_sanitizer) && !defined(TAIGA_SANITIZE_THREAD)
#error "TSan build without TAIGA_SANITIZE_THREAD: fiber switches would be unannotated"
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(TAIGA_SANITIZE_ADDRESS)
#error "ASan build without TAIGA_SANITIZE_ADDRESS: fiber switches would be unannotated"
#endif
#if defined(__SANITIZE_THREAD__) && !defined(TAIGA_SANITIZE_THREAD)
#error "TSan build without TAIGA_SANITIZE_THREAD: fiber switches would be unannotated"
#endif

namespace taiga::internal {

using detail::exec_context;

/// Fills `ctx` for the calling OS thread's own stack (the context a worker
/// loop or a plain thread runs on). Call once per thread before switching.
void init_thread_context(exec_context& ctx);

using context_entry = void (*)(void* payload);

/// Prepares `ctx` to run `entry(payload)` on [lo, lo + size) when first
/// switched to (`ctx.kind` must be set). The entry pointer is kept in the top
/// 16 bytes of the new stack, which the context's frames never use: it costs
/// the control block nothing, and make_fcontext writes that cache line anyway.
void make_context(exec_context& ctx, void* lo, std::size_t size, context_entry entry);

// constinit: other translation units then read it without a TLS-init check.
extern thread_local constinit exec_context* tls_running;

// ---- Exception state -------------------------------------------------------
//
// The C++ runtime keeps the exceptions being handled (the chain that `throw;`
// and std::current_exception() read, and that each catch block's end pops)
// and the count of exceptions in flight (std::uncaught_exceptions()) in one
// per-thread record, the Itanium ABI's __cxa_eh_globals (section 2.2.2;
// libstdc++ and libc++abi agree on its first two fields). Contexts share
// threads, so without help a tasklet that parks inside a catch block leaves
// its exception on the thread: the next context to end a catch block pops
// the wrong one, and the parked tasklet, resumed on another worker, finds
// none (`throw;` then calls std::terminate). Every switch therefore saves
// the thread's record into the context it leaves and installs the one of
// the context it resumes: two words each way (Mordor and IRCd's ctx do the
// same). A fresh context starts with none.
struct eh_globals {
  void* caught;
  unsigned int uncaught;
};
extern thread_local constinit eh_globals* tls_eh;
eh_globals* init_eh_globals() noexcept;  // this thread's record, cached in tls_eh

namespace detail_switch {

// jump_fcontext without a `call`. Boost's jump_fcontext leaves through
// `jmp *%r8`, not `ret`, so the return-stack-buffer entry that `call
// jump_fcontext` pushed is never popped: after every switch the CPU's return
// predictions are off by one, and each of the resumed side's returns (out of
// switch_out, out of yield, ...) mispredicts, ~15-20 cycles apiece. Pushing
// the return address and jumping does exactly what `call` does to the stack
// (jump_fcontext reads the resume address at 0x40 off its frame and pops it)
// without the RSB entry, so the resumed side's returns pair with its own
// earlier calls again. Measured on the switch benchmark: see
// docs/benchmarks.md ("RSB"). The 128 bytes skipped first protect the
// caller's red zone, which the push would otherwise overwrite. Off where
// CET shadow stacks could be on (a `ret`-less jump into jump_fcontext is
// fine there, but its own jmp is checked) and off other ABIs.
// The clobbers must name every caller-saved register the compiler may keep
// a value in: with AVX-512 that includes xmm16-31 and the mask registers
// (GCC and clang both allocate doubles to xmm16+ under -march=skylake-avx512).
// APX's extra general registers are not listed, so APX builds take the
// plain call. The CFI does not describe the 136 bytes pushed between the
// `lea` and the jump: only asynchronous unwinders (a profiler, a debugger
// stopped exactly there) can notice, and no exception is thrown there.
#if defined(__AVX512F__)
#define TAIGA_JUMP_AVX512_CLOBBERS                                                              \
  , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",   \
      "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", \
      "k6", "k7"
#else
#define TAIGA_JUMP_AVX512_CLOBBERS
#endif
#if defined(__x86_64__) && defined(__ELF__) && !defined(__CET__) && !defined(__APX_F__) && \
    !defined(TAIGA_PLAIN_JUMP)
[[gnu::always_inline]] inline boost::context::detail::transfer_t jump(
    boost::context::detail::fcontext_t to, void* vp) {
  void* from_fctx;
  void* data;
  asm volatile(
      "lea -128(%%rsp), %%rsp\n\t"
      "lea 1f(%%rip), %%rax\n\t"
      "push %%rax\n\t"
      "jmp jump_fcontext@PLT\n"
      "1:\n\t"
      "lea 128(%%rsp), %%rsp"
      : "+D"(to), "+S"(vp), "=a"(from_fctx), "=d"(data)
      :
      : "rcx", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
        "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)",
        "st(7)" TAIGA_JUMP_AVX512_CLOBBERS);
  return boost::context::detail::transfer_t{from_fctx, data};
}
#else
[[gnu::always_inline]] inline boost::context::detail::transfer_t jump(
    boost::context::detail::fcontext_t to, void* vp) {
  return boost::context::detail::jump_fcontext(to, vp);
}
#endif

struct switch_msg {
  exec_context* from;
  void* payload;
};

// Both helpers are always inlined into the function that jumps. Under TSan
// that is required, not an optimisation: clang instruments every function
// with __tsan_func_entry/__tsan_func_exit on the *current* TSan fiber, so a
// separate before_switch frame would push its entry on `from`'s shadow stack
// and, after __tsan_switch_to_fiber, pop it from `to`'s. Each such switch
// leaked one shadow frame on `from` and underflowed `to` by one; the thread's
// own shadow stack ran off its start after a few fibers had exited and TSan
// crashed in StackDepot::Put / CurrentStackId (exit_context's call to
// before_switch was not inlined at -O1; switch_context's was). The frame
// that calls __tsan_switch_to_fiber must be the frame that jumps: its entry
// is pushed on `from` and its exit runs when `from` is resumed, on `from`.
[[gnu::always_inline]] inline void before_switch([[maybe_unused]] exec_context& from,
                                                 [[maybe_unused]] exec_context& to,
                                                 [[maybe_unused]] bool from_exits) {
  tls_running = &to;
  eh_globals* eh = tls_eh;
  if (eh == nullptr) [[unlikely]]
    eh = init_eh_globals();
  from.eh_caught = eh->caught;
  from.eh_uncaught = eh->uncaught;
  eh->caught = to.eh_caught;
  eh->uncaught = to.eh_uncaught;
#if defined(TAIGA_SANITIZE_ADDRESS)
  __sanitizer_start_switch_fiber(from_exits ? nullptr : &from.asan_fake_stack, to.stack_lo,
                                 to.stack_size);
#endif
#if defined(TAIGA_SANITIZE_THREAD)
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
}

[[gnu::always_inline]] inline void* after_switch(boost::context::detail::transfer_t t,
                                                 [[maybe_unused]] exec_context* self) {
#if defined(TAIGA_SANITIZE_ADDRESS)
  const void* old_lo = nullptr;
  std::size_t old_size = 0;
  __sanitizer_finish_switch_fiber(self ? self->asan_fake_stack : nullptr, &old_lo, &old_size);
#endif
  auto* msg = static_cast<switch_msg*>(t.data);
  msg->from->fctx = t.fctx;
#if defined(TAIGA_SANITIZE_ADDRESS)
  if (msg->from->stack_lo == nullptr) {
    msg->from->stack_lo = const_cast<void*>(old_lo);
    msg->from->stack_size = old_size;
  }
#endif
  return msg->payload;
}

}  // namespace detail_switch

/// Suspends `from` and resumes `to`, handing it `payload`. Returns the payload
/// handed over by whoever later resumes `from`. Inline (always): the frame
/// that jumps must be the caller's own frame, so that after the switch only
/// one return runs on a stale return-stack prediction, and so that TSan's
/// fiber switch happens in the frame that jumps (X4).
[[gnu::always_inline]] inline void* switch_context(exec_context& from, exec_context& to,
                                                   void* payload) {
  using namespace detail_switch;
  switch_msg msg{&from, payload};
  boost::context::detail::fcontext_t target = to.fctx;  // read before TSan moves to `to`
  before_switch(from, to, false);
  boost::context::detail::transfer_t t = jump(target, &msg);
  return after_switch(t, &from);
}

/// Like switch_context, for a context that will never be resumed: its stack
/// may be recycled by the resumed side as soon as it runs.
[[noreturn]] void exit_context(exec_context& from, exec_context& to, void* payload);

/// Releases sanitizer state of a context that has exited (called by the side
/// that recycles its stack, never by the context itself).
void destroy_context(exec_context& ctx);

/// For a context that goes on at its bottom frame with a new owner (a
/// fresh tasklet adopting the stack of one that ended: worker::exit_current):
/// the stack below `live` (the caller's frame) is dead. ASan: clears the
/// poisoning that ended frames left there, as stack_pool's hand-out does for
/// a stack handed out again.
void reuse_below(exec_context& ctx, void* live) noexcept;

/// The context running on this thread right now (or nullptr before the
/// thread's first switch). Used by the stack overflow handler.
exec_context* running_context() noexcept;

/// Which switch annotations this build carries ("none", "asan", "tsan").
const char* sanitizer_annotations() noexcept;

}  // namespace taiga::internal
