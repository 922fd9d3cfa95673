// stack_pool.cpp: where tasklet and fiber stacks come from.
//
// Goal: 1,000,000 live tasklets on a stock kernel (vm.max_map_count 65,530),
// each touching one page, every stack guarded, and memory going back to the
// OS when the crowd is gone.
//
// Constraints that shape it:
//  - One mmap per stack costs a mapping each (and a guard page made with
//    mprotect splits it into two): a million stacks would need two million
//    mappings. So stacks are slots carved from large regions (one mapping for
//    hundreds of stacks), reserved with MAP_NORESERVE and committed lazily by
//    the first touch.
//  - Guard pages: Linux 6.13 added madvise(MADV_GUARD_INSTALL), which marks
//    pages inside a mapping as guard pages without splitting it. We install
//    the guards of a whole region in one process_madvise() call (an iovec of
//    up to 512 ranges). Older kernels get mprotect guards while the mapping
//    budget lasts (about half of what max_map_count leaves us), then a canary
//    below each slot, checked at every switch (stack_pool.hpp: where, and why
//    there).
//  - First touches are dear on our virtual machines (2-20 us each, see
//    ../shared/machine.md), so fresh stacks handed to a thread are
//    pre-faulted in batches (process_madvise with MADV_POPULATE_WRITE over
//    their top pages), and freed stacks are recycled warm, LIFO, through a
//    per-thread cache so the hot path takes no lock and no syscall.
//  - Memory goes back when more than `keep_warm` stacks have stayed free for
//    about a second (the runtime's sysmon calls trim): the excess, oldest
//    first, is MADV_DONTNEED'ed in batches and becomes "cold". Trimming on
//    every release instead made bursty programs (skynet) refault the same
//    stacks over and over.
//
// Rejected: boost::context::protected_fixedsize_stack (mmap + mprotect per
// stack: 2 mappings each, stops at ~32k stacks); malloc'ed stacks (no guard:
// an overflow corrupts the heap silently); segmented/growable stacks (need
// compiler support we do not have for C++).
//
// Invariants:
//  S1 a stack is in exactly one place: handed out, in one thread cache, in
//     its class's warm list, or in its class's cold list.
//  S2 warm stacks may have resident pages; cold stacks have none.
//  S3 regions are never unmapped (their slots are reused); trim() only
//     releases pages.
#include "stack_pool.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <vector>

#if defined(TAIGA_SANITIZE_ADDRESS)
#include <sanitizer/asan_interface.h>
#endif

#include "context.hpp"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace taiga {
const char* to_string(stack_guard_mode m) noexcept {
  switch (m) {
    case stack_guard_mode::none:
      return "none";
    case stack_guard_mode::madvise:
      return "madvise";
    case stack_guard_mode::mprotect:
      return "mprotect";
    case stack_guard_mode::canary:
      return "canary";
  }
  return "?";
}
}  // namespace taiga

namespace taiga::internal {

std::size_t g_page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));

namespace {

constexpr std::size_t batch_max = 512;  // iovecs per process_madvise call
constexpr std::size_t cache_max = 64;   // stacks per thread cache and class

int self_pidfd() {
  static int fd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  return fd;
}

}  // namespace

// Applies `advice` to many ranges, in process_madvise batches where the kernel
// allows it (6.13+ for most advice on our own process), else one by one.
// Returns false if any range failed.
bool madvise_many(const std::vector<iovec>& ranges, int advice) {
  static std::atomic<int> batched{1};
  std::size_t i = 0;
  bool ok = true;
  while (i < ranges.size()) {
    std::size_t n = std::min(batch_max, ranges.size() - i);
    std::size_t done = 0;  // leading ranges of this batch that were advised
    if (batched.load(std::memory_order_relaxed) != 0 && self_pidfd() >= 0) {
      long r = ::syscall(SYS_process_madvise, self_pidfd(), ranges.data() + i, n, advice, 0);
      if (r >= 0) {
        // The kernel returns the bytes it advised and stops at the first
        // range it fails on: a short count is not a success (a guard
        // missing from a stack labelled guarded). What it did not reach,
        // and the range it stopped in, are redone one by one below, where
        // each failure is seen (every advice used here is idempotent).
        auto bytes = static_cast<std::size_t>(r);
        while (done < n && bytes >= ranges[i + done].iov_len) {
          bytes -= ranges[i + done].iov_len;
          ++done;
        }
      } else if (errno == EINVAL || errno == ENOSYS || errno == EPERM) {
        batched.store(0);
      }
    }
    for (std::size_t k = i + done; k < i + n; ++k)
      if (::madvise(ranges[k].iov_base, ranges[k].iov_len, advice) != 0) ok = false;
    i += n;
  }
  return ok;
}

