// Installed because the spawn templates build tasklet blocks. Users must not
// name anything in taiga::detail; runtime/src/scheduler.cpp owns the protocol.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <new>
#include <stop_token>
#include <string>
#include <taiga/runtime/config.hpp>
#include <taiga/runtime/detail/exec_context.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/source_location.hpp>
#include <utility>

namespace taiga {
class runtime;
}

namespace taiga::detail {

struct tasklet_core;
struct runtime_impl;

/// Public life-cycle states (tasklet::state()).
enum class tasklet_state : std::uint8_t {
  created,  // spawned, never run; in one ready queue (or a timer for call_later)
  ready,    // started, in one ready queue
  running,  // on one worker; only that worker changes this state
  parked,   // waiting; whoever holds the wait list or timer wakes it
  done,     // finished (returned, threw, or killed)
};

struct tasklet_vtable {
  /// Runs the body and stores its result (skip = killed before it started:
  /// destroy the callable unrun). Exceptions propagate to the caller.
  void (*run)(tasklet_core*, bool skip);
  /// Destroys the block and frees its memory. Runs none of the user's code:
  /// the callable died when the body ran; the result, the exception it
  /// ended with and its locals where they became unreachable (drop_result;
  /// drop_user_state in tasklet.cpp); what is left is the side record's name.
  void (*destroy)(tasklet_core*) noexcept;
  /// Destroys the result, if one is held, on the calling context. Called
  /// where a finished tasklet's result becomes one nobody can take (a
  /// detached tasklet's finish, detach of a finished one, a dropped handle),
  /// so that a destructor that parks (a result holding a `tasklet` handle
  /// joins what it names) parks a tasklet that can: never the runtime's
  /// last reference, released on a worker between tasklets.
  void (*drop_result)(tasklet_core*) noexcept;
};

/// A tiny test-and-test-and-set lock for short critical sections that never
/// span a switch.
class spinlock {
 public:
  void lock() noexcept {
    // Uncontended is the rule (three locks per spawn-run-join): one exchange
    // inline, the waiting loop out of line.
    if (!flag_.exchange(true, std::memory_order_acquire)) [[likely]]
      return;
    lock_slow();
  }
  bool try_lock() noexcept {
    return !flag_.load(std::memory_order_relaxed) &&
           !flag_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  void lock_slow() noexcept;
  std::atomic<bool> flag_{false};
};

struct tasklet_extra;  // tasklet_internal.hpp

/// What a tasklet needs only once it has a stack: its root context, the
/// context to resume (a fiber's, while one runs inside it), what it is
/// parked on and where, its stack slot, and what only the running tasklet
/// writes. It lives in the top 96 bytes of the tasklet's own stack
/// (worker::start_fresh), so a queued tasklet that has not run yet does not
/// pay for it, and a running one finds it in a page it touches anyway.
///
/// Lifetime: from the first run until the exit switch has completed
/// (worker::after_switch_slow, after::exit); tasklet_core::frame is null
/// outside it. The tasklet and the worker running it use it freely. Any
/// other thread may read park_what, park_object, park_site and last_worker only under
/// the tasklet's registry shard lock while the tasklet is registered
/// (runtime_impl::info_of): a tasklet leaves the registry, under that lock,
/// before its stack goes back.
struct alignas(16) tasklet_frame {
  exec_context ctx;                             // the root stack
  exec_context* active = &ctx;                  // the context to resume
  std::atomic<const char*> park_what{nullptr};  // what it is parked on (reports; relaxed)
  std::atomic<const void*> park_object{nullptr};
  // Where the user's blocking call was (prepare_wait's call_site; null when
  // the primitive had none): the deadlock report's "parked at". Relaxed.
  std::atomic<const site_record*> park_site{nullptr};
  std::uint32_t stack_total = 0;              // the pooled slot's size (its base: ctx.stack_lo)
  std::atomic<std::int16_t> last_worker{-1};  // diagnostics (relaxed)
  std::uint8_t stack_guard = 0;               // a stack_guard_mode
  bool scope_expired = false;                 // timeout_scope (the tasklet's own)
  // The park_reason of the current park (beside park_what; relaxed, read
  // like it), and the tasklet's trace sequence number (15 bits used,
  // wrapping): written only by whoever runs the tasklet (its run, park,
  // yield and exit events; a park also counts the unblock a waker will
  // emit), read by nobody else (park.cpp carries it to wakers in the wait
  // word). park_since_ms: when the current park began (now_ns() / 1e6,
  // low 32 bits), set by the trace's park event only (a clock read per park
  // costs too much otherwise); a value older than the running trace's start
  // is a stale one and means "unknown" (runtime_impl::info_of). All three in
  // what was padding: the frame stays 96 bytes.
  std::atomic<std::uint8_t> park_reason{0};
  std::uint16_t trace_seq = 1;  // a fresh frame's first run (trace::run)
  std::atomic<std::uint32_t> park_since_ms{0};
};
// worker::start_fresh places it right above the fresh context's 16-byte
// entry slot, whose alignment it keeps (hence alignas(16)), so it grows in
// steps of 16 bytes. 96 since park_site (issue 18): no field could give way
// (each one is read by the scheduler, and stack_total, the only derivable
// one, saves a page-size computation on every stack release). The 16 bytes
// cost no memory and no cache line: the frame and the entry slot (112
// bytes) still lie in the two top lines of the stack, in the page every
// started tasklet touches; a tasklet's usable stack is 16 bytes smaller.
static_assert(sizeof(tasklet_frame) == 96);

/// The control block of a tasklet. Allocated together with the callable and
/// the result (tasklet_block<R, F> below); reference counted: the handle
/// holds one reference and the runtime one while the tasklet is alive.
///
/// Size is a budget: one million queued tasklets are one million blocks of
/// fresh memory, and on our machines fresh memory is time (machine.md). The
/// core is 88 bytes so that a block with a 4-byte result and a 4-byte
/// callable (spawn(fn, int) of a captureless lambda) fits the slab's 96-byte
/// class, and one with a word of each, or three captured words and no
/// result, the 128-byte class. What only a started tasklet needs lives on
/// its stack (tasklet_frame); what few tasklets use (a name, locals, a
/// pending throw_into, an exception, a timeout scope, a stack size of their
/// own) in a side record allocated on first use; the spawn site is one
/// pointer (call_site). Test tasklet.small_tasklet_blocks_fit_their_slab_classes
/// holds the line.
struct tasklet_core {
  const tasklet_vtable* vt = nullptr;
  // On the tasklet's stack from its first run; null before and after.
  // Written by the worker that starts or ends it (release: info_of reads it
  // from other threads).
  std::atomic<tasklet_frame*> frame{nullptr};
  tasklet_core* reg_prev = nullptr;  // registry links (owned by the registry shard)
  tasklet_core* reg_next = nullptr;
  runtime_impl* rt = nullptr;
  std::uint64_t id = 0;
  const site_record* site = nullptr;           // where it was spawned (to_location)
  void* joiner = nullptr;                      // a wait_point* of the one joiner
  std::atomic<tasklet_extra*> extra{nullptr};  // installed once (CAS), freed with the block
  std::atomic<std::uint32_t> refs{1};
  std::atomic<std::uint32_t> wait_word{0};  // park protocol word (park.cpp)
  std::atomic<tasklet_state> state{tasklet_state::created};
  std::atomic<std::uint8_t> flags{0};  // flag_* below
  std::uint8_t registry_shard = 0;
  spinlock lock;            // guards: joiner; the side record's pending, name
  std::int16_t home = -1;   // worker it must run on (pinned or spawn_on)
  bool has_result = false;  // result_core<R> holds a value (written before `done`)

