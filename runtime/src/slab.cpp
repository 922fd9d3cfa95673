// slab.cpp: a small size-class allocator for tasklet blocks.
//
// Why not malloc: spawning a million tasklets that have not run yet means a
// million live blocks of ~100 bytes. glibc grows its heap for them a page at a
// time (an mprotect and a page fault per 4 KiB: perf showed ~30% of spawn time
// there), and gives the memory back when they die, so the next million pay
// again. Here blocks come from 2 MiB chunks pre-faulted in one
// MADV_POPULATE_WRITE call (as a huge page or in 4 KiB pages, whichever the
// host makes cheaper at the time: see "Populating a chunk"), and freed blocks
// are kept for reuse.
//
// Design (tcmalloc's thread cache + transfer cache, reduced):
//  - size classes of 32 bytes up to slab_max (the 96-byte one holds the
//    usual spawn: tasklet_core.hpp);
//  - each thread keeps, per class, a singly linked free list and at most one
//    full batch (`batch` blocks or more) set aside, no locks;
//  - a free that makes the list a batch longer than it was when last filled
//    sets it aside whole; if a batch was already set aside, that one goes to
//    the class's global list (one lock). An allocation that finds the list
//    empty takes the set-aside batch back, else a batch from the global list,
//    before carving new memory. (The "longer than when filled" is the
//    hysteresis: with a fixed length, a thread that spawns and joins one at a
//    time at that length would set aside and take back on every call.) So a
//    producer/consumer pair (spawn on one worker, finish on another)
//    recycles through the global list instead of growing forever, and a
//    thread that frees and allocates around a batch boundary moves a whole
//    list by its head, without a lock. Every move is O(1): a first version
//    split `batch` blocks off the list by walking it, a chain of dependent
//    loads through blocks in L2 that cost ~3% of spawn_join's time.
//  - new memory is carved in 64 KiB spans (tcmalloc's spans) taken in order
//    from the current 2 MiB chunk, one lock per span. Carving whole chunks
//    per thread and class, as the first version did, populated 2 MiB of RSS
//    for every (thread, size class) pair that ever allocated: 12 MiB for a
//    run of spawn_join once the ready queues used the slab too, and more
//    on a 16-worker machine, for a handful of blocks each.
//  - chunks are never returned to the OS (the blocks are reused); this is a
//    bounded cost: the peak number of simultaneously live tasklets.
// ASan builds use operator new instead, so that use-after-free of a block is
// still caught.
#include "slab.hpp"

