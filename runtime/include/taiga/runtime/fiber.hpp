#pragma once

#include <any>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <taiga/runtime/errors.hpp>

namespace taiga {

namespace detail {
struct fiber_state;
}

/// A raw stackful coroutine with explicit switching and no scheduler (the
/// python-fibers / greenlet layer under the tasklets).
///
/// Rules (python-fibers):
///  - A fiber is created with a callable and runs nothing until the first
///    switch_to() (which must not carry a value).
///  - switch_to(v) suspends the caller and resumes the target; the target's
///    pending switch_to() returns v.
///  - When the callable returns, control goes to the fiber's parent (the
///    nearest ancestor that has started and not ended) and the parent's
///    pending switch_to() returns the callable's return value; an exception
///    is re-raised in the parent instead.
///  - The default parent is the fiber current at creation; the thread's (or
///    tasklet's) implicit main fiber is the root and has no parent.
///  - throw_into(e) switches to the target and raises e there; into a fiber
///    that has not started, it marks it ended without running it and raises
///    e in its parent.
///  - A fiber belongs to the thread it was created on, or to the tasklet it
///    was created in (and then moves with that tasklet between workers).
///  - Errors (taiga::fiber_error): switching to a finished fiber, to itself,
///    to a fiber of another thread or tasklet, or starting one with a value.
/// Unlike python-fibers, destroying the last handle of a suspended fiber
/// unwinds its stack (its destructors run) before freeing it: C++ code
/// relies on RAII. The unwind is an exception of an internal type raised at
/// the fiber's suspension point, so a `catch (...)` in the body must rethrow
/// it (as with tasklet_exit): one that swallows it and switches away again
/// leaves its stack and the rest of its destructors behind. Destroying the
/// running fiber's handle is fatal.
///
/// A fiber that switches away inside a catch block keeps the exception it
/// is handling (`throw;` and std::current_exception() work when it comes
/// back), and so does the side it switched to.
class fiber {
 public:
  using function_type = std::function<std::any()>;

  /// An empty handle.
  fiber() noexcept;
  /// A new fiber running `fn` on a pooled stack of `stack_size` usable bytes.
  explicit fiber(function_type fn, std::size_t stack_size = 64 * 1024);
  template <class F>
  requires(!std::is_convertible_v<F, function_type> &&
           std::is_invocable_r_v<void, F>) explicit fiber(F fn, std::size_t stack_size = 64 * 1024)
      : fiber(function_type([f = std::move(fn)]() mutable -> std::any {
                f();
                return {};
              }),
              stack_size) {}
  fiber(fiber&&) noexcept;
  fiber& operator=(fiber&&) noexcept;
  fiber(const fiber&) = delete;
  fiber& operator=(const fiber&) = delete;
  ~fiber();

  /// Suspends the current fiber and runs this one; returns what the next
  /// switch back to the caller carries (or what a child returned).
  std::any switch_to(std::any value = {});
  /// Switches to this fiber and raises `e` at its suspension point.
  std::any throw_into(std::exception_ptr e);
  template <class E>
  std::any throw_into(E e) {
    return throw_into(std::make_exception_ptr(std::move(e)));
  }

  bool alive() const noexcept;  // started and not ended
  bool started() const noexcept;
  bool ended() const noexcept;
  explicit operator bool() const noexcept { return s_ != nullptr; }

  /// The parent (nullptr for a main fiber). set_parent rejects cycles, ended
  /// parents and parents of another thread or tasklet (fiber_error).
  fiber* parent() const noexcept;
  void set_parent(fiber& p);

  /// The fiber running now in this thread (or tasklet); its main fiber if
  /// no fiber was switched to.
  static fiber& current();

 private:
  explicit fiber(std::shared_ptr<detail::fiber_state> s) noexcept;
  friend struct detail::fiber_state;
  std::shared_ptr<detail::fiber_state> s_;
};

}  // namespace taiga
