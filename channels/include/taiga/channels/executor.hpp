// taiga::task_pool: evergreen's TaskPoolExecutor. Calls submitted to the pool
// run as tasklets of one runtime, at most max_tasklets() at once; the rest
// wait in a FIFO. Results come back as taiga::future; map() streams results
// lazily, with a bounded number of calls in flight.
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
//  E4  a queued call whose future was cancelled is dropped when a runner
//      takes it (its function never runs); a running call is not
//      interrupted, and its result is discarded.
// map_range (below) keeps a FIFO of futures, one per input item submitted
// and not yet consumed, at most `window` long: consuming the front result
// submits the next item. An exception consumed, or the range's destruction,
// cancels every future still in the FIFO (E4) and submits nothing more.
// Interruption points (sync.hpp's list): iterating a map_range waits on a
// future (an interruption point, also when the result is ready); submit is
// not one (it never parks), nor is shutdown except where it parks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <taiga/channels/detail/op_site.hpp>
#include <taiga/channels/future.hpp>
#include <taiga/channels/queue.hpp>
#include <taiga/runtime/detail/park.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/park.hpp>
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
  wait_list idle;                   // shutdown(true) waiters, woken at running == 0
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
      wake_batch wb;  // completes idle waiters after the unlock
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
      j->run();       // a kill unwinds from here; ~runner_ticket balances the books
      j.reset();      // the call's captures die before the next call starts
      wake_batch wb;  // completes idle waiters after the unlock
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

inline void dispatch(const std::shared_ptr<pool_state>& state, std::unique_ptr<job> j) {
  pool_state& st = *state;
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
  runner_ticket ticket(state, std::move(j));
  spawn_options o;
  o.name = "task_pool";
  taiga::spawn(*st.rt, o, [t = std::move(ticket)]() mutable { t.run(); }).detach();
}

/// task_pool::submit, for the pool of `state`.
template <class F, class... A>
auto submit(const std::shared_ptr<pool_state>& state, F&& fn, A&&... args)
    -> future<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>> {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;
  promise<R> p;
  future<R> out = p.get_future();
  auto call = [p = std::move(p), f = std::forward<F>(fn), ... a = std::forward<A>(args)]() mutable {
    if (p.is_cancelled()) return;  // E4: cancelled while queued
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
  dispatch(state, std::make_unique<job_of<decltype(call)>>(std::move(call)));
  return out;
}

template <class F, class Range>
using map_result_t =
    std::invoke_result_t<std::decay_t<F>, std::decay_t<std::ranges::range_reference_t<Range>>>;

}  // namespace detail::pool_impl

/// The results of task_pool::map(fn, range), in input order, computed in the
/// pool as they are consumed (an input range: single pass, move-only).
///
/// It keeps at most window() calls in flight (submitted and not yet
/// consumed; twice the pool's max_tasklets()): map() submits the first
/// window() items, and each result consumed submits the next item. So the
/// input is read lazily, and results that wait for the consumer are at most
/// window(). Iterating parks until the next result is ready (a plain thread
/// blocks) and yields it as an lvalue to move from.
///
/// If a call threw, consuming its result (operator*, or ++ past it) rethrows
/// that exception: the first failure by position, after every result before
/// it was delivered. Then, and when the range is destroyed before the end,
/// the calls still in flight are cancelled (those not started never run;
/// those running finish, and their results are dropped) and no further item
/// is submitted. The pool must outlive the range and must not be shut down
/// while it is consumed (the next submission would throw usage_error).
/// @threadsafe no (one consumer)
template <class F, class Range>
class map_range {
 public:
  using value_type = detail::pool_impl::map_result_t<F, Range>;

  map_range(std::shared_ptr<detail::pool_impl::pool_state> pool, F&& fn, Range&& range,
            std::size_t window)
      : impl_(std::make_unique<impl>(std::move(pool), std::forward<F>(fn),
                                     std::forward<Range>(range), window)) {
    impl_->refill();
  }
  map_range(map_range&&) noexcept = default;
  /// Cancels this range's calls in flight, then takes `o`'s.
  map_range& operator=(map_range&& o) noexcept {
    if (this != &o) {
      if (impl_) impl_->stop();
      impl_ = std::move(o.impl_);
    }
    return *this;
  }
  map_range(const map_range&) = delete;
  map_range& operator=(const map_range&) = delete;
  /// Cancels the calls still in flight.
  ~map_range() {
    if (impl_) impl_->stop();
  }

  /// The most calls in flight at once.
  [[nodiscard]] std::size_t window() const noexcept { return impl_->window; }