#include <sys/mman.h>

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace taiga::internal {

namespace {

// Blocks past slab_max, and all blocks in sanitizer builds.
std::align_val_t big_alignment(std::size_t size) noexcept {
  std::size_t a = block_alignment(size);
  return std::align_val_t{a < alignof(std::max_align_t) ? alignof(std::max_align_t) : a};
}

#if defined(TAIGA_SANITIZE_ADDRESS) || defined(TAIGA_SANITIZE_THREAD)
}  // namespace

void* slab_allocate(std::size_t size) {
  return ::operator new(size, big_alignment(size));
}
void slab_free(void* p, std::size_t size) noexcept {
  ::operator delete(p, big_alignment(size));
}
slab_stats slab_statistics() noexcept {
  return {};
}
void slab_allow_filler() noexcept {}

#else

constexpr std::size_t granule = 32;
constexpr std::size_t nclasses = slab_max / granule;
constexpr std::size_t chunk_bytes = 2u << 20;  // one transparent huge page, in time
constexpr std::size_t span_bytes = 64u << 10;  // carved for one thread and class
constexpr std::size_t batch = 1024;            // blocks moved at once (at least)

struct free_block {
  free_block* next;
};

// A batch of free blocks on a class's global list: a list through
// free_block::next whose first block also links the batches and holds the
// count (every block has room: the smallest class is 32 bytes). Intrusive,
// so the global lists allocate nothing (slab_free is noexcept) and are
// trivially destructible: frees that run during static destruction, after
// this file's statics would have been destroyed, still find them intact.
struct batch_head : free_block {
  batch_head* next_batch;
  std::size_t count;
};
static_assert(sizeof(batch_head) <= granule);

struct global_class {
  std::mutex mu;
  batch_head* top = nullptr;

  void push(free_block* first, std::size_t n) noexcept {  // under mu
    auto* b = static_cast<batch_head*>(first);
    b->next_batch = top;
    b->count = n;
    top = b;
  }
  /// Under mu; top != nullptr.
  std::pair<free_block*, std::size_t> pop() noexcept {
    batch_head* b = top;
    top = b->next_batch;
    return {b, b->count};
  }
};
static_assert(std::is_trivially_destructible_v<global_class>);

global_class g_classes[nclasses];

// A thread's free lists. Trivially destructible and constant-initialized,
// so every access is a plain TLS load with no init guard, and the storage
// stays valid until the thread is gone. Handing the lists back at thread
// exit is lists_owner's job (a separate thread_local with a destructor,
// registered at the thread's first refill). After that, `gone` is set: a
// thread_local destroyed later (say a promise whose destructor wakes a
// tasklet, which may allocate a queue block) takes and returns blocks
// through the global lists instead.
struct thread_lists {
  free_block* head[nclasses];  // the free list
  std::size_t count[nclasses];
  free_block* full[nclasses];  // a batch set aside (null-terminated list), or null
  std::size_t full_count[nclasses];
  std::size_t filled[nclasses];  // the list's length when last filled (0 at first)
  bool gone;
};
thread_local thread_lists tls_lists{};

struct lists_owner {
  bool armed = false;
  ~lists_owner() {
    thread_lists& t = tls_lists;
    for (std::size_t c = 0; c < nclasses; ++c) {
      if (t.count[c] == 0 && t.full[c] == nullptr) continue;
      std::lock_guard lk(g_classes[c].mu);
      if (t.count[c] != 0) g_classes[c].push(t.head[c], t.count[c]);
      if (t.full[c] != nullptr) g_classes[c].push(t.full[c], t.full_count[c]);
      t.head[c] = t.full[c] = nullptr;
      t.count[c] = t.full_count[c] = t.filled[c] = 0;
    }
    t.gone = true;
  }
};
thread_local lists_owner tls_owner;

// After the thread's lists are gone: one block at a time from the global
// list, whose top batch gives up its second block (or itself when alone).
[[gnu::noinline]] void* allocate_late(std::size_t c) {
  {
    global_class& g = g_classes[c];
    std::lock_guard lk(g.mu);
    if (batch_head* b = g.top) {
      if (b->count > 1) {
        free_block* blk = b->next;
        b->next = blk->next;
        --b->count;
        return blk;
      }
      g.top = b->next_batch;
      return b;
    }
  }
  // Class-sized and aligned like a carved block, so that it can join the
  // free lists when it is freed (it is never returned to the OS).
  return ::operator new ((c + 1) * granule, std::align_val_t{block_alignment((c + 1) * granule)});
}

// Joins the top batch while it is short of `batch`, so that many late frees
// do not leave as many one-block batches.
[[gnu::noinline]] void free_late(std::size_t c, free_block* b) noexcept {
  global_class& g = g_classes[c];
  std::lock_guard lk(g.mu);
  if (batch_head* top = g.top; top != nullptr && top->count < batch) {
    b->next = top->next;
    top->next = b;
    ++top->count;
    return;
  }
  b->next = nullptr;
  g.push(b, 1);
}

// Populating ahead. A burst of spawns on one worker opens a chunk every
// ~22,000 blocks of 96 B, and populating it costs 1.3-2 ms (4 KiB pages at
// 0.65-0.95 ms per MiB, by the hour): on the spawning thread, that is more
// than half of what a first spawn costs over a warm one, while other cores
// may sit idle. So once the process has opened `ahead_after` chunks (64
// spans: one for each thread and size class that ever allocated, and more
// for a thread that spawns thousands) and has started a runtime with worker
// threads (a process that only runs embedded runtimes, which promise no
// threads, never starts it: slab_allow_filler), a filler thread keeps up to
// `ahead` chunks mapped and populated before anyone asks. take_span takes
// one of those when there is one; when there is none and the filler is
// populating one, it waits for that one, because populating another here
// would first wait for the filler's populate to let go of the mmap lock
// (mmap and the page-size hints take it for writing) and then take as long
// again; it populates its own when the filler is not populating (not
// started, woken but not yet running, out of address space, or gone: a
// fork's child). The work is the same (the filler's CPU time counts in the
// process's: spawn_join's cpu_per_tasklet), on a core that is idle exactly
// when spawning is the bottleneck; where every core is busy it competes
// like any thread. A first round of spawn_join costs about a fifth less
// (docs/benchmarks.md, "Populating ahead"). It costs a thread (asleep unless
// a chunk was just taken), a futex wake or two per 2 MiB chunk (~20 µs: ~1 ns
// per block) and up to `ahead` chunks resident before their blocks are used.
// Rejected: populating the next chunk in slices on the spawning thread (the
// same cost, on the same thread); bigger chunks (the same cost per block);
// a filler that guesses how much a burst will take (it only refills what
// was taken). Across a fork, pthread_atfork handlers (registered when a
// filler is first allowed, before one can start) keep the span lock
// consistent; the child drops the chunks populated ahead (shared
// copy-on-write with the parent) and starts its own filler once it starts a
// runtime with workers.
constexpr unsigned ahead = 2;
constexpr unsigned ahead_after = 2;

struct filler_sync {
  std::condition_variable wake;   // the filler: a chunk was taken
  std::condition_variable ready;  // take_span: the filler's chunk is in
};

struct span_source {
  std::mutex mu;
  char* next = nullptr;
  char* end = nullptr;
  void* ready[ahead] = {};  // populated chunks nothing was carved from yet
  unsigned nready = 0;
  std::size_t chunks = 0;          // opened, in all
  std::size_t chunks_ahead = 0;    // of those, populated by the filler
  std::size_t populated_huge = 0;  // chunks populated asking for a huge page, in all
  bool filler_started = false;     // once; never stops (a fork's child has none)
  bool filler_allowed = false;     // a runtime with workers started (slab_allow_filler)
  bool filling = false;            // the filler is populating a chunk now
  filler_sync* sync = nullptr;     // set once; never destroyed
};
constinit span_source g_spans;
// The filler may still run while statics are destroyed at exit.
static_assert(std::is_trivially_destructible_v<span_source>);

// A fresh 2 MiB-aligned chunk, not yet populated.
void* map_chunk() {
  void* raw = ::mmap(nullptr, 2 * chunk_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  auto addr = reinterpret_cast<std::uintptr_t>(raw);
  std::uintptr_t aligned = (addr + chunk_bytes - 1) & ~(std::uintptr_t{chunk_bytes} - 1);
  if (aligned > addr) ::munmap(raw, aligned - addr);
  std::uintptr_t end = addr + 2 * chunk_bytes;
  if (end > aligned + chunk_bytes)
    ::munmap(reinterpret_cast<void*>(aligned + chunk_bytes), end - aligned - chunk_bytes);
  return reinterpret_cast<void*>(aligned);
}

// Populating a chunk. One MADV_POPULATE_WRITE faults all of it in one call,
// so a burst of spawns takes no fault per 4 KiB of blocks. As what, though:
//  - one transparent huge page (MADV_HUGEPAGE first): one TLB entry for the
//    chunk's life, and the fastest populate when the kernel has at hand a
//    huge page that the host still backs (~0.27 ms per MiB on our VMs, right
//    after something freed one);
//  - 4 KiB pages (MADV_NOHUGEPAGE first, or THP "always" would make it a
//    huge page anyway): ~0.65 ms per MiB on our VMs whatever the host did,
//    because they come from lower-order free lists. A huge page taken from
//    memory that the guest's free page reporting has handed back to the host
//    (any run after a few seconds of idle) costs ~1.9 ms per MiB: three
//    times as much.
// Neither is right at every hour (docs/benchmarks.md, "First touches after
// idle"; tests/bench/machine.cpp measures both), so chunk_policy times every
// populate and keeps to the cheaper kind (huge pages until they cost a
// quarter more), re-trying the other one chunk in 32. A 4 KiB chunk is
// marked MADV_HUGEPAGE afterwards, so that khugepaged may still collapse it
// later, off our threads. Where THP is off, both kinds cost the same and
// either will do.
constinit chunk_policy g_policy;  // under g_spans.mu
static_assert(std::is_trivially_destructible_v<chunk_policy>);

// Populates `mem` as `k`; returns the seconds it took.
double populate_as(void* mem, chunk_policy::kind k) {
  auto t0 = std::chrono::steady_clock::now();
  ::madvise(mem, chunk_bytes, k == chunk_policy::huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  ::madvise(mem, chunk_bytes, MADV_POPULATE_WRITE);  // failure only costs speed
  if (k == chunk_policy::small) ::madvise(mem, chunk_bytes, MADV_HUGEPAGE);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void record_populate(chunk_policy::kind k, double secs) {  // under g_spans.mu
  g_policy.record(k, secs);
  if (k == chunk_policy::huge) ++g_spans.populated_huge;
}

void populate(void* mem) {  // under g_spans.mu
  chunk_policy::kind k = g_policy.next();
  record_populate(k, populate_as(mem, k));
}

// The filler thread's loop (see "Populating ahead").
[[noreturn]] void fill_ahead() {
  std::unique_lock lk(g_spans.mu);
  for (;;) {
    g_spans.sync->wake.wait(lk, [] { return g_spans.nready < ahead; });
    chunk_policy::kind k = g_policy.next();
    g_spans.filling = true;
    lk.unlock();
    void* mem = nullptr;
    double secs = 0;
    try {
      mem = map_chunk();
      secs = populate_as(mem, k);
    } catch (const std::bad_alloc&) {  // out of address space: leave it to take_span
    }
    lk.lock();
    g_spans.filling = false;
    g_spans.sync->ready.notify_all();
    if (mem == nullptr) {
      g_spans.sync->wake.wait(lk);  // until a chunk is taken again
      continue;
    }
    record_populate(k, secs);
    g_spans.ready[g_spans.nready++] = mem;
  }
}

// Registered before any filler may start (slab_allow_filler), so that no
// fork can fall between `filler_started` and the handlers: a child that
// inherited `filler_started` without them would never start a filler.
void register_atfork() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    ::pthread_atfork([] { g_spans.mu.lock(); }, [] { g_spans.mu.unlock(); },
                     [] {
                       // The child has no filler thread: a populate it was
                       // in the middle of never ends there. Chunks populated
                       // ahead are shared copy-on-write with the parent now
                       // (a fault and a copy per page): dropped. Until the
                       // child starts a runtime with workers of its own, it
                       // has none to serve.
                       for (unsigned i = 0; i < g_spans.nready; ++i)
                         ::munmap(g_spans.ready[i], chunk_bytes);
                       g_spans.nready = 0;
                       g_spans.filler_started = false;
                       g_spans.filler_allowed = false;
                       g_spans.filling = false;
                       g_spans.sync = nullptr;  // the parent's (never destroyed)
                       g_spans.mu.unlock();
                     });
  });
}

// Never throws: a filler that cannot start leaves every chunk to take_span.
void start_filler() noexcept {
  auto* sync = new (std::nothrow) filler_sync;
  if (sync == nullptr) return;
  {
    std::lock_guard lk(g_spans.mu);
    g_spans.sync = sync;
  }
  // The filler takes no signals (it inherits the mask it starts with): a
  // process-directed one goes to a thread that expects it. It also inherits
  // the starting thread's CPU affinity and priority (taiga's workers set
  // neither).
  struct signals_blocked {
    sigset_t old;
    signals_blocked() {
      sigset_t all;
      ::sigfillset(&all);
      ::pthread_sigmask(SIG_SETMASK, &all, &old);
    }
    ~signals_blocked() { ::pthread_sigmask(SIG_SETMASK, &old, nullptr); }
  } blocked;
  try {
    std::thread th([] {
      ::pthread_setname_np(::pthread_self(), "taiga-slab");
      fill_ahead();
    });
    th.detach();
  } catch (...) {
    // No thread (no memory for one, or none allowed): every chunk is
    // populated where it is taken, as before.
  }
}

void* take_span() {
  bool start = false;
  filler_sync* refill_ahead = nullptr;
  std::unique_lock lk(g_spans.mu);
  while (g_spans.next == g_spans.end) {
    void* mem;
    if (g_spans.nready > 0) {
      mem = g_spans.ready[--g_spans.nready];
      ++g_spans.chunks_ahead;
    } else if (g_spans.filling) {
      // The filler is populating the next chunk. Waiting for it costs less
      // than populating another one here, which would first wait for the
      // filler's populate to let go of the mmap lock (mmap and madvise's
      // page-size hints take it for writing), then take as long again.
      g_spans.sync->ready.wait(lk);
      continue;  // another thread may have opened a chunk meanwhile
    } else {
      mem = map_chunk();
      populate(mem);
    }
    ++g_spans.chunks;
    g_spans.next = static_cast<char*>(mem);
    g_spans.end = g_spans.next + chunk_bytes;
    if (g_spans.chunks >= ahead_after && g_spans.nready < ahead && g_spans.filler_allowed) {
      start = !std::exchange(g_spans.filler_started, true);
      refill_ahead = g_spans.sync;  // null until the filler is set up: it fills first
    }
  }
  char* s = g_spans.next;
  g_spans.next += span_bytes;
  lk.unlock();
  if (start) {
    start_filler();
  } else if (refill_ahead != nullptr) {
    refill_ahead->wake.notify_one();
  }
  return s;
}

void refill(std::size_t c) {
  thread_lists& t = tls_lists;
  tls_owner.armed = true;  // registers the hand-back at thread exit
  {
    std::lock_guard lk(g_classes[c].mu);
    if (g_classes[c].top != nullptr) {
      auto [head, n] = g_classes[c].pop();
      t.head[c] = head;
      t.count[c] = n;
      return;
    }
  }
  auto* base = static_cast<char*>(take_span());
  std::size_t size = (c + 1) * granule;
  std::size_t n = span_bytes / size;
  free_block* head = nullptr;
  for (std::size_t i = n; i-- > 0;) {
    auto* b = reinterpret_cast<free_block*>(base + i * size);
    b->next = head;
    head = b;
  }
  t.head[c] = head;
  t.count[c] = n;
}

// The slow paths are out of line so that the fast ones, a pop or a push on
// every spawn and join, save no registers.
[[gnu::noinline]] void* allocate_slow(std::size_t c) {
  thread_lists& t = tls_lists;
  if (t.gone) return allocate_late(c);
  if (t.full[c] != nullptr) {
    t.head[c] = std::exchange(t.full[c], nullptr);
    t.count[c] = std::exchange(t.full_count[c], 0);
  } else {
    refill(c);
  }
  t.filled[c] = t.count[c];
  free_block* b = t.head[c];
  t.head[c] = b->next;
  --t.count[c];
  return b;
}

// The list is a batch: set it aside, and the batch set aside before (if
// any) goes to the global list.
[[gnu::noinline]] void set_aside(std::size_t c) noexcept {
  thread_lists& t = tls_lists;
  if (t.full[c] != nullptr) {
    std::lock_guard lk(g_classes[c].mu);
    g_classes[c].push(t.full[c], t.full_count[c]);
  }
  t.full[c] = std::exchange(t.head[c], nullptr);
  t.full_count[c] = std::exchange(t.count[c], 0);
  t.filled[c] = 0;
}

}  // namespace

