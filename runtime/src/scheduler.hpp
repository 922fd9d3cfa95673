// Internal structures of a runtime. The protocols are described in
// scheduler.cpp; this header only declares.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cassert>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <taiga/runtime/config.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/detail/tasklet_core.hpp>
#include <taiga/runtime/poller.hpp>
#include <taiga/runtime/runtime.hpp>
#include <thread>
#include <vector>

#include "context.hpp"
#include "run_queue.hpp"
#include "stack_pool.hpp"
#include "timer_heap.hpp"
#include "trace.hpp"

namespace taiga::detail {
struct runtime_impl;
}

namespace taiga::internal::trace {
struct recorder;
void stop_recording(detail::runtime_impl* rt) noexcept;
/// When the running trace of `rt` began (now_ns() / 1e6, low 32 bits, never
/// 0), or 0 when it records nothing.
std::uint32_t recording_since_ms(const detail::runtime_impl* rt) noexcept;
}  // namespace taiga::internal::trace

namespace taiga::internal {

using detail::runtime_impl;
using detail::tasklet_core;
using detail::tasklet_frame;
using detail::tasklet_state;

// Owner-written counters: a plain load and store, not a locked add (other
// threads only read them).
template <class T, class N = T>
inline void bump(std::atomic<T>& c, N n = 1) {
  c.store(c.load(std::memory_order_relaxed) + static_cast<T>(n), std::memory_order_relaxed);
}

// wait_word bits (see "Parking" in park.cpp).
// (claimed, released, switched and idle live in park.hpp: claim() and
// complete() are inline there.)
using detail::ww_claimed;
using detail::ww_idle;
using detail::ww_released;
using detail::ww_seq_mask;
using detail::ww_seq_shift;
using detail::ww_switched;
inline constexpr std::uint32_t ww_reason_shift = 8;
inline constexpr std::uint32_t fair_every = 61;  // worker::pick_fast
static_assert(fair_every % 2 == 1, "worker::fair_left's parity must flip every turn");
// How long a thief watches a victim's next slot hold the same tasklet while
// the victim does not switch, before it takes it (scheduler.cpp, N2).
inline constexpr std::int64_t next_steal_after_ns = 20'000;
// A busy worker's ring of at most this many is its own until it stops
// popping from it for next_steal_after_ns (scheduler.cpp, N5).
inline constexpr std::uint32_t small_ring = 16;

// ---- tasklet states --------------------------------------------------------
//
// The state field's one home per transition (tasklet.cpp has the diagram):
// every change of tasklet_core::state goes through one of these, so each
// transition has one place to look at, and one place for its trace event
// (which the caller emits beside it: the event needs what only the caller
// knows, a park's reason, an exit's exception).
//   S1 created -> ready never happens: a tasklet that has not run stays
//      `created` in its queue (tasklet::state() tells "never ran").
//   S2 only the worker running a tasklet moves it out of `running`
//      (parked, ready on a yield, done); `done` is published with release,
//      which join's acquire load pairs with.
inline void transition_to_ready(tasklet_core* t) noexcept {
  if (t->state.load(std::memory_order_relaxed) != tasklet_state::created)  // S1
    t->state.store(tasklet_state::ready, std::memory_order_relaxed);
}
inline void transition_to_running(tasklet_core* t) noexcept {
  t->state.store(tasklet_state::running, std::memory_order_relaxed);
}
inline void transition_to_parked(tasklet_core* t) noexcept {
  // Release: a dump or a deadlock check that reads `parked` then reads the
  // park's reason and object (info_of, under the registry lock).
  t->state.store(tasklet_state::parked, std::memory_order_release);
}
inline void transition_to_done(tasklet_core* t) noexcept {
  t->state.store(tasklet_state::done, std::memory_order_release);  // S2
}

struct worker;
enum class after : std::uint8_t { none, requeue, park, exit };
// What a context switching away hands the one it resumes. `w` is the worker
// doing the switch, which is the resumed side's worker too (same thread):
// the resumed side takes it from here instead of calling this_worker(), an
// opaque out-of-line call on every resume otherwise.
struct switch_payload {
  after what;
  tasklet_core* prev;
  worker* w;
};

class blocking_pool;

// Memory for the moodycamel ready queues (inject, remote). moodycamel keeps
// the blocks it allocates (32 queued pointers each) on a free list until the
// queue dies, and by default mallocs them. A million spawned-but-not-run
// tasklets overflow into ~9 MiB of blocks: from glibc that is 2,000+ fresh
// 4 KiB pages, each an mprotect (arena growth) and a first-touch fault
// (15-20 us here, machine.md), a tenth of spawn_join's first round. From the
// slab it is a few pre-faulted 2 MiB chunks, kept for the next runtime
// (only the blocks: see queue_traits::malloc). An intrusive list through a
// link field in tasklet_core (Go's global runq) was also tried: no memory at all,
// but popping walks the cold blocks one dependent load at a time, and the
// warm round got 5-8% slower.
struct queue_traits : moodycamel::ConcurrentQueueDefaultTraits {
  static void* malloc(std::size_t size) noexcept;
  static void free(void* p) noexcept;
};
using ready_queue = moodycamel::ConcurrentQueue<tasklet_core*, queue_traits>;
/// Checks an enqueue's result: false means out of memory, which ends the
/// process with a message (a lost ready tasklet would be a silent hang).
void queued(bool ok) noexcept;

struct alignas(64) worker {
  worker(runtime_impl* rt, unsigned index);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  runtime_impl* const rt;
  const unsigned index;
  const bool solo;  // the runtime's only worker: no thieves (run_queue.hpp, Q5)

