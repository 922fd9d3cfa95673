// fiber.cpp: the python-fibers layer (explicit switching, no scheduler).
//
// Each "home" (an OS thread, or a tasklet) has an implicit main fiber whose
// context is the home's own (the thread's stack, or the tasklet's root
// context) and a `current` pointer. Fibers of one home switch only among
// themselves: switch_context(current->ctx, target->ctx). Inside a tasklet
// the tasklet's `active` context (in its tasklet_frame) is kept pointing at
// the running fiber, so that a tasklet that parks while a fiber runs is
// later resumed in that fiber (scheduler.cpp resumes `active`).
//
// Values travel in the target's `in_value`/`in_error` fields, written by the
// switcher just before the switch and read by the target right after it.
// An ended fiber's stack is released by the side it switched to (context.cpp
// X3), which finds the ended fiber in the switch payload.
#include <taiga/runtime/fiber.hpp>
#include <taiga/runtime/tasklet_local.hpp>

#include <cstdio>
#include <cstdlib>

#include "context.hpp"
#include "scheduler.hpp"
#include "stack_pool.hpp"

namespace taiga::detail {

struct fiber_unwind {};  // forced unwind of a suspended fiber being destroyed

struct fiber_home;

struct fiber_state {
  exec_context own;          // the fiber's context (unused by main fibers)
  exec_context* ctx = &own;  // the context to switch to
  fiber::function_type target;
  std::shared_ptr<fiber_state> parent;
  fiber_home* home = nullptr;
  fiber* handle = nullptr;  // the owning handle (for current())
  internal::stack stack;
  bool started = false, ended = false, is_main = false;
  std::any in_value;
  std::exception_ptr in_error;
};

struct fiber_home {
  const void* identity = nullptr;  // the tasklet, or the thread's home object
  std::shared_ptr<fiber_state> main;
  fiber main_handle;
  fiber_state* current = nullptr;
  exec_context thread_ctx;
  tasklet_core* tasklet = nullptr;
};

struct fiber_payload {
  fiber_state* ended = nullptr;  // an ended fiber whose stack we must release
};

namespace {

thread_local fiber_home* tls_thread_home = nullptr;

fiber_home* make_home(tasklet_core* t) {
  auto* h = new fiber_home;
  h->tasklet = t;
  h->identity = t ? static_cast<const void*>(t) : static_cast<const void*>(h);
  auto m = std::make_shared<fiber_state>();
  m->is_main = true;
  m->started = true;
  m->home = h;
  if (t) {
    m->ctx = &t->frame.load(std::memory_order_relaxed)->ctx;
  } else {
    internal::init_thread_context(h->thread_ctx);
    m->ctx = &h->thread_ctx;
  }
  h->main = m;
  h->current = m.get();
  return h;
}

struct home_holder {
  fiber_home* h = nullptr;
  home_holder() = default;
  home_holder(const home_holder&) = delete;
  ~home_holder() { delete h; }
};
tasklet_local<home_holder>& tasklet_homes() {
  static tasklet_local<home_holder> homes;
  return homes;
}
struct thread_home_holder {
  ~thread_home_holder() { delete tls_thread_home; }
};
thread_local thread_home_holder tls_thread_home_holder;

fiber_home* current_home() {
  if (tasklet_core* t = current_tasklet()) {
    home_holder& hh = tasklet_homes().get();
    if (hh.h == nullptr) hh.h = make_home(t);
    return hh.h;
  }
  if (tls_thread_home == nullptr) {
    // The stack cache first, so that it outlives the home holder (whose
    // destructor releases stacks).
    internal::stack_pool::prepare_thread();
    (void)&tls_thread_home_holder;
    tls_thread_home = make_home(nullptr);
  }
  return tls_thread_home;
}

void release_stack(fiber_state* s) {
  if (s->stack) {
    internal::destroy_context(s->own);
    internal::stack_pool::instance().release(s->stack);
    s->stack = {};
  }
}

void after_fiber_switch(void* payload) {
  auto* p = static_cast<fiber_payload*>(payload);
  if (p != nullptr && p->ended != nullptr) release_stack(p->ended);
}

// Canary mode: checked at every switch off a fiber's stack, its end included.
void check_canary(fiber_state* s) noexcept {
  if (s->ctx->canary && !internal::stack_pool::canary_intact(s->ctx->stack_lo))
    internal::report_overflow(s, 2);
}

// Switches from `cur` to `to`; returns once something switches back to cur.
void do_switch(fiber_home* h, fiber_state* cur, fiber_state* to, fiber_payload* payload) {
  check_canary(cur);
  h->current = to;
  if (h->tasklet) h->tasklet->frame.load(std::memory_order_relaxed)->active = to->ctx;
  void* back = internal::switch_context(*cur->ctx, *to->ctx, payload);
  after_fiber_switch(back);
}

fiber_state* live_ancestor(fiber_state* s) {
  fiber_state* p = s->parent.get();
  while (p != nullptr && (!p->started || p->ended)) p = p->parent.get();
  return p;
}

[[noreturn]] void end_fiber(fiber_state* self, std::any value, std::exception_ptr error) {
  check_canary(self);  // before the stack is released and can go to a new owner
  fiber_home* h = self->home;
  self->ended = true;
  self->target = nullptr;
  fiber_state* p = live_ancestor(self);
  if (p == nullptr) p = h->main.get();
  p->in_value = std::move(value);
  p->in_error = std::move(error);
  h->current = p;
  if (h->tasklet) h->tasklet->frame.load(std::memory_order_relaxed)->active = p->ctx;
  static thread_local fiber_payload payload;
  payload.ended = self;
  internal::exit_context(*self->ctx, *p->ctx, &payload);
}

void fiber_entry(void* payload) {
  after_fiber_switch(payload);
  fiber_home* h = current_home();
  fiber_state* self = h->current;
  std::any result;
  std::exception_ptr error;
  try {
    if (self->in_error) std::rethrow_exception(std::exchange(self->in_error, nullptr));
    result = self->target();
  } catch (const fiber_unwind&) {
    // destroyed while suspended: ends quietly
  } catch (...) {
    error = std::current_exception();
  }
  self->target = nullptr;
  end_fiber(self, std::move(result), std::move(error));
}

void check_target(fiber_home* h, fiber_state* cur, fiber_state* to) {
  if (to == nullptr) throw fiber_error("taiga::fiber: empty fiber handle");
  if (to->home != h)
    throw fiber_error("taiga::fiber: cannot switch to a fiber of another thread or tasklet");
  if (to == cur) throw fiber_error("taiga::fiber: a fiber cannot switch to itself");
  if (to->ended) throw fiber_error("taiga::fiber: cannot switch to a fiber that has ended");
}

std::any take_delivery(fiber_state* cur) {
  if (cur->in_error) std::rethrow_exception(std::exchange(cur->in_error, nullptr));
  return std::exchange(cur->in_value, std::any());
}

void start(fiber_state* s) {
  s->started = true;
  s->own.kind = 2;
  s->own.canary = s->stack.guard == stack_guard_mode::canary;
  internal::make_context(s->own, s->stack.lo(), s->stack.usable(), &fiber_entry);
}

}  // namespace
}  // namespace taiga::detail