namespace {

stack_guard_mode detect_mode() {
  if (const char* forced = std::getenv("TAIGA_STACK_GUARD")) {
    if (std::strcmp(forced, "mprotect") == 0) return stack_guard_mode::mprotect;
    if (std::strcmp(forced, "canary") == 0) return stack_guard_mode::canary;
    if (std::strcmp(forced, "madvise") == 0) return stack_guard_mode::madvise;
  }
  void* probe = ::mmap(nullptr, 2 * g_page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe == MAP_FAILED) return stack_guard_mode::mprotect;
  bool ok = ::madvise(probe, g_page, MADV_GUARD_INSTALL) == 0;
  ::munmap(probe, 2 * g_page);
  return ok ? stack_guard_mode::madvise : stack_guard_mode::mprotect;
}

std::size_t mprotect_budget() {
  // Each mprotect guard splits a region's mapping: two more mappings per
  // stack in the worst case. Leave half of the limit to the rest of the
  // process (malloc arenas, thread stacks, shared libraries, user mmaps).
  long max_maps = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    std::fclose(f);
  }
  std::size_t budget = static_cast<std::size_t>(std::max(0L, max_maps / 2 - 1024) / 2);
  // For tests of the fallback: a budget that a few stacks exhaust.
  if (const char* forced = std::getenv("TAIGA_STACK_GUARD_MPROTECT_BUDGET"))
    budget = static_cast<std::size_t>(std::strtoull(forced, nullptr, 10));
  return budget;
}

// Every stack leaves the pool through here. Frames of the previous owner may
// have left poisoned ASan redzones behind. A canary needs nothing: nothing
// but an overflow writes it, and an overflow is reported at the owner's next
// switch, its last included, before the stack can come back here.
stack hand_out(stack s) {
#if defined(TAIGA_SANITIZE_ADDRESS)
  ASAN_UNPOISON_MEMORY_REGION(s.lo(), s.usable());
#endif
  return s;
}

}  // namespace

stack stack_pool::reissue_slow(stack s) noexcept {
  return hand_out(s);
}

struct stack_pool::size_class {
  std::uint32_t total = 0;
  std::mutex mu;
  // LIFO at the back: the most recently freed are the warmest. A deque, not
  // a vector: trimming takes the oldest from the front, and a vector's
  // erase there moved every other element, batch after batch, under `mu`
  // (after alive_1m released a million stacks: 2,000 batches of a 16 MB
  // memmove, 15% of the benchmark's samples, with workers waiting on `mu`).
  std::deque<stack> warm;
  std::deque<stack> cold;
  std::vector<stack> fresh;  // carved, guarded, never touched
  std::size_t regions = 0;
};

struct thread_cache;

struct stack_pool::impl {
  std::mutex classes_mu;
  std::vector<size_class*> classes;  // never shrinks; few entries
  std::atomic<std::size_t> mapped{0};
  std::atomic<std::size_t> mprotect_used{0};
  std::atomic<std::size_t> canary_guards{0};  // stacks carved with a canary
  std::size_t mprotect_budget = internal::mprotect_budget();
  // Stacks handed out and not returned, for reports: the sum of the live
  // threads' counts plus what exited threads left (a stack may be allocated
  // on one thread and released on another, so one thread's count can be
  // negative). One process-wide counter would be a cache line written by
  // every spawn and exit on every core: the live-tasklet counter was such a
  // line, and it kept skynet from scaling on 16 cores.
  std::mutex counts_mu;
  thread_cache* caches = nullptr;  // threads with a cache (intrusive), for the sum
  std::int64_t retired = 0;        // net count of exited threads (and late releases)
};