  // --- owned by this worker's thread -------------------------------------
  exec_context main_ctx;            // the worker loop's own stack
  tasklet_core* current = nullptr;  // the tasklet running here, if any
  // pick_fast's turns until it declines one. Its parity also alternates the
  // queues pick_fast tries first: fair_every is odd, so it flips every turn,
  // across the reset too (1, the declined turn, then fair_every - 1).
  std::uint32_t fair_left = fair_every;
  bool fair_due = false;  // it declined: pick_heavy looks outside first
  std::uint32_t next_streak = 0;
  bool spinning = false;
  bool no_chain = false;  // run_once: return to the host after each tasklet
  std::uint64_t rng = 0;
  // Pinned tasklets and first runs of spawn_on: never stolen. Rare, so a
  // deque rather than a link field in every tasklet block.
  std::deque<tasklet_core*> priv;
  std::unique_ptr<moodycamel::ProducerToken> inject_ptok;
  std::unique_ptr<moodycamel::ConsumerToken> inject_ctok;
  // The stack of the last default-size tasklet that exited here, kept for
  // the next fresh one: a spawn-and-exit stream then never goes to the
  // stack pool (its thread cache lookup, size arithmetic and counters were
  // ~100 instructions of spawn_join's ~850 per tasklet). Released when the
  // worker dies.
  stack spare;
  std::uint32_t default_total = 0;  // slot size of a default-size stack, once seen
  void release_spare() noexcept;    // at shutdown (no tasklet runs) and destruction
  // What this worker, as a thief, last saw in each victim's next slot: the
  // tasklet there, the victim's switch count, and since when (N2 in
  // scheduler.cpp, "Stealing"). One entry per worker, indexed by the victim.
  struct next_seen {
    tasklet_core* t = nullptr;
    std::uint64_t switches = 0;
    std::int64_t since_ns = 0;
  };
  std::vector<next_seen> seen;
  struct ring_note {  // what this thief last saw of a victim's ring (N5)
    std::uint32_t head = 0;
    bool valid = false;
    std::int64_t since_ns = 0;
  };
  std::vector<ring_note> ring_seen;  // N5: each victim's ring head, and since when
  bool small_ring_overdue(worker* v);
  bool next_slot_overdue(worker* v, tasklet_core* t, std::uint64_t s);  // N2

  // --- shared --------------------------------------------------------------
  run_queue rq;                                   // stealable FIFO
  std::atomic<tasklet_core*> next_slot{nullptr};  // LIFO "run next" slot, stealable
  ready_queue remote;                             // for this worker only
  timer_heap timers;
  std::atomic<std::uint32_t> park_word{0};  // parker futex word
  // The I/O hook (taiga/runtime/poller.hpp): installed once, for the
  // runtime's life (install_pollers); null until then. polled_ns: when it
  // was last polled (any thread; spinners and sysmon claim a poll of a busy
  // worker's poller with a CAS on it).
  std::atomic<poller*> io{nullptr};
  std::atomic<std::int64_t> polled_ns{0};
  std::atomic<bool> in_idle{false};             // in rt->idle (written under idle_mu)
  std::atomic<bool> wake_spinning{false};       // woken by wake_one as the spinner
  std::atomic<tasklet_core*> running{nullptr};  // for the watchdog (relaxed)
  std::atomic<int> os_tid{0};  // the thread's kernel id, for sysmon's trace samples (relaxed)
  // Tasklets run here: stats, watchdog, deadlock check, and the next-slot
  // steal rule (N2). Owner-written (bump), read relaxed by others.
  std::atomic<std::uint64_t> switches{0};