  class iterator;
  /// The range-for's line is where its waits park in dumps and deadlock
  /// reports (the iterator's operators cannot take the caller's site).
  iterator begin(detail::op_site at = detail::op_site::current()) noexcept {
    return iterator(impl_.get(), at);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  using R = value_type;
  using stored = detail::future_impl::value_or_monostate<R>;  // std::monostate for void
  struct impl;

 public:
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = stored;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    /// Parks until the result is ready (a kill point); rethrows the call's
    /// exception.
    value_type& operator*() const { return i_->front(at_); }
    /// Moves past the result (consuming it first if * did not) and submits
    /// the next item.
    iterator& operator++() {
      i_->advance(at_);
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return i_->done(); }

   private:
    friend class map_range;
    iterator(impl* i, detail::op_site at) noexcept : i_(i), at_(at) {}
    impl* i_ = nullptr;
    detail::op_site at_{};
  };

 private:
  struct impl {
    impl(std::shared_ptr<detail::pool_impl::pool_state> p, F&& f, Range&& r, std::size_t w)
        : pool(std::move(p)),
          fn(std::forward<F>(f)),
          range(std::forward<Range>(r)),
          next(std::ranges::begin(range)),
          last(std::ranges::end(range)),
          window(w) {}

    // Submits items until `window` are in flight or the input ends.
    void refill() {
      try {
        while (!stopped && in_flight.size() < window && next != last) {
          if constexpr (std::is_lvalue_reference_v<Range>) {
            in_flight.push_back(detail::pool_impl::submit(pool, fn, *next));
          } else {  // the range is ours: its items may move into the calls
            in_flight.push_back(detail::pool_impl::submit(pool, fn, std::ranges::iter_move(next)));
          }
          ++next;
        }
      } catch (...) {
        stop();
        throw;
      }
    }
    stored& front(detail::op_site at) {
      if (!current) {
        future<R>& f = in_flight.front();
        f.wait(at);  // a kill (or a timeout_scope) propagates; nothing changes
        try {
          if constexpr (std::is_void_v<R>) {
            f.get(at);
            current.emplace();
          } else {
            current.emplace(f.get(at));
          }
        } catch (...) {
          // get() is an interruption point too: a kill or throw_into that
          // lands after wait() leaves the future valid, and nothing changes.
          if (f.valid()) throw;
          in_flight.pop_front();  // consumed: it was the failure
          stop();
          throw;
        }
      }
      return *current;
    }
    void advance(detail::op_site at) {
      if (in_flight.empty()) return;
      (void)front(at);
      current.reset();
      in_flight.pop_front();
      refill();
    }
    bool done() const noexcept { return in_flight.empty(); }
    // Cancels what is in flight (E4) and submits nothing more.
    void stop() noexcept {
      stopped = true;
      for (auto& f : in_flight) {
        try {
          if (f.valid()) (void)f.cancel();
        } catch (...) {
          // bad_alloc, or a done callback's kill: the call then just runs.
        }
      }
      in_flight.clear();
      current.reset();
    }

