// Supervisors (supervisor.hpp): an actor that traps exits, links to its
// children and applies the restart rules.
//
// Design note. The supervisor is one loop on its own tasklet: everything it
// knows (which child runs, which waits for a restart and until when, the
// restart times inside the intensity period) is local state of that loop,
// so none of it needs a lock. Children report their end as exit_msg (the
// supervisor traps exits); a stop the supervisor makes itself (a restart of
// a group, a shutdown) is waited for right there with join_until, and the
// exit_msg that the stopped child still sends later is recognised as stale:
// it names a ref that is no longer the child's live one.
//
// Invariants (V-prefixed):
//  V1  a child is in one of three states: running (ref set, linked), waiting
//      for a restart (pending, ref empty, due time set), or stopped (neither:
//      temporary and ended, or after shutdown).
//  V2  an exit_msg acts only when its sender is a running child's live ref;
//      one from a non-child with an abnormal reason is the owner's: stop
//      all, end with that reason.
//  V3  every restart (a failed start included) is counted in `restarts_`
//      before it is made; more than max_restarts within period ends the
//      supervisor with supervisor_error after stopping every child.
//  V4  children start in spec order and stop in reverse order; a group
//      restart (one_for_all, rest_for_one) stops its running members in
//      reverse order before any of them starts again, and starts them in
//      order, all at the group's due time.
#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <taiga/channels/supervisor.hpp>
#include <utility>
#include <vector>

namespace taiga {

namespace {

using clock = std::chrono::steady_clock;

class supervisor_loop {
 public:
  supervisor_loop(actor_self<supervisor_msg>& self, supervisor_options o,
                  std::vector<child_spec> specs)
      : self_(self), o_(std::move(o)) {
    children_.reserve(specs.size());
    for (auto& s : specs) children_.push_back(child{std::move(s)});
  }

  void run() {
    for (std::size_t i = 0; i < children_.size(); ++i) start_or_fail(i);  // V4
    for (;;) {
      // V1: an ended temporary child is forgotten (one per connection
      // would otherwise pile up).
      std::erase_if(children_, [](const child& c) {
        return c.spec.restart == restart_type::temporary && !c.ref && !c.pending;
      });
      start_due();
      std::optional<clock::time_point> next = next_due();
      bool stop = false;
      std::optional<exit_reason> owner_exit;
      auto visitor = [&](auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, exit_msg>) {
          on_exit(m, owner_exit);
        } else if constexpr (std::is_same_v<M, request<which_children, std::vector<child_info>>>) {
          std::vector<child_info> out;
          for (auto& c : children_) out.push_back(child_info{c.spec.id, c.ref, c.restarts});
          m.reply(std::move(out));
        } else if constexpr (std::is_same_v<M, request<find_child, any_actor_ref>>) {
          any_actor_ref r;
          for (auto& c : children_)
            if (c.spec.id == m.value.id) r = c.ref;
          m.reply(std::move(r));
        } else if constexpr (std::is_same_v<M, request<start_child, any_actor_ref>>) {
          m.reply(add(std::move(m.value.spec)));
        } else if constexpr (std::is_same_v<M, stop_supervisor>) {
          stop = true;
        }
      };
      if (next) {
        (void)self_.receive_for(*next - clock::now(), visitor);
      } else {
        self_.receive(visitor);
      }
      if (owner_exit) {
        stop_all();
        self_.exit(*owner_exit);
      }
      if (stop) {
        stop_all();
        return;
      }
    }
  }

 private:
  struct child {
    child_spec spec;
    any_actor_ref ref;  // V1: set while running
    bool pending = false;
    clock::time_point due{};
    std::uint64_t restarts = 0;
    std::deque<clock::time_point> recent;  // this child's restarts within period (backoff)
  };

  any_actor_ref add(child_spec spec) {
    if (!spec.start) return any_actor_ref();
    for (const auto& c : children_)
      if (c.spec.id == spec.id) return any_actor_ref();
    children_.push_back(child{std::move(spec)});
    start_or_fail(children_.size() - 1);
    return children_.back().ref;
  }

  // Starts child i; a failed start counts as an end with the exception.
  void start_or_fail(std::size_t i) {
    child& c = children_[i];
    c.pending = false;
    any_actor_ref r;
    try {
      r = c.spec.start();
      if (!r) throw std::logic_error("child_spec::start returned an empty ref");
    } catch (...) {
      exit_reason why = detail::actor_impl::current_exception_reason();
      why.text = "failed start: " + why.text;
      ended(i, why);
      return;
    }
    c.ref = r;
    self_.link(r);  // an end already past comes as an exit_msg at once
    if (!c.spec.registered_name.empty()) (void)register_actor(c.spec.registered_name, r);
  }

  void on_exit(const exit_msg& e, std::optional<exit_reason>& owner_exit) {
    for (std::size_t i = 0; i < children_.size(); ++i) {
      if (children_[i].ref && children_[i].ref == e.from) {  // V2
        children_[i].ref = any_actor_ref();
        ended(i, e.reason);
        return;
      }
    }
    // Not a live child: a stale exit of one stopped here, or the owner's.
    bool stale = false;
    for (const auto& id : stopped_)
      if (id == e.from.id()) stale = true;
    if (!stale && e.reason.abnormal()) owner_exit = e.reason;
  }

