// taiga::task_pool: evergreen's TaskPoolExecutor. Calls submitted to the pool
// run as tasklets of one runtime, at most max_tasklets() at once; the rest
// wait in a FIFO. Results come back as taiga::future.
//
// Design note. The pool spawns its tasklets lazily, up to the cap, and each
// one ("runner") keeps taking queued calls until the queue is empty, then
// ends; so an idle pool holds no tasklet. The state is shared with the
// runners, so a pool may be destroyed while they finish their last step.
// Invariants (under pool_state::lock):
//  E1  running <= max: `running` counts runner slots (a runner_ticket each,
//      taken by submit before the tasklet exists); a submit starts a runner
//      only while running < max, else it queues the call.
//  E2  if running == 0 the queue is empty: a runner leaves only when it sees
//      the queue empty (in the same critical section), and the last ticket
//      destroyed by a kill (runtime shutdown, even before the runner ran)
//      drops the queued calls (their futures then hold taiga::broken_promise).
//  E3  `closed` only goes false -> true (shutdown); a closed pool accepts no
//      call, so once running == 0 it stays idle and shutdown waiters wake.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <taiga/channels/future.hpp>
#include <taiga/channels/queue.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/runtime.hpp>
#include <taiga/runtime/tasklet.hpp>
#include <taiga/runtime/this_tasklet.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace taiga {

namespace detail::pool_impl {

/// A queued call (move-only type erasure: calls own their promise).
struct job {
  virtual ~job() = default;
  virtual void run() = 0;
};
template <class Fn>
struct job_of final : job {
  explicit job_of(Fn f) : fn(std::move(f)) {}
  void run() override { fn(); }
  Fn fn;
};

struct pool_state {
  explicit pool_state(runtime* r, std::size_t m) : rt(r), max(m) {}
  runtime* const rt;
  const std::size_t max;
  spinlock lock;  // guards everything below; never held across a park
  std::deque<std::unique_ptr<job>> jobs;
  std::size_t running = 0;          // E1
  std::vector<tasklet_id> runners;  // ids of live runners (shutdown from inside)
  bool closed = false;              // E3
  queue_impl::wait_list idle;       // shutdown(true) waiters, woken at running == 0
};

/// One runner's slot in `running` (E1), from the submit that starts it until
/// it leaves. The runner's tasklet owns the ticket; whoever destroys an
/// active ticket gives the slot back: the runner when it finds the queue
/// empty, or the ticket's destructor when the runner is killed in a call or
/// before it ever ran (the runtime then destroys the tasklet's callable
/// unrun), or when spawning it failed.
class runner_ticket {
 public:
  runner_ticket(std::shared_ptr<pool_state> st, std::unique_ptr<job> first) noexcept
      : st_(std::move(st)), first_(std::move(first)) {}
  runner_ticket(runner_ticket&& o) noexcept
      : st_(std::move(o.st_)), first_(std::move(o.first_)), me_(o.me_), left_(o.left_) {}
  runner_ticket& operator=(runner_ticket&&) = delete;
  ~runner_ticket() {
    if (!st_ || left_) return;
    std::deque<std::unique_ptr<job>> orphans;
    {
      queue_impl::wake_batch wb;  // completes idle waiters after the unlock
      std::lock_guard lk(st_->lock);
      if (me_ != 0) st_->runners.erase(std::find(st_->runners.begin(), st_->runners.end(), me_));
      if (--st_->running == 0) {
        orphans.swap(st_->jobs);  // E2: nobody is left to run them
        st_->idle.claim_all(wb);
      }
    }
    // orphans (and first_) die outside the lock: their promises break.
  }