    std::shared_ptr<detail::pool_impl::pool_state> pool;
    std::decay_t<F> fn;
    Range range;  // a reference to the caller's range, or the range itself (an rvalue)
    std::ranges::iterator_t<std::remove_reference_t<Range>> next;
    std::ranges::sentinel_t<std::remove_reference_t<Range>> last;
    const std::size_t window;
    std::deque<future<R>> in_flight;  // submitted, not consumed; front = the next result
    std::optional<stored> current;    // the front's result, once taken out of its future
    bool stopped = false;
  };
  std::unique_ptr<impl> impl_;
};

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
  explicit task_pool(std::size_t max_tasklets, detail::op_site at = detail::op_site::current())
      : task_pool(current_runtime(), max_tasklets, at) {}
  /// A pool on `rt`, usable from plain threads too.
  /// @throws usage_error if max_tasklets == 0.
  task_pool(runtime& rt, std::size_t max_tasklets, detail::op_site at = detail::op_site::current())
      : made_at_(at) {
    if (max_tasklets == 0) throw usage_error("taiga::task_pool needs max_tasklets > 0");
    state_ = std::make_shared<detail::pool_impl::pool_state>(&rt, max_tasklets);
  }
  task_pool(const task_pool&) = delete;
  task_pool& operator=(const task_pool&) = delete;

  /// shutdown(true). A kill, throw_into or expiring timeout_scope that
  /// cuts the wait short leaves the remaining calls running on their own and
  /// stays pending: the caller's next park point raises it (a destructor
  /// cannot). Destroying a pool from one of its own calls does not wait.
  /// @suspends yes (a plain thread blocks)
  ~task_pool() {
    // Masked, so that the interruption ends the wait without being taken:
    // a catch (...) here would otherwise swallow a kill, and the tasklet
    // would run on as if nobody had asked it to end.
    // A kill already pending does not wait at all.
    const bool interrupted = detail::interrupt_pending();
    interruption_mask masked;
    try {
      // Its wait parks at the line that made the pool.
      if (close(!interrupted)) wait_idle(false, made_at_);
    } catch (const usage_error&) {
      // From one of its own calls: it would wait for itself.
    }
  }

  /// Runs `fn(args...)` as a tasklet of the pool (the arguments are decay-
  /// copied, like spawn's) and returns the future of its result. Cancelling
  /// that future (future::cancel) keeps the call from starting if it is
  /// still queued; a call already running is not interrupted.
  /// @throws usage_error after shutdown(). @suspends no
  /// @threadsafe
  template <class F, class... A>
  auto submit(F&& fn, A&&... args)
      -> future<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>> {
    return detail::pool_impl::submit(state_, std::forward<F>(fn), std::forward<A>(args)...);
  }

  /// Runs `fn(x)` for each x of `range` in the pool, lazily and in order,
  /// like Python's Executor.map but with a bounded number of calls in flight:
  /// returns a map_range that yields the results in input order, keeps at
  /// most 2 * max_tasklets() calls submitted and not yet consumed, and
  /// submits the next item as each result is consumed. A call's exception is
  /// rethrown where its result is consumed (so the first failure by
  /// position, after the results before it); the calls still in flight are
  /// then cancelled and no more items are submitted, as when the range is
  /// destroyed before its end.
  ///
  ///     for (auto& r : pool.map(fn, inputs)) use(r);
  ///
  /// `range` is read as the results are consumed: an lvalue range must
  /// outlive the map_range; an rvalue range is moved into it (its items then
  /// move into the calls). Items are decay-copied into the calls, like
  /// submit()'s arguments. For a void `fn`, map() returns nothing: it
  /// consumes the results itself (parking until every call has run, with the
  /// same bound) and rethrows the first failure.
  /// Do not call it from a call of the same pool with a small cap: the calls
  /// it waits for may need the slot it holds.
  /// @throws usage_error after shutdown(). @suspends yes for a void `fn`
  ///         (a plain thread blocks); iterating the range does.
  /// @threadsafe
  template <class F, class Range>
  auto map(F&& fn, Range&& range, detail::op_site at = detail::op_site::current()) {
    using R = detail::pool_impl::map_result_t<F, Range>;
    map_range<F, Range> results(state_, std::forward<F>(fn), std::forward<Range>(range),
                                2 * state_->max);
    if constexpr (std::is_void_v<R>) {
      for (auto it = results.begin(at); it != results.end(); ++it) {
      }
    } else {
      return results;
    }
  }

  /// Refuses further calls. With `wait`, parks until every submitted call has
  /// finished; without, returns at once and the queued calls still run.
  /// Idempotent.
  /// @throws usage_error for shutdown(true) from one of the pool's own calls
  ///         (it would wait for itself).
  /// @suspends yes with `wait` (a plain thread blocks); a kill point where
  ///           it parks, and not an interruption point otherwise: it closes
  ///           the pool first, whatever is pending, and the destructor calls
  ///           it (sync.hpp's list).
  /// @threadsafe
  void shutdown(bool wait = true, detail::op_site at = detail::op_site::current()) {
    if (close(wait)) wait_idle(true, at);
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
  // Refuses further calls; true when the caller must wait for calls that
  // still run.
  bool close(bool wait) {
    auto& st = *state_;
    std::lock_guard lk(st.lock);
    st.closed = true;
    if (!wait || st.running == 0) return false;
    const tasklet_id me = this_tasklet::get_id();
    if (me != 0 && std::find(st.runners.begin(), st.runners.end(), me) != st.runners.end())
      throw usage_error("taiga::task_pool::shutdown(true) from one of its own calls");
    return true;
  }

  // Parks until no call runs. An interruption raises with `raise`; without
  // (the destructor, masked) it ends the wait and stays pending.
  void wait_idle(bool raise, detail::op_site at) {
    auto& st = *state_;
    for (;;) {
      detail::wait_point w;
      detail::prepare_wait(w, park_reason::pool_shutdown, &st,
                           detail::call_site(at));  // masked: no raise
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
        st.idle.remove_if_linked(w);
      }
      if (raise) detail::throw_interrupt();
      return;
    }
  }

  static runtime& current_runtime() {
    runtime* rt = runtime::current();
    if (rt == nullptr) throw usage_error("taiga::task_pool outside a runtime: pass the runtime");
    return *rt;
  }

  std::shared_ptr<detail::pool_impl::pool_state> state_;
  detail::op_site made_at_;  // where the destructor's wait parks
};

}  // namespace taiga