  // Child i has ended with `why` (its ref is already cleared).
  void ended(std::size_t i, const exit_reason& why) {
    child& c = children_[i];
    const bool abnormal = why.kind == exit_kind::exception || why.kind == exit_kind::killed;
    const bool restart = c.spec.restart == restart_type::permanent ||
                         (c.spec.restart == restart_type::transient && abnormal);
    if (!restart) return;   // V1: stopped (temporary, or a transient that ended well)
    count_restart(c, why);  // V3; throws supervisor_error
    const auto delay = backoff(c);
    std::vector<std::size_t> group;
    switch (o_.strategy) {
      case restart_strategy::one_for_one:
        group.push_back(i);
        break;
      case restart_strategy::one_for_all:
        for (std::size_t j = 0; j < children_.size(); ++j) group.push_back(j);
        break;
      case restart_strategy::rest_for_one:
        for (std::size_t j = i; j < children_.size(); ++j) group.push_back(j);
        break;
    }
    // V4: stop the running members in reverse order first.
    for (auto it = group.rbegin(); it != group.rend(); ++it)
      if (*it != i) stop_child(*it);
    const auto due = clock::now() + delay;
    for (std::size_t j : group) {
      child& g = children_[j];
      if (j != i && g.spec.restart == restart_type::temporary) continue;  // not restarted
      if (j != i && !g.pending && g.ref) continue;  // cannot happen after stop_child
      g.pending = true;
      g.due = due;
    }
  }

  void count_restart(child& c, const exit_reason& why) {
    const auto now = clock::now();
    while (!restarts_.empty() && now - restarts_.front() > o_.period) restarts_.pop_front();
    while (!c.recent.empty() && now - c.recent.front() > o_.period) c.recent.pop_front();
    restarts_.push_back(now);
    c.recent.push_back(now);
    ++c.restarts;
    if (static_cast<int>(restarts_.size()) > o_.max_restarts) {
      stop_all();
      throw supervisor_error("taiga::supervisor '" + o_.name + "': more than " +
                             std::to_string(o_.max_restarts) + " restarts within " +
                             std::to_string(o_.period.count()) + " ms; the last: child '" +
                             c.spec.id + "' ended: " + why.describe());
    }
  }

  std::chrono::milliseconds backoff(const child& c) const {
    if (o_.backoff_initial.count() <= 0) return std::chrono::milliseconds(0);
    auto d = o_.backoff_initial;
    for (std::size_t k = 1; k < c.recent.size() && d < o_.backoff_max; ++k) d *= 2;
    return std::min(d, o_.backoff_max);
  }

  void start_due() {
    // In spec order (V4); a start may fail and schedule more, so loop.
    for (bool again = true; again;) {
      again = false;
      const auto now = clock::now();
      for (std::size_t i = 0; i < children_.size(); ++i) {
        if (children_[i].pending && children_[i].due <= now) {
          start_or_fail(i);
          again = true;
        }
      }
    }
  }

  std::optional<clock::time_point> next_due() const {
    std::optional<clock::time_point> t;
    for (const auto& c : children_)
      if (c.pending && (!t || c.due < *t)) t = c.due;
    return t;
  }

  // Shutdown exit signal, wait up to the child's deadline, then kill.
  void stop_child(std::size_t i) {
    child& c = children_[i];
    c.pending = false;
    if (!c.ref) return;
    any_actor_ref r = std::exchange(c.ref, any_actor_ref());
    stopped_.push_back(r.id());
    if (stopped_.size() > 64) stopped_.erase(stopped_.begin());
    const auto& b = r.base();
    b->signal_exit(self_.ref(), exit_reason{exit_kind::shutdown, {}, "stopped by its supervisor"});
    const auto dl = detail::deadline_after(c.spec.shutdown);
    if (!b->join_until(&dl)) {
      (void)b->kill(exit_kind::killed, "did not stop within its shutdown deadline");
      (void)b->join();
    }
  }

  void stop_all() {
    for (std::size_t i = children_.size(); i-- > 0;) stop_child(i);  // V4
  }

  actor_self<supervisor_msg>& self_;
  supervisor_options o_;
  std::vector<child> children_;
  std::deque<clock::time_point> restarts_;  // V3: within the period
  std::vector<std::uint64_t> stopped_;      // ids stopped here lately (stale exits)
};

void supervise(actor_self<supervisor_msg>& self, supervisor_options o,
               std::vector<child_spec> specs) {
  supervisor_loop(self, std::move(o), std::move(specs)).run();
}

}  // namespace

supervisor_ref spawn_supervisor(supervisor_options o, std::vector<child_spec> children) {
  std::set<std::string> ids;
  for (const auto& c : children) {
    if (!c.start) throw usage_error("taiga::spawn_supervisor: child '" + c.id + "' has no start");
    if (!ids.insert(c.id).second)
      throw usage_error("taiga::spawn_supervisor: two children with the id '" + c.id + "'");
  }
  actor_options ao;
  ao.name = o.name;
  ao.trap_exit = true;
  return spawn_actor<supervisor_msg>(ao, supervise, std::move(o), std::move(children));
}

child_spec supervisor_child(std::string id, supervisor_options o,
                            std::vector<child_spec> children) {
  child_spec s;
  s.id = std::move(id);
  s.shutdown = std::chrono::minutes(1);
  s.start = [o = std::move(o), children = std::move(children)]() {
    return any_actor_ref(spawn_supervisor(o, children));
  };
  return s;
}

}  // namespace taiga
