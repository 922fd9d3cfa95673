// ticker.cpp: ticks through the runtime's timers (call_at). Each tick runs a
// short tasklet that offers the time to a one-slot channel without
// parking (try_send: a full slot drops the tick) and arms the next one on
// the original grid. The state is shared with the armed call through a
// weak reference, so a ticker destroyed while a call is armed cancels it
// and a call already running finds it gone.
#include <mutex>
#include <taiga/channels/ticker.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/timer.hpp>

namespace taiga {

struct ticker::state {
  taiga::channel<time_point> ch{1};
  std::mutex mu;  // guards the rest; held only for a few instructions
  std::chrono::steady_clock::duration period{};
  time_point next{};
  timer_handle armed;
  bool stopped = false;
  std::uint64_t generation = 0;  // a reset() makes older armed calls do nothing
};

namespace {

void arm(const std::shared_ptr<ticker::state>& s, std::uint64_t gen);

void tick(const std::weak_ptr<ticker::state>& w, std::uint64_t gen) {
  std::shared_ptr<ticker::state> s = w.lock();
  if (!s) return;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lk(s->mu);
    if (s->stopped || s->generation != gen) return;
    // The next tick on the grid; ticks the reader could not take are skipped.
    do s->next += s->period;
    while (s->next <= now);
    arm(s, gen);
  }
  // Not under the mutex: a send that hands over to a parked reader yields
  // to it, and the tasklet may resume on another thread.
  (void)s->ch.try_send(ticker::time_point(now));
}

// With s->mu held.
void arm(const std::shared_ptr<ticker::state>& s, std::uint64_t gen) {
  std::weak_ptr<ticker::state> w = s;
  s->armed = call_at(s->next, [w, gen] { tick(w, gen); });
}

}  // namespace

ticker::ticker(std::chrono::nanoseconds period) : s_(std::make_shared<state>()) {
  if (period <= std::chrono::nanoseconds::zero())
    throw usage_error("taiga::ticker: the period must be positive");
  std::lock_guard lk(s_->mu);
  s_->period = period;
  s_->next = std::chrono::steady_clock::now() + period;
  arm(s_, s_->generation);
}

ticker::~ticker() {
  stop();
}

const taiga::channel<ticker::time_point>& ticker::ticks() const noexcept {
  return s_->ch;
}

void ticker::stop() noexcept {
  std::lock_guard lk(s_->mu);
  s_->stopped = true;
  s_->armed.cancel();
}

void ticker::reset(std::chrono::nanoseconds period) {
  if (period <= std::chrono::nanoseconds::zero())
    throw usage_error("taiga::ticker: the period must be positive");
  std::lock_guard lk(s_->mu);
  s_->armed.cancel();
  s_->stopped = false;
  ++s_->generation;
  s_->period = period;
  s_->next = std::chrono::steady_clock::now() + period;
  arm(s_, s_->generation);
}

}  // namespace taiga
