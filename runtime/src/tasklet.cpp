// tasklet.cpp: tasklet life cycle (spawn, run, finish, join, kill, throw),
// this_tasklet, tasklet_local, call_soon/call_later, and the runtime class.
// The parking API used by every primitive is in park.cpp.
//
// Life of a tasklet (states in detail::tasklet_state):
//   created --(first pick)--> running --(park)--> parked --(wake)--> ready
//      ^ spawn                  |  ^                                  |
//                               |  +----------------(pick)------------+
//                               +--(return/throw/kill)--> done
// The runtime holds one reference from submit() until its stack is freed
// (after_switch, after::exit); the handle holds the other. A kill is a flag
// plus an interrupt of the current park (park.cpp, "Parking"): it is
// delivered as tasklet_exit at the tasklet's next park point, once.
#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <taiga/runtime.hpp>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>

#include "blocking_pool.hpp"
#include "scheduler.hpp"
#include "slab.hpp"
#include "stack_pool.hpp"
#include "tasklet_internal.hpp"

#if defined(TAIGA_SANITIZE_ADDRESS)
#include <sanitizer/lsan_interface.h>
#endif

namespace taiga {

const char* to_string(tasklet_state s) noexcept {
  switch (s) {
    case tasklet_state::created:
      return "created";
    case tasklet_state::ready:
      return "ready";
    case tasklet_state::running:
      return "running";
    case tasklet_state::parked:
      return "parked";
    case tasklet_state::done:
      return "done";
  }
  return "?";
}

std::string tasklet_info::describe() const {
  std::ostringstream os;
  os << '#' << id;
  if (!name.empty()) os << " '" << name << '\'';
  os << " (spawned at " << (spawn_site.file_name() ? spawn_site.file_name() : "?") << ':'
     << spawn_site.line();
  if (spawn_site.function_name() && *spawn_site.function_name())
    os << " in " << spawn_site.function_name();
  os << ')';
  return os.str();
}

// ", parked at file:line in function", when the primitive passed a site.
static void put_parked_at(std::ostream& os, const taiga::source_location& at) {
  if (at.line() == 0) return;
  os << ", parked at " << (at.file_name() ? at.file_name() : "?") << ':' << at.line();
  if (at.function_name() && *at.function_name()) os << " in " << at.function_name();
}

std::string deadlock_report::text() const {
  std::ostringstream os;
  os << "taiga: deadlock: all " << parked.size()
     << " live tasklets are parked and nothing (timer, blocking call, keep-alive guard, other "
        "thread) can wake them:\n";
  for (const auto& p : parked) {
    os << "  " << p.describe() << " parked on " << (p.parked_on.empty() ? "?" : p.parked_on);
    if (p.parked_object) os << " (" << p.parked_object << ')';
    if (p.parked_fd >= 0) os << " (fd " << p.parked_fd << ')';
    put_parked_at(os, p.parked_at);
    os << '\n';
  }
  return os.str();
}

}  // namespace taiga