  struct counters {
    std::atomic<std::uint64_t> steals{0}, stolen{0}, parks{0}, spawns{0}, sleeps{0}, idle_ns{0};
    std::atomic<std::int64_t> stacks{0};  // stacks taken minus returned here
  } stats;

  // Owner operations.
  // Inline: below. True when a tasklet entered the ring (`t`, or the one
  // `t` pushed out of the next slot); false when `t` took a free slot.
  bool push_local(tasklet_core* t, bool next);
  void push_local_slow(tasklet_core* t);  // the ring is full
  void push_private(tasklet_core* t);
  tasklet_core* pop_private();
  tasklet_core* pick_fast();   // next slot, local queue, private queue; small stack
  tasklet_core* pick_heavy();  // everything local, remote, inject, timers
  tasklet_core* find_work();   // heavy + steal + spin + sleep; null when stopping
  tasklet_core* steal_from_others();
  bool run_timers();
  // Polls `owner`'s poller (this worker's, or a busy worker's for a
  // spinner) when it has operations in flight and `due` or its last poll is
  // poll_interval old; true when completions ran. What they make ready
  // goes to this worker's queues without a wake-up each (I6).
  bool poll_io(worker* owner, std::int64_t now, bool due);
  void after_io_completions();        // one wake-up for a batch worth sharing
  bool in_io_completions = false;     // make_ready leaves the wake-up to after_io_completions
  void run_in_main(tasklet_core* t);  // from the main context
  exec_context* next_context();       // the next tasklet's context, or the loop's
  void switch_out(tasklet_core* cur, after what);  // from a tasklet; returns when resumed
                                                   // inline: below
  // Ends `cur` (finished): returns a fresh tasklet that adopted its stack,
  // or switches away for good.
  tasklet_core* exit_current(tasklet_core* cur);
  void after_switch(switch_payload* p);         // inline: below
  void after_switch_slow(switch_payload* p);    // exit, pinned requeue
  exec_context* prepare(tasklet_core* t);       // marks t running here; inline: below
  tasklet_frame* start_fresh(tasklet_core* t);  // gives a fresh tasklet its stack