  /// The runner's body: runs the first call, then queued calls, until the
  /// queue is empty.
  void run() {
    pool_state& st = *st_;
    {
      std::lock_guard lk(st.lock);
      me_ = this_tasklet::get_id();
      st.runners.push_back(me_);
    }
    std::unique_ptr<job> j = std::move(first_);
    for (;;) {
      j->run();                   // a kill unwinds from here; ~runner_ticket balances the books
      j.reset();                  // the call's captures die before the next call starts
      queue_impl::wake_batch wb;  // completes idle waiters after the unlock
      std::lock_guard lk(st.lock);
      if (st.jobs.empty()) {
        // Leave in the same critical section that saw the queue empty: a
        // submit that queued after it would otherwise be stranded (E2).
        st.runners.erase(std::find(st.runners.begin(), st.runners.end(), me_));
        if (--st.running == 0) st.idle.claim_all(wb);
        left_ = true;
        return;
      }
      j = std::move(st.jobs.front());
      st.jobs.pop_front();
    }
  }

 private:
  std::shared_ptr<pool_state> st_;
  std::unique_ptr<job> first_;
  tasklet_id me_ = 0;  // set once the runner has registered itself
  bool left_ = false;  // the runner gave its slot back itself
};

}  // namespace detail::pool_impl

/// A pool of tasklets for calls (evergreen's TaskPoolExecutor, Python's
/// concurrent.futures.Executor): submit() runs a call as a tasklet of the
/// pool's runtime and returns a taiga::future of its result. At most
/// max_tasklets() calls run at once; later ones wait in FIFO order. Tasklets
/// are started on demand and end when the queue is empty.
///
/// A call that throws puts its exception in its future; a call killed by the
/// runtime's shutdown leaves taiga::broken_promise in its future (and in the
/// futures of the calls still queued). The destructor is shutdown(true).
/// @threadsafe submit, map and shutdown may be called from any tasklet or
///             thread.
class task_pool {
 public:
  /// A pool on the current runtime (the one whose tasklet or worker calls).
  /// @throws usage_error outside a runtime, or if max_tasklets == 0.
  explicit task_pool(std::size_t max_tasklets) : task_pool(current_runtime(), max_tasklets) {}
  /// A pool on `rt`, usable from plain threads too.
  /// @throws usage_error if max_tasklets == 0.
  task_pool(runtime& rt, std::size_t max_tasklets) {
    if (max_tasklets == 0) throw usage_error("taiga::task_pool needs max_tasklets > 0");
    state_ = std::make_shared<detail::pool_impl::pool_state>(&rt, max_tasklets);
  }
  task_pool(const task_pool&) = delete;
  task_pool& operator=(const task_pool&) = delete;

  /// shutdown(true). A kill or a usage error that cuts the wait short
  /// (destroying a pool from one of its own calls) leaves the remaining
  /// calls running on their own.
  /// @suspends yes (a plain thread blocks)
  ~task_pool() {
    try {
      shutdown(true);
    } catch (...) {
      // A destructor cannot propagate; the calls own the shared state.
    }
  }

  /// Runs `fn(args...)` as a tasklet of the pool (the arguments are decay-
  /// copied, like spawn's) and returns the future of its result.
  /// @throws usage_error after shutdown(). @suspends no
  /// @threadsafe
  template <class F, class... A>
  auto submit(F&& fn, A&&... args)
      -> future<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>> {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;
    promise<R> p;
    future<R> out = p.get_future();
    auto call = [p = std::move(p), f = std::forward<F>(fn),
                 ... a = std::forward<A>(args)]() mutable {
      try {
        if constexpr (std::is_void_v<R>) {
          std::invoke(std::move(f), std::move(a)...);
          p.set_value();
        } else {
          p.set_value(std::invoke(std::move(f), std::move(a)...));
        }
      } catch (const tasklet_exit&) {
        throw;  // a kill ends the runner; p breaks when the call dies
      } catch (...) {
        p.set_exception(std::current_exception());
      }
    };
    dispatch(std::make_unique<detail::pool_impl::job_of<decltype(call)>>(std::move(call)));
    return out;
  }