void slab_allow_filler() noexcept {
  register_atfork();
  std::lock_guard lk(g_spans.mu);
  g_spans.filler_allowed = true;
}

slab_stats slab_statistics() noexcept {
  std::lock_guard lk(g_spans.mu);
  return slab_stats{g_spans.chunks, g_spans.chunks_ahead, g_spans.nready, g_spans.populated_huge};
}

void* slab_allocate(std::size_t size) {
  if (size > slab_max) return ::operator new(size, big_alignment(size));
  std::size_t c = (size - 1) / granule;
  thread_lists& t = tls_lists;
  free_block* b = t.head[c];
  if (b == nullptr) [[unlikely]]
    return allocate_slow(c);
  t.head[c] = b->next;
  --t.count[c];
  return b;
}

void slab_free(void* p, std::size_t size) noexcept {
  if (size > slab_max) {
    ::operator delete(p, big_alignment(size));
    return;
  }
  std::size_t c = (size - 1) / granule;
  auto* b = static_cast<free_block*>(p);
  thread_lists& t = tls_lists;
  if (t.gone) [[unlikely]] {
    free_late(c, b);
    return;
  }
  b->next = t.head[c];
  t.head[c] = b;
  // A thread that only frees (it finishes tasklets other threads spawned)
  // never refills: register the hand-back when its list starts.
  if (b->next == nullptr) [[unlikely]]
    tls_owner.armed = true;
  if (++t.count[c] >= batch + t.filled[c]) [[unlikely]]
    set_aside(c);
}

#endif

}  // namespace taiga::internal