// Per-thread cache: a few warm stacks per size class, so that spawning and
// finishing tasklets on one worker takes no lock.
struct thread_cache {
  struct entry {
    std::uint32_t total = 0;
    std::vector<stack> items;
  };
  entry entries[4];
  // Handed out minus released by this thread. Written only by this thread
  // (a plain load and store, no locked instruction); read by stats().
  std::atomic<std::int64_t> outstanding{0};
  thread_cache* reg_prev = nullptr;  // impl::caches links, under counts_mu
  thread_cache* reg_next = nullptr;

  thread_cache() noexcept;
  ~thread_cache();
  void count(std::int64_t d) noexcept {
    outstanding.store(outstanding.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
};

namespace {
thread_local thread_cache tls_cache;
// Set when this thread's cache is destroyed. prepare_thread() builds the
// cache early so that most thread_locals die before it, but one touched
// before it (a thread_local vector of fibers, say) is destroyed after it and
// may still release stacks: those go straight to the size classes. Trivially
// destructible, so it can still be read then.
thread_local bool tls_cache_gone = false;
}  // namespace

// For paths that have not looked at tls_cache_gone yet; the fast paths,
// which have, call tls_cache.count() directly.
void stack_pool::count_outstanding(std::int64_t d) noexcept {
  if (tls_cache_gone) [[unlikely]] {
    std::lock_guard lk(impl_->counts_mu);
    impl_->retired += d;
    return;
  }
  tls_cache.count(d);
}

stack_pool& stack_pool::instance() {
  static stack_pool* pool = new stack_pool();  // never destroyed: thread caches outlive statics
  return *pool;
}

stack_pool::stack_pool() : mode_(detect_mode()), current_(mode_), impl_(new impl) {}

void stack_pool::fall_back_to_canary(const char* why) noexcept {
  if (current_.exchange(stack_guard_mode::canary) == stack_guard_mode::canary) return;
  // Said once, on stderr: overflow detection just got weaker (caught at the
  // next switch instead of at the faulting write), and runtime::stack_guard()
  // reports it from now on.
  std::fprintf(
      stderr,
      "taiga: stack guards: %s; stacks carved from now on are guarded by a canary (64 bytes "
      "kept zero below each stack) checked at every switch\n",
      why);
}

thread_cache::thread_cache() noexcept {
  auto& im = *stack_pool::instance().impl_;
  std::lock_guard lk(im.counts_mu);
  reg_next = im.caches;
  if (reg_next != nullptr) reg_next->reg_prev = this;
  im.caches = this;
}

thread_cache::~thread_cache() {
  auto& pool = stack_pool::instance();
  for (auto& e : entries)
    for (auto& s : e.items) pool.release_to_class(s);
  auto& im = *pool.impl_;
  {
    std::lock_guard lk(im.counts_mu);
    im.retired += outstanding.load(std::memory_order_relaxed);
    if (reg_prev != nullptr) {
      reg_prev->reg_next = reg_next;
    } else {
      im.caches = reg_next;
    }
    if (reg_next != nullptr) reg_next->reg_prev = reg_prev;
  }
  tls_cache_gone = true;
}

stack_pool::size_class& stack_pool::class_for(std::uint32_t total) {
  std::lock_guard lk(impl_->classes_mu);
  for (auto* c : impl_->classes)
    if (c->total == total) return *c;
  auto* c = new size_class;
  c->total = total;
  impl_->classes.push_back(c);
  return *c;
}

stack stack_pool::allocate(std::size_t usable) {
  // Whole pages: the guard, then the stack and the canary of the slot above.
  std::size_t total_sz = (usable + canary_bytes + g_page - 1) / g_page * g_page + g_page;
  if (total_sz > (1u << 30)) throw std::bad_alloc();
  auto total = static_cast<std::uint32_t>(total_sz);

  // Fast path: this thread's cache.
  thread_cache::entry* slot = nullptr;
  if (!tls_cache_gone) [[likely]] {
    for (auto& e : tls_cache.entries) {
      if (e.total == total) {
        slot = &e;
        break;
      }
      if (slot == nullptr && e.items.empty()) slot = &e;
    }
  }
  if (slot != nullptr && slot->total == total && !slot->items.empty()) {
    stack s = slot->items.back();
    slot->items.pop_back();
    tls_cache.count(1);  // slot != nullptr: the cache is alive
    return hand_out(s);
  }

  size_class& c = class_for(total);
  std::vector<stack> got;
  std::vector<iovec> populate;
  {
    std::unique_lock lk(c.mu);
    std::size_t want = cache_max / 2;
    while (got.size() < want && !c.warm.empty()) {
      got.push_back(c.warm.back());
      c.warm.pop_back();
    }
    while (got.size() < want && (!c.fresh.empty() || !c.cold.empty())) {
      stack s;
      if (!c.cold.empty()) {
        s = c.cold.front();
        c.cold.pop_front();
      } else {
        s = c.fresh.back();
        c.fresh.pop_back();
      }
      got.push_back(s);
      populate.push_back({s.base + s.total - g_page, g_page});
    }
    if (got.empty()) {
      // Carve a new region: at least 64 stacks and 16 MiB, after a leading
      // page whose top holds the lowest slot's canary (stack_pool::canary_at).
      std::size_t n = std::max<std::size_t>(64, (16u << 20) / total);
      std::size_t bytes = g_page + n * total;
      void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (mem == MAP_FAILED) throw std::bad_alloc();
      impl_->mapped.fetch_add(bytes, std::memory_order_relaxed);
      ++c.regions;
      auto* base = static_cast<char*>(mem) + g_page;
      std::vector<iovec> guards;
      std::vector<stack> carved;
      carved.reserve(n);
      const stack_guard_mode m = mode();  // canary after a fallback: it stays
      for (std::size_t i = 0; i < n; ++i) {
        stack s{base + i * total, total, m};
        if (m == stack_guard_mode::madvise) {
          guards.push_back({s.base, g_page});
        } else if (m == stack_guard_mode::mprotect) {
          if (impl_->mprotect_used.load(std::memory_order_relaxed) < impl_->mprotect_budget &&
              ::mprotect(s.base, g_page, PROT_NONE) == 0) {
            impl_->mprotect_used.fetch_add(1, std::memory_order_relaxed);
          } else {
            s.guard = stack_guard_mode::canary;
          }
        }
        carved.push_back(s);
      }
      if (!guards.empty() && !madvise_many(guards, MADV_GUARD_INSTALL)) {
        for (auto& s : carved) s.guard = stack_guard_mode::canary;
        fall_back_to_canary("MADV_GUARD_INSTALL failed on a new stack region");
      }
      if (carved.back().guard == stack_guard_mode::canary && mode_ == stack_guard_mode::mprotect)
        fall_back_to_canary(
            "the mprotect guard budget (about half of vm.max_map_count, two mappings per "
            "guarded stack) is spent");
      impl_->canary_guards.fetch_add(
          static_cast<std::size_t>(
              std::count_if(carved.begin(), carved.end(),
                            [](const stack& s) { return s.guard == stack_guard_mode::canary; })),
          std::memory_order_relaxed);
      // Hand out the lowest addresses first (keeps the touched set dense).
      for (auto it = carved.rbegin(); it != carved.rend(); ++it) c.fresh.push_back(*it);
      while (got.size() < want && !c.fresh.empty()) {
        stack s = c.fresh.back();
        c.fresh.pop_back();
        got.push_back(s);
        populate.push_back({s.base + s.total - g_page, g_page});
      }
    }
  }
  // Pre-fault the top page of fresh and cold stacks in one call: cheaper
  // than one page fault each (machine.md). Failure only costs speed.
  if (populate.size() > 1) madvise_many(populate, MADV_POPULATE_WRITE);

  stack s = got.back();
  got.pop_back();
  if (slot != nullptr) {
    slot->total = total;
    for (auto& g : got) slot->items.push_back(g);
  } else if (!got.empty()) {
    std::lock_guard lk(c.mu);
    for (auto& g : got) c.warm.push_back(g);
  }
  count_outstanding(1);
  return hand_out(s);
}

void stack_pool::release(stack s) noexcept {
  if (tls_cache_gone) [[unlikely]] {
    count_outstanding(-1);
    release_to_class(s);
    return;
  }
  tls_cache.count(-1);
  for (auto& e : tls_cache.entries) {
    if (e.total == s.total || e.items.empty()) {
      if (e.items.size() < cache_max) {
        e.total = s.total;
        e.items.push_back(s);
        return;
      }
      // Cache full: hand half of it to the class in one lock.
      size_class& c = class_for(s.total);
      {
        std::lock_guard lk(c.mu);
        for (std::size_t i = 0; i < cache_max / 2; ++i) {
          c.warm.push_back(e.items.back());
          e.items.pop_back();
        }
        c.warm.push_back(s);
      }
      // No trimming here: a burst that frees stacks is usually followed by
      // one that needs them, and a trimmed stack costs a fresh page fault.
      // The runtime's sysmon calls trim(keep_warm) about once a second.
      return;
    }
  }
  release_to_class(s);
}

void stack_pool::release_to_class(stack s) noexcept {
  size_class& c = class_for(s.total);
  std::lock_guard lk(c.mu);
  c.warm.push_back(s);
}

void stack_pool::trim_class(size_class& c, std::size_t keep) noexcept {
  for (;;) {
    std::vector<stack> batch;
    {
      std::lock_guard lk(c.mu);
      if (c.warm.size() <= keep) return;
      // The oldest free stacks sit at the front of the LIFO.
      std::size_t n = std::min(batch_max, c.warm.size() - keep);
      batch.assign(c.warm.begin(), c.warm.begin() + static_cast<std::ptrdiff_t>(n));
      c.warm.erase(c.warm.begin(), c.warm.begin() + static_cast<std::ptrdiff_t>(n));
    }
    std::vector<iovec> ranges;
    ranges.reserve(batch.size());
    for (auto& s : batch) ranges.push_back({s.lo(), s.usable()});
    madvise_many(ranges, MADV_DONTNEED);
    std::lock_guard lk(c.mu);
    for (auto& s : batch) c.cold.push_back(s);
  }
}

void stack_pool::trim_class_all(std::size_t keep) noexcept {
  std::vector<size_class*> classes;
  {
    std::lock_guard lk(impl_->classes_mu);
    classes = impl_->classes;
  }
  for (auto* c : classes) trim_class(*c, keep);
}

void stack_pool::trim(std::size_t keep_warm) noexcept {
  if (!tls_cache_gone) {
    for (auto& e : tls_cache.entries) {
      for (auto& s : e.items) release_to_class(s);
      e.items.clear();
    }
  }
  std::vector<size_class*> classes;
  {
    std::lock_guard lk(impl_->classes_mu);
    classes = impl_->classes;
  }
  for (auto* c : classes) trim_class(*c, keep_warm);
}

stack_pool_stats stack_pool::stats() const noexcept {
  stack_pool_stats st;
  st.mapped_bytes = impl_->mapped.load();
  {
    std::lock_guard lk(impl_->counts_mu);
    std::int64_t n = impl_->retired;
    for (thread_cache* c = impl_->caches; c != nullptr; c = c->reg_next)
      n += c->outstanding.load(std::memory_order_relaxed);
    st.outstanding = n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  st.mprotect_guards = impl_->mprotect_used.load();
  st.canary_guards = impl_->canary_guards.load();
  std::lock_guard lk(impl_->classes_mu);
  for (auto* c : impl_->classes) {
    std::lock_guard lk2(c->mu);
    st.warm += c->warm.size();
    st.cold += c->cold.size() + c->fresh.size();
    st.regions += c->regions;
  }
  return st;
}

// ---- stack overflow reporting ---------------------------------------------

namespace {
std::atomic<overflow_describer> g_describer{nullptr};
struct sigaction g_old_segv, g_old_bus;

void write_all(const char* s, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::write(2, s, n);
    if (r <= 0) return;
    s += r;
    n -= static_cast<std::size_t>(r);
  }
}
void write_str(const char* s) {
  write_all(s, std::strlen(s));
}

void describe_and_die(const void* owner, std::uint8_t kind, bool by_canary) {
  char buf[768];
  write_str("taiga: stack overflow in ");
  overflow_describer d = g_describer.load();
  if (d != nullptr) {
    std::size_t n = d(owner, kind, buf, sizeof buf);
    write_all(buf, n);
  } else {
    write_str(kind == 2 ? "a fiber" : "a tasklet");
  }
  write_str(by_canary ? "\ntaiga: the canary below its stack (64 bytes kept zero) was "
                        "overwritten (found at a switch: this process guards stacks with "
                        "canaries)."
                      : "\ntaiga: the stack guard page was hit.");
  write_str(
      " Ask for a bigger stack: "
      "spawn(taiga::spawn_options{.stack_size = N}, fn) for one tasklet, or "
      "runtime_config::stack_size for all of them (fiber: the stack_size "
      "constructor argument).\n");
}

void on_fault(int sig, siginfo_t* info, void* uctx) {
  exec_context* ctx = running_context();
  if (ctx != nullptr && ctx->kind != 0 && ctx->stack_lo != nullptr) {
    auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    auto lo = reinterpret_cast<std::uintptr_t>(ctx->stack_lo);
    // The guard page sits right below the usable range; a large frame can
    // jump further, so accept up to 64 KiB below it.
    if (addr < lo + 256 && addr + 64 * 1024 + g_page >= lo) {
      describe_and_die(nullptr, ctx->kind, false);
      ::signal(SIGABRT, SIG_DFL);
      std::abort();
    }
  }
  // Not ours: hand over to whoever was installed before, or die the default way.
  const struct sigaction& old = sig == SIGSEGV ? g_old_segv : g_old_bus;
  if ((old.sa_flags & SA_SIGINFO) != 0 && old.sa_sigaction != nullptr) {
    old.sa_sigaction(sig, info, uctx);
    return;
  }
  if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN && old.sa_handler != nullptr) {
    old.sa_handler(sig);
    return;
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

thread_local bool tls_altstack = false;
}  // namespace

void set_overflow_describer(overflow_describer fn) noexcept {
  g_describer.store(fn);
}

void report_overflow(const void* owner, std::uint8_t kind) noexcept {
  describe_and_die(owner, kind, true);
  std::abort();
}

void stack_pool::prepare_thread() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    // Under ASan, its own handler was installed first: ours chains to it for
    // faults that are not stack overflows.
    struct sigaction sa {};
    sa.sa_sigaction = &on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_old_segv);
    ::sigaction(SIGBUS, &sa, &g_old_bus);
  });
  // Construct this thread's stack cache now, so that it outlives the
  // thread_locals created after it (fiber homes release stacks into it when
  // the thread exits).
  (void)tls_cache.entries[0].total;
  if (!tls_altstack) {
    tls_altstack = true;
    stack_t cur{};
    if (::sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE) != 0) {
      std::size_t sz = 64 * 1024;
      void* mem = ::mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mem != MAP_FAILED) {
        stack_t ss{};
        ss.ss_sp = mem;
        ss.ss_size = sz;
        ::sigaltstack(&ss, nullptr);
        // The alternate stack is leaked with the thread on purpose: a handler
        // may run until the very end of the thread's life.
      }
    }
  }
}

}  // namespace taiga::internal
