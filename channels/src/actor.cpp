// The untyped half of taiga's actors: life cycle, links, monitors, system
// messages, pending asks and the registry. The design note and the
// invariants A1-A5 are in taiga/channels/detail/actor_core.hpp; the
// guarantees in docs/design/actors.md.
#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <taiga/channels/actor.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

namespace taiga {

const char* to_string(exit_kind k) noexcept {
  switch (k) {
    case exit_kind::normal:
      return "normal";
    case exit_kind::exception:
      return "exception";
    case exit_kind::killed:
      return "killed";
    case exit_kind::shutdown:
      return "shutdown";
  }
  return "?";
}

const char* to_string(overflow_policy p) noexcept {
  switch (p) {
    case overflow_policy::park:
      return "park";
    case overflow_policy::fail:
      return "fail";
    case overflow_policy::drop_newest:
      return "drop_newest";
    case overflow_policy::drop_oldest:
      return "drop_oldest";
  }
  return "?";
}

const char* to_string(send_status s) noexcept {
  switch (s) {
    case send_status::ok:
      return "ok";
    case send_status::dead:
      return "dead";
    case send_status::full:
      return "full";
    case send_status::dropped:
      return "dropped";
    case send_status::timeout:
      return "timeout";
  }
  return "?";
}

const char* to_string(ask_error e) noexcept {
  switch (e) {
    case ask_error::timeout:
      return "timeout";
    case ask_error::dead:
      return "dead";
    case ask_error::failed:
      return "failed";
    case ask_error::full:
      return "full";
    case ask_error::no_reply:
      return "no_reply";
  }
  return "?";
}

std::string exit_reason::describe() const {
  std::string s = to_string(kind);
  if (!type.empty()) s += " " + type;
  if (!text.empty()) s += ": " + text;
  return s;
}

std::uint64_t any_actor_ref::id() const noexcept {
  return base_ ? base_->id() : 0;
}
std::string any_actor_ref::name() const {
  return base_ ? base_->name() : std::string();
}
bool any_actor_ref::alive() const noexcept {
  return base_ != nullptr && !base_->ended();
}
bool any_actor_ref::kill() const {
  if (!base_) throw usage_error("taiga::any_actor_ref::kill on an empty ref");
  return base_->kill(exit_kind::killed);
}
exit_reason any_actor_ref::join() const {
  if (!base_) throw usage_error("taiga::any_actor_ref::join on an empty ref");
  return base_->join();
}

namespace detail::actor_impl {

namespace {

std::atomic<std::uint64_t> next_actor_id{1};

// The process-wide names (register_actor). A std::mutex: held for a map
// operation only, never across a park.
struct registry {
  std::mutex m;
  std::unordered_map<std::string, std::shared_ptr<actor_base>> names;
};
registry& the_registry() {
  static registry* r = new registry;  // never destroyed: actors may end during static destruction
  return *r;
}

void registry_remove(const actor_base* b) {
  registry& r = the_registry();
  std::lock_guard g(r.m);
  for (auto it = r.names.begin(); it != r.names.end();) {
    if (it->second.get() == b) {
      it = r.names.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

std::string demangle(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (d == nullptr) return mangled;
  std::string s(d);
  std::free(d);
  return s;
}

exit_reason current_exception_reason() {
  try {
    throw;
  } catch (const std::exception& e) {
    return exit_reason{exit_kind::exception, demangle(typeid(e).name()), e.what()};
  } catch (...) {
    return exit_reason{exit_kind::exception, "unknown",
                       "an exception not derived from std::exception"};
  }
}

[[noreturn]] void throw_type_mismatch(const char* where, const std::string& name,
                                      const actor_base& b, const char* wanted) {
  throw usage_error(std::string("taiga::") + where + ": actor '" + name + "' (#" +
                    std::to_string(b.id()) + ") takes " + b.msg_type_name() + ", not " +
                    demangle(wanted));
}

void ask_node::count_late() noexcept {
  target_->late_.fetch_add(1, std::memory_order_relaxed);
}

actor_base::actor_base(const actor_options& o, std::type_index msg_type, const char* msg_type_name)
    : capacity_(o.mailbox_capacity),
      overflow_(o.overflow),
      id_(next_actor_id.fetch_add(1, std::memory_order_relaxed)),
      name_(o.name),
      ask_timeout_(o.ask_timeout),
      msg_type_(msg_type),
      msg_type_name_(msg_type_name),
      trap_exit_(o.trap_exit) {}

actor_base::~actor_base() {
  while (sys_node* n = sys_head_) {
    sys_head_ = n->next;
    delete n;
  }
}

bool actor_base::start() noexcept {
  std::lock_guard g(lock_);
  if (kill_requested_) return false;
  core_ = current_tasklet();
  return true;
}

exit_reason actor_base::kill_reason() const {
  std::lock_guard g(lock_);
  if (kill_requested_) return exit_reason{kill_kind_, {}, kill_why_};
  return exit_reason{exit_kind::shutdown, {}, {}};
}

bool actor_base::kill(exit_kind kind, std::string why) {
  std::lock_guard g(lock_);
  if (ended_) return false;
  if (!kill_requested_) {
    kill_requested_ = true;
    kill_kind_ = kind;
    kill_why_ = std::move(why);
  }
  // The tasklet is alive from start() to finish(), both under this lock;
  // before start() the flag stops the behaviour from running at all.
  if (core_ != nullptr) detail::kill(core_);
  return true;
}

void actor_base::finish(exit_reason r) noexcept {
  std::vector<std::shared_ptr<actor_base>> links;
  std::vector<std::shared_ptr<actor_base>> watchers;
  sys_node* sys = nullptr;
  {
    wake_batch wb;
    std::lock_guard g(lock_);
    if (ended_) return;  // A4: once
    ended_ = true;       // A1: nothing is queued from now on
    reason_ = r;
    core_ = nullptr;
    receiver_ = nullptr;
    links.swap(links_);
    watchers.swap(monitors_);
    while (wait_point* w = senders_.pop_front()) {
      if (!claim(*w)) continue;
      static_cast<put_slot*>(w->slot)->result = send_status::dead;
      wb.add(*w);
    }
    joiners_.claim_all(wb);
    auto [e, text] = error_for(r);
    while (ask_node* n = asks_) {
      asks_ = n->next_;
      n->linked_ = false;
      n->fail(e, text, wb);  // A5: target's lock, then the ask's
    }
    sys = std::exchange(sys_head_, nullptr);
    sys_tail_ = nullptr;
  }
  while (sys != nullptr) delete std::exchange(sys, sys->next);
  drop_messages();
  if (registered.load()) registry_remove(this);
  const any_actor_ref self(shared_from_this());
  for (auto& w : watchers) (void)w->push_system(down{self, r});
  for (auto& l : links) {
    {
      std::lock_guard g(l->lock_);
      auto& v = l->links_;
      v.erase(std::remove(v.begin(), v.end(), self.base()), v.end());
    }
    l->signal_exit(self, r);
  }
}

void actor_base::signal_exit(const any_actor_ref& from, const exit_reason& r) {
  if (trap_exit()) {
    (void)push_system(exit_msg{from, r});
  } else if (r.abnormal()) {
    std::string why = "actor #" + std::to_string(from.id());
    if (!from.name().empty()) why += " (" + from.name() + ")";
    (void)kill(r.kind == exit_kind::shutdown ? exit_kind::shutdown : exit_kind::killed,
               why + " ended: " + r.describe());
  }
}

std::optional<exit_reason> actor_base::join_until(const steady_time* dl, call_site site) {
  interruption_point();
  {
    std::lock_guard g(lock_);
    if (ended_) return reason_;
    if (core_ != nullptr && core_ == current_tasklet())
      throw usage_error("taiga::actor_ref::join: an actor cannot join itself");
  }
  if (dl != nullptr && *dl <= sync_clock::now()) return std::nullopt;
  wait_point w;
  prepare_wait(w, "actor join", this, site);
  {
    std::lock_guard g(lock_);
    if (ended_) {
      cancel_wait(w);
      return reason_;
    }
    joiners_.push_back(w);
  }
  const wake_status s = wait(w, dl);
  if (s != wake_status::signaled) {
    std::lock_guard g(lock_);
    joiners_.remove_if_linked(w);
  }
  if (s == wake_status::interrupted) throw_interrupt();
  std::lock_guard g(lock_);
  return reason_;  // empty on a timeout
}

std::optional<exit_reason> actor_base::reason() const {
  std::lock_guard g(lock_);
  return reason_;
}

bool actor_base::push_system(system_message m) {
  auto n = std::make_unique<sys_node>(std::move(m));  // outside the lock
  wake_batch wb;
  std::lock_guard g(lock_);
  if (ended_) return false;
  sys_node* p = n.release();
  if (sys_tail_ != nullptr) {
    sys_tail_->next = p;
  } else {
    sys_head_ = p;
  }
  sys_tail_ = p;
  wake_receiver_locked(wb, true);
  return true;
}

void actor_base::add_monitor(const std::shared_ptr<actor_base>& watcher) {
  exit_reason r;
  {
    std::lock_guard g(lock_);
    if (!ended_) {
      monitors_.push_back(watcher);
      return;
    }
    r = *reason_;
  }
  (void)watcher->push_system(down{any_actor_ref(shared_from_this()), std::move(r)});
}

void actor_base::link(const std::shared_ptr<actor_base>& other) {
  if (other.get() == this) return;
  std::optional<exit_reason> mine;
  std::optional<exit_reason> theirs;
  {
    std::scoped_lock g(lock_, other->lock_);  // std::lock's order: no deadlock
    if (ended_) {
      mine = reason_;
    } else if (other->ended_) {
      theirs = other->reason_;
    } else if (std::find(links_.begin(), links_.end(), other) == links_.end()) {
      links_.push_back(other);
      other->links_.push_back(shared_from_this());
    }
  }
  // Linking to an actor that has ended: its exit signal comes at once
  // (Erlang's noproc), so a link never misses an end that raced it.
  if (theirs) signal_exit(any_actor_ref(other), *theirs);
  if (mine) other->signal_exit(any_actor_ref(shared_from_this()), *mine);
}

void actor_base::unlink(const std::shared_ptr<actor_base>& other) {
  if (other.get() == this) return;
  std::scoped_lock g(lock_, other->lock_);
  links_.erase(std::remove(links_.begin(), links_.end(), other), links_.end());
  auto& v = other->links_;
  v.erase(std::remove_if(v.begin(), v.end(), [this](const auto& p) { return p.get() == this; }),
          v.end());
}

bool actor_base::register_ask(ask_node& n) {
  wake_batch wb;
  std::lock_guard g(lock_);
  if (ended_) {
    auto [e, text] = error_for(*reason_);
    n.fail(e, std::move(text), wb);
    return false;
  }
  n.prev_ = nullptr;
  n.next_ = asks_;
  if (asks_ != nullptr) asks_->prev_ = &n;
  asks_ = &n;
  n.linked_ = true;
  return true;
}

void actor_base::unregister_ask(ask_node& n) noexcept {
  std::lock_guard g(lock_);
  if (!n.linked_) return;
  if (n.prev_ != nullptr) {
    n.prev_->next_ = n.next_;
  } else {
    asks_ = n.next_;
  }
  if (n.next_ != nullptr) n.next_->prev_ = n.prev_;
  n.next_ = n.prev_ = nullptr;
  n.linked_ = false;
}

std::pair<ask_error, std::string> actor_base::error_for(const exit_reason& r) {
  if (r.kind == exit_kind::exception)
    return {ask_error::failed, "taiga: the actor failed: " + r.describe()};
  return {ask_error::dead, "taiga: the actor has ended (" + r.describe() + ")"};
}

mailbox_stats actor_base::stats() const {
  mailbox_stats s;
  {
    std::lock_guard g(lock_);
    s.size = count_;
    s.high_water = high_water_;
    s.dropped = dropped_;
    s.rejected = rejected_;
  }
  s.capacity = capacity_;
  s.late_replies = late_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace detail::actor_impl

using detail::actor_impl::actor_base;

bool register_actor(const std::string& name, const any_actor_ref& ref) {
  if (!ref) throw usage_error("taiga::register_actor: an empty ref");
  auto& r = detail::actor_impl::the_registry();
  std::lock_guard g(r.m);
  auto it = r.names.find(name);
  if (it != r.names.end() && !it->second->ended()) return it->second == ref.base();
  // Set before the check of ended(): an actor that ends meanwhile either
  // sees the flag and removes the name, or is seen here as ended.
  ref.base()->registered.store(true);
  if (ref.base()->ended()) {
    if (it != r.names.end()) r.names.erase(it);
    return false;
  }
  r.names[name] = ref.base();
  return true;
}

bool unregister_actor(const std::string& name) {
  auto& r = detail::actor_impl::the_registry();
  std::lock_guard g(r.m);
  return r.names.erase(name) > 0;
}

std::optional<any_actor_ref> whereis(const std::string& name) {
  auto& r = detail::actor_impl::the_registry();
  std::lock_guard g(r.m);
  auto it = r.names.find(name);
  if (it == r.names.end() || it->second->ended()) return std::nullopt;
  return any_actor_ref(it->second);
}

}  // namespace taiga