  /// Runs `fn(x)` for each x of `range` in the pool and returns the results in
  /// input order (eager, unlike evergreen's lazy iterator: every call is
  /// submitted before the first result is awaited). If calls throw, the
  /// exception of the first one (by position) propagates once that one is
  /// reached; the other calls still run. For a void `fn` it returns nothing.
  /// Do not call it from a call of the same pool with a small cap: the calls
  /// it waits for may need the slot it holds.
  /// @throws usage_error after shutdown(). @suspends yes (a plain thread blocks)
  /// @threadsafe
  template <class F, class Range>
  auto map(F&& fn, Range&& range) {
    using Arg = decltype(*std::begin(range));
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Arg>>;
    std::vector<future<R>> fs;
    for (auto&& x : range) fs.push_back(submit(fn, std::forward<decltype(x)>(x)));
    if constexpr (std::is_void_v<R>) {
      for (auto& f : fs) f.get();
    } else {
      std::vector<R> out;
      out.reserve(fs.size());
      for (auto& f : fs) out.push_back(f.get());
      return out;
    }
  }

  /// Refuses further calls. With `wait`, parks until every submitted call has
  /// finished; without, returns at once and the queued calls still run.
  /// Idempotent.
  /// @throws usage_error for shutdown(true) from one of the pool's own calls
  ///         (it would wait for itself).
  /// @suspends yes with `wait` (a plain thread blocks); a kill point.
  /// @threadsafe
  void shutdown(bool wait = true) {
    auto& st = *state_;
    {
      std::lock_guard lk(st.lock);
      st.closed = true;
      if (!wait || st.running == 0) return;
      const tasklet_id me = this_tasklet::get_id();
      if (me != 0 && std::find(st.runners.begin(), st.runners.end(), me) != st.runners.end())
        throw usage_error("taiga::task_pool::shutdown(true) from one of its own calls");
    }
    for (;;) {
      detail::wait_point w;
      detail::prepare_wait(w, "task_pool shutdown", &st);
      {
        std::lock_guard lk(st.lock);
        if (st.running == 0) {
          detail::cancel_wait(w);
          return;
        }
        st.idle.push_back(w);
      }
      detail::wake_status s = detail::wait(w);
      if (s == detail::wake_status::signaled) continue;  // re-check running
      {
        std::lock_guard lk(st.lock);
        st.idle.remove(w);
      }
      detail::throw_interrupt();
    }
  }

  /// The cap given at construction.
  [[nodiscard]] std::size_t max_tasklets() const noexcept { return state_->max; }
  /// Calls running now (tasklets alive; a snapshot). @threadsafe
  [[nodiscard]] std::size_t running() const {
    std::lock_guard lk(state_->lock);
    return state_->running;
  }
  /// Calls queued, not started (a snapshot). @threadsafe
  [[nodiscard]] std::size_t pending() const {
    std::lock_guard lk(state_->lock);
    return state_->jobs.size();
  }

 private:
  static runtime& current_runtime() {
    runtime* rt = runtime::current();
    if (rt == nullptr) throw usage_error("taiga::task_pool outside a runtime: pass the runtime");
    return *rt;
  }

  void dispatch(std::unique_ptr<detail::pool_impl::job> j) {
    auto& st = *state_;
    {
      std::lock_guard lk(st.lock);
      if (st.closed) throw usage_error("taiga::task_pool::submit after shutdown");
      if (st.running >= st.max) {
        st.jobs.push_back(std::move(j));
        return;
      }
      ++st.running;  // E1: the slot is ours before the runner exists
    }
    // From here the ticket owns the slot, wherever spawn fails.
    detail::pool_impl::runner_ticket ticket(state_, std::move(j));
    spawn_options o;
    o.name = "task_pool";
    taiga::spawn(*st.rt, o, [t = std::move(ticket)]() mutable { t.run(); }).detach();
  }

  std::shared_ptr<detail::pool_impl::pool_state> state_;
};

}  // namespace taiga