  static constexpr std::uint8_t flag_kill = 1;      // kill requested
  static constexpr std::uint8_t flag_pinned = 2;    // never migrates
  static constexpr std::uint8_t flag_detached = 4;  // no handle left
  static constexpr std::uint8_t flag_killed = 8;    // ended by tasklet_exit
  // Kills and throw_intos stay pending instead of ending a wait (set and
  // cleared by the tasklet itself around a handle destructor's join; see
  // drop_handle). Bit 16 was "started" once: frame != nullptr says that.
  static constexpr std::uint8_t flag_masked = 16;
  static constexpr std::uint8_t flag_main = 32;   // the runtime's main tasklet
  static constexpr std::uint8_t flag_throw = 64;  // `pending` holds an exception
  // It threw, and there was no memory to record the exception: join()
  // throws std::bad_alloc.
  static constexpr std::uint8_t flag_lost_error = 128;
};

// Library entry points used by the public templates.
void* allocate_block(std::size_t size);
void free_block(void* p, std::size_t size) noexcept;
void destroy_tasklet(tasklet_core* t) noexcept;  // the last reference went
/// Registers and enqueues a new tasklet. `rt` may be null: the current runtime.
void submit(tasklet_core* t, runtime* rt, const spawn_options* opts);
tasklet_core* current_tasklet() noexcept;
/// Waits until `t` is done (parks a tasklet, blocks a plain thread).
/// `site`: the user's join call (the deadlock report's "parked at").
void wait_done_slow(tasklet_core* t, call_site site = call_site());
void rethrow_failure(tasklet_core* t);
void kill(tasklet_core* t);
void detach(tasklet_core* t);  // drops the handle's reference
/// A joinable handle's destructor: kills `t`, waits for it without being
/// interrupted, reports an error nobody will join for, drops the reference.
void drop_handle(tasklet_core* t) noexcept;
bool throw_into(tasklet_core* t, std::exception_ptr e);
std::string name_of(const tasklet_core* t);
/// `t`'s stop source, its stop state made on first use (side record).
std::stop_source stop_source_of(tasklet_core* t);
bool request_stop(tasklet_core* t);
void set_name(tasklet_core* t, std::string name);

// Every join runs these three: their usual case (the tasklet is done, ended
// well, and this was the last reference but the runtime's) is inline in the
// caller, the rest out of line (tasklet.cpp).

/// Drops one reference; the last one destroys the tasklet.
inline void release(tasklet_core* t) noexcept {
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy_tasklet(t);
}
/// Returns once `t` is done; parks (or blocks, on a plain thread) until then.
inline void wait_done(tasklet_core* t, call_site site = call_site()) {
  if (t->state.load(std::memory_order_acquire) != tasklet_state::done) wait_done_slow(t, site);
}
/// After done: rethrows the tasklet's error, or tasklet_killed.
inline void rethrow_if_failed(tasklet_core* t) {
  // The usual tasklet has no side record and no flag.
  if (t->extra.load(std::memory_order_acquire) != nullptr ||
      (t->flags.load(std::memory_order_acquire) &
       (tasklet_core::flag_killed | tasklet_core::flag_lost_error)))
    rethrow_failure(t);
}

template <class R>
struct result_core : tasklet_core {
  alignas(R) unsigned char storage[sizeof(R)];
  // The moved-from value dies here, in the joiner, not at the last
  // release (which may be the runtime's: tasklet_vtable::drop_result).
  R take() {
    R* p = std::launder(reinterpret_cast<R*>(storage));
    struct drop_after {  // also when R's move constructor throws
      result_core* self;
      ~drop_after() { self->drop(); }
    } d{this};
    return std::move(*p);
  }
  void drop() noexcept {
    if (this->has_result) {
      this->has_result = false;
      std::launder(reinterpret_cast<R*>(storage))->~R();
    }
  }
  ~result_core() { drop(); }
};
template <>
struct result_core<void> : tasklet_core {
  void take() {}
  void drop() noexcept {}
};

template <class R, class F>
struct tasklet_block final : result_core<R> {
  union {
    F fn;
  };
  explicit tasklet_block(F&& f) { ::new (static_cast<void*>(&fn)) F(std::move(f)); }
  ~tasklet_block() {}