namespace taiga::detail {

using internal::this_worker;
using internal::worker;

namespace {

std::atomic<std::uint64_t> g_next_id{1};

// Ids are unique, not ordered across threads: each thread takes them from
// the global counter in blocks, so spawning does not bounce one cache line
// between all cores.
std::uint64_t next_id() noexcept {
  thread_local std::uint64_t next = 0, end = 0;
  if (next == end) {
    next = g_next_id.fetch_add(1024, std::memory_order_relaxed);
    end = next + 1024;
  }
  return next++;
}
thread_local runtime_impl* tls_entered_runtime = nullptr;  // plain thread inside runtime::run

// Runs inside the SIGSEGV handler: no allocation, no stdio, no locks; a
// tiny formatter over the caller's buffer.
struct sig_buf {
  char* p;
  std::size_t left;
  std::size_t used = 0;
  void put(const char* s) {
    for (; s && *s && left > 1; ++s, --left, ++used) *p++ = *s;
  }
  void put(unsigned long long v) {
    char d[24];
    int n = 0;
    do {
      d[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && left > 1) {
      *p++ = d[--n];
      --left;
      ++used;
    }
  }
};

void put_tasklet(sig_buf& b, const tasklet_core* t) {
  b.put("tasklet #");
  b.put(static_cast<unsigned long long>(t->id));
  b.put(" '");
  // Racy but harmless: a name being set by another thread right now may
  // print half-formed; the process is about to die either way.
  tasklet_extra* e = t->extra.load(std::memory_order_acquire);
  b.put(e ? e->name.c_str() : "");
  b.put("' (spawned at ");
  taiga::source_location site = to_location(t->site);  // a memcpy: async-signal-safe
  b.put(site.file_name() ? site.file_name() : "?");
  b.put(":");
  b.put(static_cast<unsigned long long>(site.line()));
  b.put(")");
}

std::size_t describe_for_overflow(const void* owner, std::uint8_t kind, char* buf,
                                  std::size_t len) {
  sig_buf b{buf, len};
  if (kind != 1) {
    // A fiber runs on its own stack, inside a tasklet or a plain thread.
    b.put("a fiber");
    if (const tasklet_core* t = current_tasklet()) {
      b.put(" inside ");
      put_tasklet(b, t);
    }
    return b.used;
  }
  auto* t = static_cast<const tasklet_core*>(owner);
  if (t == nullptr) {
    // The guard page was hit: the running context is a tasklet's root
    // stack, so it is this worker's current tasklet, unless the fault came
    // in the few instructions of a switch.
    t = current_tasklet();
    tasklet_frame* f = t ? t->frame.load(std::memory_order_relaxed) : nullptr;
    if (f == nullptr || &f->ctx != internal::running_context()) {
      b.put("a tasklet");
      return b.used;
    }
  }
  put_tasklet(b, t);
  return b.used;
}

struct overflow_hook {
  overflow_hook() { internal::set_overflow_describer(&describe_for_overflow); }
} g_overflow_hook;

}  // namespace

std::size_t requested_stack(const tasklet_core* t) noexcept {
  tasklet_extra* e = extra_if_any(t);
  return e ? e->stack_request : 0;
}

// Sites come from code, so the table holds one entry per spawning line
// that passed a taiga::source_location (or, without std::source_location,
// per spawning line): it stays small, and it never shrinks, because a
// tasklet may outlive anything that could say a site is no longer used.
// A thread remembers the last few sites it interned, so a loop that spawns
// from one line takes the table's lock once.
const site_record* intern_site(const taiga::source_location& s) {
  struct key_hash {
    std::size_t operator()(const site_record& r) const noexcept {
      std::size_t h = std::hash<const void*>()(r.file);
      h = h * 31 + std::hash<const void*>()(r.function);
      return h * 31 + (static_cast<std::size_t>(r.line) << 16 ^ r.column);
    }
  };
  struct key_eq {
    bool operator()(const site_record& a, const site_record& b) const noexcept {
      return a.file == b.file && a.function == b.function && a.line == b.line &&
             a.column == b.column;
    }
  };
  site_record key{s.file_name(), s.function_name(), s.line(), s.column()};
  constexpr std::size_t ways = 8;
  thread_local const site_record* recent[ways] = {};
  std::size_t slot = key_hash()(key) % ways;
  if (const site_record* r = recent[slot]; r != nullptr && key_eq()(*r, key)) return r;
  static std::mutex mu;
  // Never destroyed: tasklets that die during static destruction still
  // point into it (node-based, so entries never move).
  static auto* table = new std::unordered_set<site_record, key_hash, key_eq>;
  std::lock_guard lk(mu);
  const site_record* r = &*table->insert(key).first;
  recent[slot] = r;
  return r;
}

namespace {

// The tasklet itself, before it publishes `done`. With no side record yet
// and no memory for one (a tasklet that failed with bad_alloc is likely to
// meet exactly that), the exception is not lost silently: the tasklet ends
// as having thrown std::bad_alloc.
void record_error(tasklet_core* t, std::exception_ptr e) noexcept {
  try {
    extra_of(t).error = std::move(e);
  } catch (...) {
    t->flags.fetch_or(tasklet_core::flag_lost_error, std::memory_order_relaxed);
  }
}

std::exception_ptr error_of(const tasklet_core* t) noexcept {
  if (tasklet_extra* e = extra_if_any(t); e && e->error) return e->error;
  if (t->flags.load(std::memory_order_acquire) & tasklet_core::flag_lost_error)
    return std::make_exception_ptr(std::bad_alloc());  // the emergency pool has room for it
  return nullptr;
}

}  // namespace

void* allocate_block(std::size_t size) {
  return internal::slab_allocate(size);
}
void free_block(void* p, std::size_t size) noexcept {
  internal::slab_free(p, size);
}

void destroy_tasklet(tasklet_core* t) noexcept {
  delete t->extra.load(std::memory_order_acquire);
  t->vt->destroy(t);
}

tasklet_core* current_tasklet() noexcept {
  worker* w = this_worker();
  return w ? w->current : nullptr;
}

static runtime_impl* current_impl() noexcept {
  if (worker* w = this_worker()) return w->rt;
  return tls_entered_runtime;
}

// A tasklet joins runtime `r`: every spawn path (submit, call_soon) starts here.
static void admit(tasklet_core* t, runtime_impl* r) noexcept {
  t->rt = r;
  t->id = next_id();
  t->wait_word.store(internal::ww_idle, std::memory_order_relaxed);
}

static void submit_slow(tasklet_core* t, runtime* rt, const spawn_options* o, worker* w);

void submit(tasklet_core* t, runtime* rt, const spawn_options* o) {
  worker* w = this_worker();  // once: it is an opaque call (migration)
  // The usual spawn: a tasklet's, into its own runtime, without options.
  // Everything else (and the errors) is out of line, so this path saves
  // few registers.
  if (rt == nullptr && o == nullptr && w != nullptr &&
      !(t->flags.load(std::memory_order_relaxed) & tasklet_core::flag_pinned)) [[likely]] {
    runtime_impl* r = w->rt;
    if (!r->stopping.load(std::memory_order_acquire)) [[likely]] {
      admit(t, r);
      r->register_tasklet(t, w->index + 1);
      internal::bump(w->stats.spawns);
      // Run next (LIFO): spawn trees grow depth first (machine.md: keeps far
      // fewer stacks alive than breadth first).
      internal::place_local(w, t, internal::placement::spawn);
      // Last, so that nothing is live across the call: `t` is queued, but
      // the caller's handle keeps it alive, and its run event, should a
      // thief run it first, is ordered after this by seq (0).
      if (trace_on()) [[unlikely]]
        internal::trace::spawn(t);
      return;
    }
  }
  submit_slow(t, rt, o, w);
}

[[gnu::noinline]] static void submit_slow(tasklet_core* t, runtime* rt, const spawn_options* o,
                                          worker* w) {
  runtime_impl* r = rt ? rt->impl() : w ? w->rt : tls_entered_runtime;
  if (r == nullptr || r->stopping.load(std::memory_order_acquire)) {
    // Never started: destroy the callable and leave a killed, finished tasklet
    // so the caller's handle is well-formed; then report the misuse.
    t->vt->run(t, true);
    internal::transition_to_done(t);
    t->flags.fetch_or(tasklet_core::flag_killed, std::memory_order_relaxed);
    t->refs.fetch_sub(1, std::memory_order_relaxed);
    release(t);
    throw usage_error(r ? "taiga: spawn on a runtime that is shutting down"
                        : "taiga: spawn outside a runtime (call it from a tasklet, or use "
                          "taiga::spawn(rt, fn) / rt.spawn(fn))");
  }
  admit(t, r);
  int place = -1;
  if (o != nullptr) {
    if (!o->name.empty()) extra_of(t).name = o->name;
    if (o->stack_size != 0) extra_of(t).stack_request = static_cast<std::uint32_t>(o->stack_size);
    if (o->worker >= 0) {
      if (static_cast<unsigned>(o->worker) >= r->nworkers)
        throw usage_error("taiga: spawn_options::worker out of range");
      place = o->worker;
    }
    if (o->pinned) t->flags.fetch_or(tasklet_core::flag_pinned, std::memory_order_relaxed);
  }
  bool local = w != nullptr && w->rt == r;
  if ((t->flags.load(std::memory_order_relaxed) & tasklet_core::flag_pinned) && place < 0)
    place = local ? static_cast<int>(w->index) : 0;
  r->register_tasklet(t, local ? w->index + 1 : 0);
  if (local) internal::bump(w->stats.spawns);
  if (trace_on()) [[unlikely]]
    internal::trace::spawn(t);
  if (place >= 0) {
    // A pinned tasklet keeps its home; spawn_on's only fixes its first run
    // (the private queue is never stolen from).
    if (t->flags.load(std::memory_order_relaxed) & tasklet_core::flag_pinned)
      t->home = static_cast<std::int16_t>(place);
    internal::place_at(t, static_cast<unsigned>(place));
    return;
  }
  internal::place_ready(t, internal::placement::spawn);  // run next, as in submit()
}

// ---- running and finishing ------------------------------------------------

// "std::runtime_error: oops", with the type's name demangled.
static std::string describe_exception(const std::exception_ptr& e) {
  auto demangled = [](const char* mangled) {
    int status = 0;
    char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string out = status == 0 && d ? d : mangled;
    std::free(d);
    return out;
  };
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return demangled(typeid(x).name()) + ": " + x.what();
  } catch (...) {
    const std::type_info* ti = abi::__cxa_current_exception_type();
    return ti ? demangled(ti->name()) + " (not a std::exception)" : "unknown exception";
  }
}

// An error that no join() will ever see: the tasklet was detached, or its
// handle was dropped without a join.
static void report_uncaught(tasklet_core* t, bool handle_dropped) {
  // A handle can outlive its runtime: then its handler is gone too, and the
  // default one speaks. Under the lock the runtime cannot go.
  tasklet_info info;
  std::function<void(const tasklet_info&, std::exception_ptr)> handler;
  {
    std::lock_guard lk(runtime_impl::live_mutex());
    if (runtime_impl::exists_locked(t->rt)) {
      info = t->rt->info_of(t);
      handler = t->rt->cfg.error_handler;
    } else {
      info.id = t->id;
      info.spawn_site = to_location(t->site);
      info.name = name_of(t);
      info.state = to_string(t->state.load(std::memory_order_acquire));
    }
  }
  std::exception_ptr e = error_of(t);
  if (handler) {
    handler(info, e);
    return;
  }
  std::fprintf(stderr,
               handle_dropped
                   ? "taiga: tasklet %s ended with an uncaught exception, and its handle was "
                     "destroyed without join(): %s\n"
                   : "taiga: detached tasklet %s ended with an uncaught exception: %s\n",
               info.describe().c_str(), describe_exception(e).c_str());
  std::fflush(stderr);
  // Terminate with the exception active, as std::thread does with one that
  // escapes: a terminate handler (a crash reporter) sees what it was.
  try {
    std::rethrow_exception(e);
  } catch (...) {
    std::terminate();
  }
}

// Whether `t` ended with an error that nobody will join for and that is not
// the result of a kill (a kill that has not been delivered yet counts: a
// shutdown killing a joiner and its joinee in some order can leave the
// joiner failing with the joinee's tasklet_killed).
static bool unjoined_error(const tasklet_core* t) noexcept {
  return error_of(t) && !(t->flags.load(std::memory_order_acquire) &
                          (tasklet_core::flag_killed | tasklet_core::flag_kill));
}

// Runs the error handler for `t` on `self` (the tasklet running this, or
// null on a plain thread). The handler may park, and a park point raises
// what is pending for `self`: a kill, a throw_into, a deadlock report, the
// expiry of its timeout_scope. Those are not the handler's errors: a kill and
// a throw_into's exception (recognised as the one that was pending and is
// not now) are put back for the next park point; a deadlock report was made
// already; an expired scope raises again at the next park. Anything else the
// handler throws is a bug that nothing is left to catch.
static void report_guarded(tasklet_core* t, tasklet_core* self, bool handle_dropped) noexcept {
  const std::uint8_t before = self ? self->flags.load(std::memory_order_acquire) : 0;
  try {
    report_uncaught(t, handle_dropped);
  } catch (const tasklet_exit&) {
    if (self != nullptr) self->flags.fetch_or(tasklet_core::flag_kill, std::memory_order_seq_cst);
  } catch (const deadlock_error&) {
  } catch (const timeout_error&) {
  } catch (...) {
    if (self != nullptr && (before & tasklet_core::flag_throw) &&
        !(self->flags.load(std::memory_order_acquire) & tasklet_core::flag_throw)) {
      std::lock_guard lk(self->lock);
      tasklet_extra* x = extra_if_any(self);
      if (x != nullptr && !x->pending) {
        x->pending = std::current_exception();
        self->flags.fetch_or(tasklet_core::flag_throw, std::memory_order_seq_cst);
      }
      return;
    }
    std::fputs("taiga: fatal: the runtime's error handler threw\n", stderr);
    std::terminate();
  }
}

// A destructor may make new locals (it runs on the tasklet): they are
// destroyed too, in up to local_rounds rounds, as POSIX does for thread keys
// (PTHREAD_DESTRUCTOR_ITERATIONS is 4). Destructors that keep making locals
// past that would otherwise hang the tasklet in finish(); what they made is
// leaked, with a line that says so.
constexpr int local_rounds = 4;

static void delete_locals(tasklet_extra* x) noexcept {
  for (int round = 0; round < local_rounds; ++round) {
    tasklet_locals* l = std::exchange(x->locals, nullptr);
    if (l == nullptr) return;
    delete l;
  }
  tasklet_locals* rest = std::exchange(x->locals, nullptr);
  if (rest == nullptr) return;
#if defined(TAIGA_SANITIZE_ADDRESS)
  __lsan_ignore_object(rest);  // leaked on purpose; what it holds is reached through it
#endif
  std::fprintf(stderr,
               "taiga: tasklet_local destructors still made new locals after %d rounds; "
               "the rest are leaked\n",
               local_rounds);
}

// Destroys what a finished tasklet still holds of its user's (its result,
// the exception it ended with, an undelivered throw_into, and, on its own
// stack, locals that code after the body made) where that became something
// nobody can take: on the tasklet itself in finish() (`on_t`), in the caller
// of detach() or of a handle's destructor. Any of those destructors may
// park (a `tasklet` handle inside one kills and joins what it names), so
// none may wait for the last release, which may be the runtime's, on a
// worker between tasklets (tasklet_vtable::destroy).
static void drop_user_state(tasklet_core* t, bool on_t) noexcept {
  t->vt->drop_result(t);
  tasklet_extra* x = extra_if_any(t);
  if (x == nullptr) return;
  {
    std::exception_ptr error, pending;
    {
      std::lock_guard lk(t->lock);
      error = std::exchange(x->error, nullptr);
      pending = std::exchange(x->pending, nullptr);
    }
  }  // they die here
  // Only the tasklet's own code reaches its locals: the error handler and
  // the destructors above, when they ran on it, may have made new ones.
  if (on_t) delete_locals(x);
}

static void finish(tasklet_core* t) {
  // Destroyed on the tasklet's own stack, while it can still park.
  if (tasklet_extra* extra = extra_if_any(t)) delete_locals(extra);
  bool detached;
  {
    std::lock_guard lk(t->lock);
    internal::transition_to_done(t);
    detached = t->flags.load(std::memory_order_acquire) & tasklet_core::flag_detached;
    if (auto* j = static_cast<wait_point*>(t->joiner)) {
      t->joiner = nullptr;
      wake(*j);
    }
  }
  if (detached) {
    // Not a deadlock victim (killed, with the error kept for join()): its
    // report was already printed, even if the handle was dropped just now.
    // The handler runs here, on the dying tasklet, and may park. A kill or a
    // deadlock report that reaches it there (a shutdown, say) cuts it short:
    // the tasklet was ending anyway.
    if (unjoined_error(t)) report_guarded(t, t, false);
    // Nobody can take the result or the error: they die here too, where
    // their destructors may park (drop_user_state). The lock above decided
    // that this side, not detach(), drops them.
    drop_user_state(t, true);
    // A handler or destructor that parked left the state at `running`.
    internal::transition_to_done(t);
  }
  t->rt->unregister_tasklet(t);
}

}  // namespace taiga::detail