namespace taiga {

using detail::fiber_state;

fiber::fiber() noexcept = default;
fiber::fiber(std::shared_ptr<fiber_state> s) noexcept : s_(std::move(s)) {
  if (s_) s_->handle = this;
}

fiber::fiber(function_type fn, std::size_t stack_size) : s_(std::make_shared<fiber_state>()) {
  detail::fiber_home* h = detail::current_home();
  s_->target = std::move(fn);
  s_->home = h;
  s_->handle = this;
  s_->stack = internal::stack_pool::instance().allocate(stack_size);
  fiber_state* cur = h->current;
  s_->parent = cur->is_main ? h->main : (cur->handle ? cur->handle->s_ : nullptr);
}

fiber::fiber(fiber&& o) noexcept : s_(std::move(o.s_)) {
  if (s_) s_->handle = this;
}

fiber& fiber::operator=(fiber&& o) noexcept {
  if (this != &o) {
    fiber tmp(std::move(*this));
    s_ = std::move(o.s_);
    if (s_) s_->handle = this;
  }
  return *this;
}

fiber::~fiber() {
  if (!s_) return;
  fiber_state* s = s_.get();
  if (s->handle == this) s->handle = nullptr;
  if (s->is_main) return;
  if (s->started && !s->ended) {
    detail::fiber_home* h = s->home;
    if (h->current == s) {
      std::fputs("taiga::fiber: the running fiber's handle was destroyed\n", stderr);
      std::abort();
    }
    if (detail::current_home() != h) {
      std::fputs("taiga::fiber: a suspended fiber was destroyed on another thread\n", stderr);
      std::abort();
    }
    // Unwind it: its destructors run, then control comes back here.
    fiber_state* cur = h->current;
    auto self_ref = s_;
    s->parent = cur->is_main ? h->main : (cur->handle ? cur->handle->s_ : h->main);
    s->in_error = std::make_exception_ptr(detail::fiber_unwind{});
    detail::fiber_payload p;
    detail::do_switch(h, cur, s, &p);
    cur->in_value.reset();
    cur->in_error = nullptr;  // the unwind's own result is not news
  }
  if (!s->started && s->stack) {
    internal::stack_pool::instance().release(s->stack);
    s->stack = {};
  }
}

std::any fiber::switch_to(std::any value) {
  detail::fiber_home* h = detail::current_home();
  fiber_state* cur = h->current;
  fiber_state* to = s_.get();
  detail::check_target(h, cur, to);
  if (!to->started) {
    if (value.has_value())
      throw fiber_error("taiga::fiber: a fiber that has not started cannot receive a value");
    detail::start(to);
  }
  to->in_value = std::move(value);
  to->in_error = nullptr;
  detail::fiber_payload p;
  detail::do_switch(h, cur, to, &p);
  return detail::take_delivery(cur);
}

std::any fiber::throw_into(std::exception_ptr e) {
  detail::fiber_home* h = detail::current_home();
  fiber_state* cur = h->current;
  fiber_state* to = s_.get();
  detail::check_target(h, cur, to);
  if (!to->started) {
    // Ends without running; the exception goes to its parent.
    to->ended = true;
    to->target = nullptr;
    if (to->stack) {
      internal::stack_pool::instance().release(to->stack);
      to->stack = {};
    }
    fiber_state* p = detail::live_ancestor(to);
    if (p == nullptr) p = h->main.get();
    if (p == cur) std::rethrow_exception(e);
    p->in_error = std::move(e);
    detail::fiber_payload pl;
    detail::do_switch(h, cur, p, &pl);
    return detail::take_delivery(cur);
  }
  to->in_value.reset();
  to->in_error = std::move(e);
  detail::fiber_payload p;
  detail::do_switch(h, cur, to, &p);
  return detail::take_delivery(cur);
}

bool fiber::alive() const noexcept {
  return s_ && s_->started && !s_->ended;
}
bool fiber::started() const noexcept {
  return s_ && s_->started;
}
bool fiber::ended() const noexcept {
  return s_ && s_->ended;
}

fiber* fiber::parent() const noexcept {
  if (!s_ || !s_->parent) return nullptr;
  return s_->parent->is_main ? &s_->parent->home->main_handle : s_->parent->handle;
}

void fiber::set_parent(fiber& p) {
  if (!s_ || !p.s_) throw fiber_error("taiga::fiber: empty fiber handle");
  if (s_->is_main) throw fiber_error("taiga::fiber: a main fiber has no parent");
  if (p.s_->home != s_->home)
    throw fiber_error("taiga::fiber: a parent must belong to the same thread or tasklet");
  if (p.s_->ended) throw fiber_error("taiga::fiber: a parent cannot be a fiber that has ended");
  for (fiber_state* a = p.s_.get(); a != nullptr; a = a->parent.get())
    if (a == s_.get()) throw fiber_error("taiga::fiber: set_parent would make a cycle");
  s_->parent = p.s_;
}

fiber& fiber::current() {
  detail::fiber_home* h = detail::current_home();
  if (!h->main_handle) {
    h->main_handle.s_ = h->main;
  }
  fiber_state* cur = h->current;
  if (cur->is_main) return h->main_handle;
  return *cur->handle;
}

}  // namespace taiga