  // Any thread.
  void unpark() noexcept;
  void sleep(std::int64_t deadline_ns);  // in the poller once there is one (I6)
};

worker* this_worker() noexcept;

inline tasklet_core* worker::pick_fast() {
  if (no_chain) return nullptr;
  // Every fair_every-th turn, decline: the main context looks outside (timers,
  // the inject queue) even under a stream of local work. A countdown, not
  // `tick % 61` (a multiply-and-shift sequence on every switch).
  if (--fair_left == 0) [[unlikely]] {
    fair_left = fair_every;
    fair_due = true;
    return nullptr;
  }
  // Load first: an exchange is a locked instruction and the slot is usually
  // empty. Thieves exchange it too, so the exchange decides.
  if (tasklet_core* seen = next_slot.load(std::memory_order_relaxed)) {
    tasklet_core* t = seen;
    if (solo) {
      next_slot.store(nullptr, std::memory_order_relaxed);
    } else {
      t = next_slot.exchange(nullptr, std::memory_order_acq_rel);
    }
    if (t) {
      if (next_streak < 16) {
        ++next_streak;
        return t;
      }
      push_local(t, false);  // streak over: the slot's tasklet waits its turn
    }
  }
  next_streak = 0;
  tasklet_core* t;
  // The private queue is usually empty: tested inline, popped out of line
  // (a call on every pick cost 7 instructions per switch: benchmarks.md).
  if (fair_left & 1) {
    t = priv.empty() ? nullptr : pop_private();
    if (!t) t = rq.pop();
  } else {
    t = rq.pop();
    if (!t && !priv.empty()) t = pop_private();
  }
  return t;
}

void set_this_worker(worker* w) noexcept;

/// Entry function of every tasklet's root context (tasklet.cpp).
void detail_tasklet_entry(void* payload);

/// Where a runnable tasklet goes: the one placement function (tasklet.cpp's
/// spawns, timers' calls and every wake-up come through it).
///   spawn:    a fresh tasklet from a worker of its runtime runs next there
///             (LIFO: spawn trees grow depth first), and an idle worker is
///             told (the spawner runs on);
///   wake:     a woken or requeued tasklet joins the ring (N3: no wake-up
///             when it took a free next slot);
///   hand_off: as wake, into the next slot (channel preference).
/// Pinned tasklets (home >= 0) go to their worker's private or remote queue;
/// from a thread that is not one of the runtime's workers, to the inject
/// queue (or the home's remote queue).
enum class placement : std::uint8_t { wake, hand_off, spawn };
void place_ready(tasklet_core* t, placement how) noexcept;
/// place_ready's case of a tasklet that is not pinned, from `w`, a worker
/// of its runtime (inline: every spawn and wake-up on a worker runs it).
inline void place_local(worker* w, tasklet_core* t, placement how) noexcept;
/// Onto worker `target`'s own queues: its private queue from that worker
/// itself (never stolen), else its remote queue, waking it.
void place_at(tasklet_core* t, unsigned target) noexcept;
/// Makes `t` runnable. `next`: run it next on this worker (hand-off).
inline void make_ready(tasklet_core* t, bool next) noexcept {
  transition_to_ready(t);
  place_ready(t, next ? placement::hand_off : placement::wake);
}
/// Single-CAS claim and release of t's current park with `reason`.
bool interrupt_park(tasklet_core* t, detail::wake_status reason) noexcept;

}  // namespace taiga::internal

namespace taiga::detail {

/// spawn_options::stack_size of a tasklet that has a side record, else 0.
std::size_t requested_stack(const tasklet_core* t) noexcept;

struct recorder_deleter {
  void operator()(internal::trace::recorder* r) const noexcept;  // trace.cpp
};

// One shard per worker (+1 for other threads): a tasklet registers in the
// shard of the worker that spawns it, so spawning takes an uncontended lock.
// The count is exact under the lock; the runtime's number of live tasklets is
// the sum (no runtime-wide counter that every spawn and exit would bounce
// between cores: on 16 cores such a counter serialized skynet).
struct alignas(64) registry_shard {
  spinlock lock;
  tasklet_core* head = nullptr;
  std::size_t count = 0;
};

struct runtime_impl {
  runtime_impl(runtime* owner, runtime_config cfg);
  ~runtime_impl();

  runtime* const owner;
  runtime_config cfg;
  bool embedded = false;
  unsigned nworkers = 1;
  // Before `workers`: their tokens must die first (a token's destructor
  // touches its queue).
  internal::ready_queue inject;
  std::atomic<std::uint64_t> inject_count{0};
  std::vector<std::unique_ptr<internal::worker>> workers;
  std::vector<std::thread> threads;

  // Idle protocol (scheduler.cpp, "Idle workers").
  std::atomic<int> nspinning{0};
  std::atomic<int> npidle{0};
  std::mutex idle_mu;
  std::vector<internal::worker*> idle;