namespace taiga::internal {

// The body of `t`, on its root stack, and how it ended, recorded.
static void run_tasklet(tasklet_core* t) {
  bool skip = false;
  // A kill or throw_into that lands after this check is one that came after
  // the start: the body runs and meets it at its first park point. So the
  // lock is only needed when one has already landed.
  std::uint8_t f = t->flags.load(std::memory_order_acquire);
  if (f & (tasklet_core::flag_kill | tasklet_core::flag_throw)) {
    std::lock_guard lk(t->lock);
    if (f & tasklet_core::flag_kill) {
      skip = true;
      t->flags.fetch_or(tasklet_core::flag_killed, std::memory_order_relaxed);
    } else if (detail::tasklet_extra* e = detail::extra_if_any(t); e && e->pending) {
      skip = true;
      e->error = std::exchange(e->pending, nullptr);
      t->flags.fetch_and(static_cast<std::uint8_t>(~tasklet_core::flag_throw),
                         std::memory_order_relaxed);
    }
  }
  try {
    t->vt->run(t, skip);
  } catch (const tasklet_exit&) {
    t->flags.fetch_or(tasklet_core::flag_killed, std::memory_order_relaxed);
  } catch (const deadlock_error&) {
    // Kept for join(), but already reported by the deadlock handler: not
    // "uncaught" news (finish and detach skip killed tasklets).
    t->flags.fetch_or(tasklet_core::flag_killed, std::memory_order_relaxed);
    detail::record_error(t, std::current_exception());
  } catch (...) {
    detail::record_error(t, std::current_exception());
  }
  // Here, on the tasklet's own stack and thread, before finish() wakes its
  // joiner: the exit comes before whatever the joiner does next. How it
  // ended is read back from the flags and the error (trace::exit): no
  // bookkeeping on the way for a trace that is off.
  if (detail::trace_on()) [[unlikely]]
    trace::exit(t);
}

// Runs tasklets on one root context until one leaves it by switching away:
// first the one the context was made for, then any fresh tasklet that
// adopted the stack as the one before it ended (worker::exit_current).
void detail_tasklet_entry(void* payload) {
  auto* p = static_cast<switch_payload*>(payload);
  worker* w = p->w;
  // Read before after_switch, which runs no user code now but did once (a
  // parking destructor in the last release resumed on another worker, and
  // `w->current` was then some other tasklet, or none).
  tasklet_core* t = w->current;
  w->after_switch(p);
  for (;;) {
    run_tasklet(t);
    detail::finish(t);
    t = this_worker()->exit_current(t);  // may migrate: this_worker() again
  }
}

}  // namespace taiga::internal