  static void run(tasklet_core* c, bool skip) {
    auto* self = static_cast<tasklet_block*>(c);
    struct destroy_fn {
      F& f;
      ~destroy_fn() { f.~F(); }
    } guard{self->fn};
    if (skip) return;
    if constexpr (std::is_void_v<R>) {
      std::move(self->fn)();
    } else {
      ::new (static_cast<void*>(self->storage)) R(std::move(self->fn)());
      self->has_result = true;
    }
  }
  static void destroy(tasklet_core* c) noexcept {
    auto* self = static_cast<tasklet_block*>(c);
    self->~tasklet_block();
    free_block(self, sizeof(tasklet_block));
  }
  static void drop_result(tasklet_core* c) noexcept { static_cast<tasklet_block*>(c)->drop(); }
  static constexpr tasklet_vtable vtable{&run, &destroy, &drop_result};

  static tasklet_block* make(F&& f) {
    // The slab aligns a block to the largest power of two dividing its
    // size, up to 4 KiB (slab.hpp): enough for any type of that size.
    static_assert(alignof(tasklet_block) <= 4096, "taiga: a spawned callable aligned past 4 KiB");
    void* mem = allocate_block(sizeof(tasklet_block));
    auto* b = ::new (mem) tasklet_block(std::move(f));
    b->vt = &vtable;
    return b;
  }
};

}  // namespace taiga::detail