  // Registry of live tasklets, sharded by the spawning worker (+1 for others).
  std::unique_ptr<registry_shard[]> shards;
  unsigned nshards = 1;
  std::atomic<int> keepalive{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  // What ends a masked wait (drop_handle) early, where nothing else could:
  // shutdown's kill loop has begun, or a deadlock was reported.
  std::atomic<bool> killing_all{false};
  std::atomic<std::uint64_t> deadlock_reports{0};

  // sysmon: watchdog, timer nudges, deadlock detection.
  std::thread sysmon;
  std::mutex sysmon_mu;
  std::condition_variable sysmon_cv;
  bool sysmon_stop = false;

  std::unique_ptr<internal::blocking_pool> blocking;

  // The trace (trace.cpp): the recorder that records this runtime now, or
  // null (acquire/release: its fields were set before it was published);
  // every recorder it ever had, freed with the runtime (T5); its id in
  // trace headers, unique in the process.
  std::atomic<internal::trace::recorder*> tracer{nullptr};
  std::mutex trace_mu;  // start and stop
  std::vector<std::unique_ptr<internal::trace::recorder, recorder_deleter>> trace_retired;
  const std::uint64_t trace_id;

  // The I/O hook's pollers, one per worker (poller.hpp), installed once.
  std::mutex io_mu;
  std::vector<std::unique_ptr<poller>> pollers;
  std::atomic<bool> io_installed{false};
  std::size_t io_in_flight() const noexcept;  // the pollers' operations, summed
  void drain_pollers();                       // at shutdown, after the kill loop

  void start();
  void notify_work() noexcept;         // after a worker pushed to its own queues
  void notify_work_fenced() noexcept;  // after a push that no running worker owns
                                       // runnable work anywhere
  void wake_one() noexcept;            // Go's wakep
  void unpark_worker(internal::worker* w) noexcept;
  void idle_leave(internal::worker* w) noexcept;
  bool work_visible(internal::worker* self) noexcept;
  void register_tasklet(tasklet_core* t, unsigned shard);
  void unregister_tasklet(tasklet_core* t);
  std::vector<tasklet_core*> snapshot_live();  // with a reference each
  std::size_t live_count();
  // shard_locked: the caller holds t's registry shard lock.
  tasklet_info info_of(tasklet_core* t, bool shard_locked = false);
  void sysmon_loop();
  bool deadlocked_now();
  void handle_deadlock();
  void drive(tasklet_core* main);  // embedded: run until `main` is done
  void shutdown(shutdown_mode mode);
  std::size_t timers_pending();
  /// Runtimes that exist now (constructed and not yet destroyed), for what
  /// may run after a handle's runtime is gone: under live_mutex(), a runtime
  /// that exists_locked() cannot be destroyed.
  static std::mutex& live_mutex() noexcept;
  static bool exists_locked(const runtime_impl* r) noexcept;
};

// Inline: every spawn registers and every exit unregisters (scheduler.cpp
// and tasklet.cpp both call them).
inline void runtime_impl::register_tasklet(tasklet_core* t, unsigned shard) {
  // shard < nshards: callers pass a worker's index + 1, or 0. (A `% nshards`
  // here was a divide instruction, 20-40 cycles, on every spawn.) Past 255
  // workers the 8-bit field wraps, to a lower shard that exists: spawns
  // share it, and unregister finds the same one.
  t->registry_shard = static_cast<std::uint8_t>(shard);
  registry_shard& s = shards[t->registry_shard];
  std::lock_guard lk(s.lock);
  t->reg_prev = nullptr;
  t->reg_next = s.head;
  if (s.head) s.head->reg_prev = t;
  s.head = t;
  ++s.count;
}

inline void runtime_impl::unregister_tasklet(tasklet_core* t) {
  registry_shard& s = shards[t->registry_shard];
  std::lock_guard lk(s.lock);
  if (t->reg_prev) {
    t->reg_prev->reg_next = t->reg_next;
  } else {
    s.head = t->reg_next;
  }
  if (t->reg_next) t->reg_next->reg_prev = t->reg_prev;
  t->reg_prev = t->reg_next = nullptr;
  --s.count;
}

}  // namespace taiga::detail

// ---- the switch path, inline ------------------------------------------------
//
// Everything a yield or a hand-off runs between two jump_fcontexts is below,
// inline, so that switch_out compiles to one frame: each extra call level is
// a push/pop of saved registers and, more to the point, one more return the
// resumed side must predict (context.hpp, "jump"). The rare cases (a fresh
// stack, a full ring, a pinned tasklet, parks and exits) stay out of line.

namespace taiga::internal {

inline bool worker::push_local(tasklet_core* t, bool next) {
  if (next) {
    if (solo) {  // no thieves (run_queue.hpp, Q5)
      tasklet_core* old = next_slot.load(std::memory_order_relaxed);
      next_slot.store(t, std::memory_order_relaxed);
      t = old;
    } else {
      t = next_slot.exchange(t, std::memory_order_acq_rel);
    }
    if (t == nullptr) return false;  // the slot was free
  }
  if (rq.push(t)) [[likely]]
    return true;
  push_local_slow(t);
  return true;
}

inline void place_local(worker* w, tasklet_core* t, placement how) noexcept {
  if (how == placement::spawn) {
    w->push_local(t, true);
    w->rt->notify_work();
    return;
  }
  // N3: a tasklet that took a free next slot wakes no one; one that entered
  // the ring (or pushed an older one into it) does once the ring is bigger
  // than N5 protects (N6), and not while an I/O poll is making a batch
  // ready (I6: one wake-up after it).
  if (w->push_local(t, how == placement::hand_off) && !w->solo && !w->in_io_completions &&
      w->rq.size() > small_ring)
    w->rt->notify_work();
}

inline exec_context* worker::prepare(tasklet_core* t) {
  // The run event, first: it reads the worker the tasklet last ran on (a
  // migration when it differs) and whether it ever ran, and only `this` and
  // `t` are live across the call.
  if (detail::trace_on()) [[unlikely]]
    trace::run(this, t);
  tasklet_frame* f = t->frame.load(std::memory_order_relaxed);
  if (f == nullptr) [[unlikely]]
    f = start_fresh(t);
  transition_to_running(t);
  f->last_worker.store(static_cast<std::int16_t>(index), std::memory_order_relaxed);
  current = t;
  running.store(t, std::memory_order_relaxed);
  // Release (a plain store on x86, like bump's): a thief that reads this
  // count and then the next slot sees the slot as of this switch or later
  // (scheduler.cpp, N2).
  switches.store(switches.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  return f->active;
}

// The context a tasklet leaving the CPU switches to: the next ready tasklet
// (pick_fast, prepared to run), or the worker loop when there is none.
inline exec_context* worker::next_context() {
  if (tasklet_core* nxt = pick_fast()) return prepare(nxt);
  current = nullptr;
  running.store(nullptr, std::memory_order_relaxed);
  return &main_ctx;
}

inline void worker::after_switch(switch_payload* p) {
  // Every switch into a tasklet or a loop comes from switch_out, run_in_main
  // or exit_current, each with a payload that names the switching worker,
  // which runs on this thread (debug builds check it on every resume).
  assert(p != nullptr && p->w == this_worker());
  tasklet_core* prev = p->prev;
  if (prev == nullptr) return;
  if (p->what == after::requeue &&
      !(prev->flags.load(std::memory_order_relaxed) & tasklet_core::flag_pinned)) [[likely]] {
    transition_to_ready(prev);
    push_local(prev, false);
    // N6: a ring of one (the tasklet that just yielded) is what this worker
    // runs at its next switch; N5 keeps thieves off it. Wake no one for it.
    if (!solo && rq.size() >= 2) rt->notify_work();
    return;
  }
  if (p->what == after::park) {
    // P4 (park.cpp, "Parking"). Once `switched` is set and `released`
    // was not, a waker may queue `prev` at any moment and it may run, end
    // and be freed elsewhere: nothing below may touch it. (A flags check
    // here, meant to replace P1's fence, read freed memory: TSan.)
    std::uint32_t old = prev->wait_word.fetch_or(ww_switched, std::memory_order_acq_rel);
    if (old & ww_released) make_ready(prev, false);
    return;
  }
  if (p->what != after::none) after_switch_slow(p);
}

// Canary mode: every switch off a tasklet's root stack, the exit included,
// checks the bytes an overflow would have overwritten (stack_pool.hpp).
inline void check_canary(tasklet_core* cur, tasklet_frame* f) noexcept {
  if (f->stack_guard == static_cast<std::uint8_t>(stack_guard_mode::canary) &&
      !stack_pool::canary_intact(f->ctx.stack_lo)) [[unlikely]]
    report_overflow(cur, 1);
}

// Inline so that the caller's frame (yield, a park) is the one that jumps:
// one call level less on the switch path (context.hpp, "jump"). Forced: GCC
// 12 outlined it once the paths had grown, and every yield paid a call, a
// second set of register saves and one more return to predict (8 of 364
// instructions per switch round trip: benchmarks.md, "Calm and slow
// minutes").
[[gnu::always_inline]] inline void worker::switch_out(tasklet_core* cur, after what) {
  tasklet_frame* f = cur->frame.load(std::memory_order_relaxed);
  check_canary(cur, f);
  exec_context* to = next_context();
  switch_payload p{what, cur, this};
  auto* back = static_cast<switch_payload*>(switch_context(*f->active, *to, &p));
  // Resumed, perhaps on another worker: never reuse `this` below. The
  // resumer's payload names the worker we are on now.
  back->w->after_switch(back);
}

}  // namespace taiga::internal