namespace taiga::detail {

// ---- join, kill, throw ---------------------------------------------------

// One park as `t`'s joiner, until finish() wakes it (signaled; also when
// `t` was done already) or something interrupts it. The caller decides what
// an interruption means (wait_done_slow raises it; a masked wait parks again).
static wake_status join_wait(tasklet_core* t, call_site site = call_site()) {
  wait_point w;
  prepare_wait(w, park_reason::join, t, site);
  {
    std::lock_guard lk(t->lock);
    if (t->state.load(std::memory_order_acquire) == tasklet_state::done) {
      cancel_wait(w);
      return wake_status::signaled;
    }
    t->joiner = &w;
  }
  wake_status s = wait(w);
  if (s != wake_status::signaled) {
    std::lock_guard lk(t->lock);
    if (t->joiner == &w) t->joiner = nullptr;
  }
  return s;
}

void wait_done_slow(tasklet_core* t, call_site site) {
  if (t->state.load(std::memory_order_acquire) == tasklet_state::done) return;
  tasklet_core* self = current_tasklet();
  if (self == t) throw usage_error("taiga: a tasklet cannot join itself");
  if (self == nullptr) {
    // A plain thread joining. With zero workers nobody else runs the
    // runtime: drive it here.
    runtime_impl* r = t->rt;
    if (r->embedded && this_worker() == nullptr) {
      r->drive(t);
      return;
    }
  }
  if (join_wait(t, site) == wake_status::interrupted) throw_interrupt();
}

void rethrow_failure(tasklet_core* t) {
  // The joiner takes the exception: it dies in the joiner's hands, not in
  // the last release (drop_user_state).
  if (tasklet_extra* x = extra_if_any(t); x != nullptr && x->error) {
    std::exception_ptr e;
    {
      std::lock_guard lk(t->lock);
      e = std::exchange(x->error, nullptr);
    }
    std::rethrow_exception(std::move(e));
  }
  if (std::exception_ptr e = error_of(t)) std::rethrow_exception(e);
  if (t->flags.load(std::memory_order_acquire) & tasklet_core::flag_killed) throw tasklet_killed();
}

void kill(tasklet_core* t) {
  if (t->state.load(std::memory_order_acquire) == tasklet_state::done) return;
  if (t == current_tasklet()) throw tasklet_exit{};
  t->flags.fetch_or(tasklet_core::flag_kill, std::memory_order_seq_cst);
  internal::interrupt_park(t, wake_status::interrupted);
}

bool throw_into(tasklet_core* t, std::exception_ptr e) {
  if (t == current_tasklet()) std::rethrow_exception(e);
  if (t->state.load(std::memory_order_acquire) == tasklet_state::done) return false;
  tasklet_extra& x = extra_of(t);  // outside the spinlock: malloc may take a while
  {
    std::lock_guard lk(t->lock);
    if (t->state.load(std::memory_order_acquire) == tasklet_state::done || x.pending) return false;
    x.pending = std::move(e);
    t->flags.fetch_or(tasklet_core::flag_throw, std::memory_order_seq_cst);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  internal::interrupt_park(t, wake_status::interrupted);
  return true;
}

void detach(tasklet_core* t) {
  bool done = false;
  {
    std::lock_guard lk(t->lock);
    t->flags.fetch_or(tasklet_core::flag_detached, std::memory_order_acq_rel);
    done = t->state.load(std::memory_order_acquire) == tasklet_state::done;
  }
  // Done before the flag was set: finish() left the report and the result
  // to whoever detaches, here (see finish).
  if (done) {
    if (unjoined_error(t)) report_guarded(t, current_tasklet(), false);
    drop_user_state(t, false);
  }
  release(t);
}

// A handle destructor's join, by `self` (a tasklet) for `t`. A destructor
// cannot throw, and must not return before `t` is done: what it joins may
// use what the caller is about to destroy. So the wait is masked: a kill or
// throw_into that reaches `self` meanwhile wakes it but is not consumed
// (prepare_wait skips it while flag_masked is set), and stays pending for
// the first park point after the wait; a second throw_into is refused as
// usual. Only what nothing else could end, a shutdown's kill loop or a
// deadlock report (two handles that own each other), abandons the wait:
// false, and the caller detaches `t`.
static bool wait_done_masked(tasklet_core* t, tasklet_core* self) {
  runtime_impl* r = self->rt;
  const std::uint64_t reports = r->deadlock_reports.load(std::memory_order_acquire);
  const bool was_masked = set_interruption_mask(true);  // may nest in an interruption_mask
  bool done = true;
  while (t->state.load(std::memory_order_acquire) != tasklet_state::done) {
    // Masked, with the scope suspended: prepare_wait raises nothing.
    if (join_wait(t) == wake_status::signaled) continue;
    if (r->killing_all.load(std::memory_order_acquire) ||
        r->deadlock_reports.load(std::memory_order_acquire) != reports) {
      done = false;
      break;
    }
  }
  set_interruption_mask(was_masked);
  return done;
}

static void request_stop_if_any(tasklet_core* t) noexcept;

void drop_handle(tasklet_core* t) noexcept {
  tasklet_core* self = current_tasklet();
  if (t == self) {  // it cannot wait for itself: it runs on, detached
    detach(t);
    return;
  }
  if (t->state.load(std::memory_order_acquire) != tasklet_state::done) {
    request_stop_if_any(t);
    kill(t);  // not self: cannot throw
    // The caller's timeout_scope is off meanwhile: its expiry would only
    // wake the wait over and over. (A plain thread's wait has nothing else
    // that could interrupt it.)
    std::int64_t saved = suspend_timeout_scope();
    bool done = true;
    if (self != nullptr) {
      done = wait_done_masked(t, self);
    } else {
      wait_done(t);
    }
    restore_timeout_scope(saved);
    if (!done) {  // abandoned: an error it ends with goes where a detached one's does
      detach(t);
      return;
    }
  }
  if (unjoined_error(t)) report_guarded(t, self, true);
  drop_user_state(t, false);  // here, where it may park, not at the last release
  release(t);
}

std::string name_of(const tasklet_core* t) {
  std::lock_guard lk(const_cast<tasklet_core*>(t)->lock);
  tasklet_extra* e = extra_if_any(t);
  return e ? e->name : std::string();
}

void set_name(tasklet_core* t, std::string name) {
  tasklet_extra& x = extra_of(t);  // outside the spinlock: malloc may take a while
  std::lock_guard lk(t->lock);
  x.name = std::move(name);
}

// ---- stop requests ---------------------------------------------------------

std::stop_source stop_source_of(tasklet_core* t) {
  tasklet_extra& x = extra_of(t);  // outside the spinlock: malloc may take a while
  {
    std::lock_guard lk(t->lock);
    if (x.stop.stop_possible()) return x.stop;
  }
  std::stop_source fresh;  // allocates the stop state: outside the lock too
  std::lock_guard lk(t->lock);
  if (!x.stop.stop_possible()) x.stop = fresh;
  return x.stop;  // the loser's `fresh` dies after the unlock
}

bool request_stop(tasklet_core* t) {
  return stop_source_of(t).request_stop();  // callbacks run here, on the caller, unlocked
}

std::stop_token current_stop_token() {
  tasklet_core* t = current_tasklet();
  if (t == nullptr)
    throw usage_error("taiga::this_tasklet::get_stop_token called outside a tasklet");
  return stop_source_of(t).get_token();
}

// A handle's destructor requests a stop before its kill, as std::jthread's
// does before its join: stop callbacks run, and the tasklet's destructors
// see stop_requested(). Only where a stop state exists: none is made here.
static void request_stop_if_any(tasklet_core* t) noexcept {
  tasklet_extra* x = extra_if_any(t);
  if (x == nullptr) return;
  std::stop_source src(std::nostopstate);
  {
    std::lock_guard lk(t->lock);
    src = x->stop;
  }
  src.request_stop();
}

// ---- tasklet_local -------------------------------------------------------

std::size_t new_tasklet_local_key() {
  static std::atomic<std::size_t> next{1};
  return next.fetch_add(1);
}

void*& tasklet_local_slot(std::size_t key, void (*destroy)(void*)) {
  tasklet_core* t = current_tasklet();
  if (t == nullptr) throw usage_error("taiga: tasklet_local used outside a tasklet");
  tasklet_extra& x = extra_of(t);
  if (x.locals == nullptr) x.locals = new tasklet_locals;
  auto& e = x.locals->slots[key];
  e.second = destroy;
  return e.first;
}

// ---- blocking ------------------------------------------------------------

void submit_blocking(std::function<void()> job) {
  runtime_impl* r = current_impl();
  if (r == nullptr) {
    job();
    return;
  }
  tasklet_core* self = current_tasklet();
  r->blocking->submit(std::move(job), self ? self->id : 0);
}

// ---- call_soon / call_later ------------------------------------------------

struct scheduled_call {
  internal::timer_node node;
  tasklet_core* t = nullptr;
  std::atomic<int> state{0};             // 0 armed, 1 fired, 2 cancelled
  std::shared_ptr<scheduled_call> self;  // keeps the node alive while armed
};

static void fire_call(internal::timer_node* n) {
  auto* c = static_cast<scheduled_call*>(n->arg);
  int expect = 0;
  if (c->state.compare_exchange_strong(expect, 1)) {
    if (trace_on()) [[unlikely]]
      internal::trace::timer_fire(c->t->rt, c->t->id);
    internal::make_ready(c->t, false);
  }
  std::shared_ptr<scheduled_call> keep = std::move(c->self);  // may free c when keep dies
}

timer_handle schedule_call(std::function<void()> fn, std::chrono::steady_clock::time_point when,
                           call_site site, runtime* rt) {
  runtime_impl* r = rt ? rt->impl() : current_impl();
  if (r == nullptr) throw usage_error("taiga: call_soon/call_later outside a runtime");
  auto c = std::make_shared<scheduled_call>();
  tasklet_core* t = make_tasklet(site, std::move(fn));
  admit(t, r);
  t->flags.fetch_or(tasklet_core::flag_detached, std::memory_order_relaxed);
  worker* w = this_worker();
  bool local = w != nullptr && w->rt == r;
  r->register_tasklet(t, local ? w->index + 1 : 0);
  if (trace_on()) [[unlikely]]
    internal::trace::spawn(t);
  c->t = t;
  if (when == std::chrono::steady_clock::time_point::min()) {
    c->state.store(1);
    internal::place_ready(t, internal::placement::wake);  // behind what is queued
    return timer_handle(c);
  }
  c->node.deadline =
      std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  c->node.fire = &fire_call;
  c->node.arg = c.get();
  c->self = c;
  worker* home = local ? w : r->workers[0].get();
  home->timers.add(&c->node);
  if (!local) {
    if (r->embedded) {
      home->unpark();
    } else {
      r->unpark_worker(home);
    }
  }
  return timer_handle(c);
}

}  // namespace taiga::detail

namespace taiga {

using internal::this_worker;
using internal::worker;

bool timer_handle::cancel() {
  if (!s_) return false;
  int expect = 0;
  if (!s_->state.compare_exchange_strong(expect, 2)) return false;
  internal::timer_heap::cancel(&s_->node);
  {
    // The node may still hold our self reference; drop it under no lock:
    // after the CAS, fire_call cannot run for this call any more.
    std::shared_ptr<detail::scheduled_call> keep = std::move(s_->self);
  }
  // Its body must never run: kill it before it starts, then let it be
  // scheduled so the runtime can retire it.
  s_->t->flags.fetch_or(detail::tasklet_core::flag_kill, std::memory_order_seq_cst);
  internal::make_ready(s_->t, false);
  return true;
}

bool timer_handle::fired() const {
  return s_ && s_->state.load() != 0;
}

// ---- this_tasklet ----------------------------------------------------------

namespace this_tasklet {

static detail::tasklet_core* require_tasklet(const char* what) {
  detail::tasklet_core* t = detail::current_tasklet();
  if (t == nullptr)
    throw usage_error(std::string("taiga::this_tasklet::") + what + " called outside a tasklet");
  return t;
}

void yield() {
  internal::worker* w = this_worker();
  detail::tasklet_core* t = w ? w->current : nullptr;
  if (t == nullptr) throw usage_error("taiga::this_tasklet::yield called outside a tasklet");
  constexpr std::uint8_t interrupts =
      detail::tasklet_core::flag_kill | detail::tasklet_core::flag_throw;
  if (t->flags.load(std::memory_order_acquire) & interrupts) detail::throw_interrupt();
  if (detail::trace_on()) [[unlikely]]
    internal::trace::yield(w, t);
  w->switch_out(t, internal::after::requeue);
  if (t->flags.load(std::memory_order_acquire) & interrupts) detail::throw_interrupt();
}

void sleep_until(std::chrono::steady_clock::time_point tp, detail::call_site site) {
  require_tasklet("sleep_until");
  detail::wait_point w;
  detail::prepare_wait(w, park_reason::sleep, nullptr, site);
  detail::wake_status s = detail::wait(w, &tp);
  if (s == detail::wake_status::interrupted) detail::throw_interrupt();
}

std::stop_token get_stop_token() {
  return detail::current_stop_token();
}
bool stop_requested() noexcept {
  detail::tasklet_core* t = detail::current_tasklet();
  if (t == nullptr) return false;
  detail::tasklet_extra* x = t->extra.load(std::memory_order_acquire);
  if (x == nullptr) return false;
  std::lock_guard lk(t->lock);
  return x->stop.stop_requested();
}

tasklet_id get_id() noexcept {
  detail::tasklet_core* t = detail::current_tasklet();
  return t ? t->id : 0;
}
std::string name() {
  return detail::name_of(require_tasklet("name"));
}
void set_name(std::string n) {
  detail::set_name(require_tasklet("set_name"), std::move(n));
}
taiga::source_location spawn_site() {
  return detail::to_location(require_tasklet("spawn_site")->site);
}
int worker() noexcept {
  internal::worker* w = this_worker();
  return w ? static_cast<int>(w->index) : -1;
}
bool in_tasklet() noexcept {
  return detail::current_tasklet() != nullptr;
}

}  // namespace this_tasklet

// ---- runtime -----------------------------------------------------------------

runtime::runtime(runtime_config config)
    : impl_(std::make_unique<detail::runtime_impl>(this, std::move(config))) {
  impl_->start();
}

runtime::~runtime() {
  try {
    impl_->shutdown(shutdown_mode::kill);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "taiga: runtime destroyed badly: %s\n", e.what());
    std::terminate();
  }
}

void runtime::shutdown(shutdown_mode mode) {
  impl_->shutdown(mode);
}
bool runtime::stopped() const noexcept {
  return impl_->stopped.load();
}

void runtime::drive_until_done(detail::tasklet_core* c) {
  if (impl_->embedded) {
    impl_->drive(c);
    return;
  }
  if (detail::current_tasklet() != nullptr) {
    detail::wait_done(c);
    return;
  }
  detail::runtime_impl* prev = detail::tls_entered_runtime;
  detail::tls_entered_runtime = impl_.get();
  struct restore {
    detail::runtime_impl* p;
    ~restore() { detail::tls_entered_runtime = p; }
  } r{prev};
  detail::wait_done(c);
}

std::size_t runtime::run_once() {
  if (!impl_->embedded) throw usage_error("taiga: run_once needs a runtime with zero workers");
  if (this_worker() != nullptr) throw usage_error("taiga: run_once called from a worker");
  internal::worker* w = impl_->workers[0].get();
  internal::init_thread_context(w->main_ctx);
  internal::set_this_worker(w);
  struct restore {
    internal::worker* w;
    ~restore() {
      w->no_chain = false;
      internal::set_this_worker(nullptr);
    }
  } r{w};
  // Snapshot what is ready now (due timers included), in FIFO order; what
  // these tasklets make ready runs in the next call (libuv's UV_RUN_NOWAIT).
  w->run_timers();
  if (taiga::poller* p = w->io.load(std::memory_order_acquire)) p->poll();  // I/O completions
  std::vector<detail::tasklet_core*> batch;
  detail::tasklet_core* t = nullptr;
  while (w->remote.try_dequeue(t)) batch.push_back(t);
  if ((t = w->next_slot.exchange(nullptr))) batch.push_back(t);
  while ((t = w->rq.pop())) batch.push_back(t);
  while ((t = w->pop_private())) batch.push_back(t);
  while (impl_->inject.try_dequeue(*w->inject_ctok, t)) batch.push_back(t);
  w->no_chain = true;
  for (detail::tasklet_core* b : batch) w->run_in_main(b);
  return batch.size();
}

std::size_t runtime::run_until_idle() {
  std::size_t total = 0;
  for (;;) {
    std::size_t n = run_once();
    total += n;
    if (n == 0) return total;
  }
}

unsigned runtime::worker_count() const noexcept {
  return impl_->embedded ? 0 : impl_->nworkers;
}

worker_stats runtime::stats(unsigned i) const {
  if (i >= impl_->nworkers) throw usage_error("taiga: runtime::stats: no such worker");
  auto& c = impl_->workers[i]->stats;
  worker_stats s;
  s.tasklets_run = impl_->workers[i]->switches.load(std::memory_order_relaxed);
  s.steals = c.steals.load(std::memory_order_relaxed);
  s.stolen = c.stolen.load(std::memory_order_relaxed);
  s.parks = c.parks.load(std::memory_order_relaxed);
  s.spawns = c.spawns.load(std::memory_order_relaxed);
  s.sleeps = c.sleeps.load(std::memory_order_relaxed);
  s.idle_time = std::chrono::nanoseconds(c.idle_ns.load(std::memory_order_relaxed));
  return s;
}

runtime_report runtime::report() const {
  runtime_report r;
  r.live_tasklets = impl_->live_count();
  std::int64_t stacks = 0;
  for (auto& w : impl_->workers) stacks += w->stats.stacks.load(std::memory_order_relaxed);
  r.stacks_outstanding = static_cast<std::size_t>(stacks);
  r.timers_pending = impl_->timers_pending();
  r.blocking_in_flight = impl_->blocking->in_flight();
  r.io_waits = impl_->io_in_flight();
  r.workers_asleep = static_cast<std::size_t>(std::max(impl_->npidle.load(), 0));
  r.workers_spinning = static_cast<std::size_t>(std::max(impl_->nspinning.load(), 0));
  return r;
}

const runtime_config& runtime::config() const noexcept {
  return impl_->cfg;
}

void runtime::dump(std::ostream& os) const {
  auto all = impl_->snapshot_live();
  os << "runtime '" << impl_->cfg.name << "': " << all.size() << " live tasklets\n";
  for (detail::tasklet_core* t : all) {
    tasklet_info i = impl_->info_of(t);
    os << "  " << i.describe() << ' ' << i.state;
    if (!i.parked_on.empty()) os << " on " << i.parked_on;
    if (i.parked_object) os << " (" << i.parked_object << ')';
    if (i.parked_fd >= 0) os << " (fd " << i.parked_fd << ')';
    put_parked_at(os, i.parked_at);
    if (i.parked_for.count() >= 0) os << ", for " << i.parked_for.count() << " ms";
    if (i.worker >= 0) os << " worker " << i.worker;
    os << '\n';
    detail::release(t);
  }
}

// One line per (spawn site, state, what it waits on), largest groups first:
// readable with a million tasklets. Walks the registry one shard lock at a
// time and copies only pointers under it (the frame's fields are readable
// under the lock: info_of); the text is built outside.
void runtime::dump_summary(std::ostream& os) const {
  struct key {
    const detail::site_record* site;
    tasklet_state state;
    const char* what;  // the park's label, or null: `reason`'s name
    std::uint8_t reason;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<const void*>()(k.site) * 31 + std::hash<const void*>()(k.what) * 7 +
             static_cast<std::size_t>(k.state) * 257 + k.reason;
    }
  };
  struct group {
    std::size_t count = 0;
    std::uint32_t oldest_since = 0;  // park_since_ms of the longest wait, 0: unknown
  };
  std::unordered_map<key, group, key_hash> groups;
  std::size_t total = 0;
  detail::runtime_impl& r = *impl_;
  // Wait times only of parks that began while the running trace records
  // (runtime_impl::info_of).
  const std::uint32_t begun = internal::trace::recording_since_ms(&r);
  const std::uint32_t now = static_cast<std::uint32_t>(internal::now_ns() / 1'000'000);
  for (unsigned s = 0; s < r.nshards; ++s) {
    std::lock_guard lk(r.shards[s].lock);
    for (detail::tasklet_core* t = r.shards[s].head; t; t = t->reg_next) {
      key k{t->site, t->state.load(std::memory_order_acquire), nullptr, 0};
      std::uint32_t since = 0;
      if (k.state == tasklet_state::parked) {
        if (detail::tasklet_frame* f = t->frame.load(std::memory_order_acquire)) {
          k.what = f->park_what.load(std::memory_order_relaxed);
          k.reason = f->park_reason.load(std::memory_order_relaxed);
          since = f->park_since_ms.load(std::memory_order_relaxed);
        }
      }
      group& g = groups[k];
      ++g.count;
      ++total;
      if (begun != 0 && since != 0 && now - since <= now - begun) {
        if (g.oldest_since == 0 || now - since > now - g.oldest_since) g.oldest_since = since;
      }
    }
  }
  std::vector<std::pair<key, group>> sorted(groups.begin(), groups.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  os << "runtime '" << r.cfg.name << "': " << total << " live tasklets in " << sorted.size()
     << " groups (spawn site x state x reason)\n";
  for (const auto& [k, g] : sorted) {
    taiga::source_location l = detail::to_location(k.site);
    os << "  " << g.count << ' ' << to_string(k.state);
    if (k.state == tasklet_state::parked)
      os << " on " << detail::park_cause(static_cast<park_reason>(k.reason), k.what).text();
    if (g.oldest_since != 0) os << ", oldest for " << (now - g.oldest_since) << " ms";
    os << ", spawned at " << (l.file_name() ? l.file_name() : "?") << ':' << l.line();
    if (l.function_name() && *l.function_name()) os << " in " << l.function_name();
    os << '\n';
  }
}

runtime::keep_alive_guard::keep_alive_guard(runtime& rt) : rt_(&rt) {
  rt_->impl_->keepalive.fetch_add(1);
}
runtime::keep_alive_guard::~keep_alive_guard() {
  rt_->impl_->keepalive.fetch_sub(1);
}

stack_guard_mode runtime::stack_guard() {
  return internal::stack_pool::instance().mode();
}

runtime* runtime::current() noexcept {
  detail::runtime_impl* r = detail::current_impl();
  return r ? r->owner : nullptr;
}

}  // namespace taiga
