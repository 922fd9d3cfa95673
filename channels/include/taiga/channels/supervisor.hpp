// Supervisors (Erlang/OTP's supervisor): an actor that starts child actors
// in order, restarts the ones that end by their child spec and the
// supervisor's strategy, gives up when restarts come too often (then it
// fails, and its own supervisor decides), and stops its children in reverse
// order, each with a deadline and then a kill. Supervisors nest into trees.
//
//     std::vector<taiga::child_spec> kids{taiga::actor_child("db", db_actor),
//                                         taiga::actor_child("web", web_actor)};
//     auto sup = taiga::spawn_supervisor({.strategy = taiga::restart_strategy::rest_for_one},
//     kids);
//
// The rules are in docs/design/actors.md ("Supervision").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <taiga/channels/actor.hpp>
#include <utility>
#include <variant>
#include <vector>

namespace taiga {

/// Which children a supervisor restarts when one ends and must be restarted.
enum class restart_strategy : std::uint8_t {
  one_for_one,   // that child only
  one_for_all,   // every child: the others are stopped (in reverse order) first
  rest_for_one,  // that child and those started after it (stopped in reverse order first)
};

/// When a child that ended is restarted.
enum class restart_type : std::uint8_t {
  permanent,  // always
  transient,  // only after an abnormal end (exception or killed; not normal, not shutdown)
  temporary,  // never: it is removed
};

/// How to start one child, and how to treat it.
struct child_spec {
  /// Unique within its supervisor (which_children, find_child, errors).
  std::string id;
  /// Spawns the child and returns its ref; runs on the supervisor's tasklet.
  /// An exception here is a failed start: it counts as a restart, and the
  /// restart rules apply.
  std::function<any_actor_ref()> start;
  restart_type restart = restart_type::permanent;
  /// At shutdown: how long the child may take to end after its shutdown
  /// exit signal before it is killed.
  std::chrono::milliseconds shutdown = std::chrono::seconds(5);
  /// If not empty: the live child is registered under this name (after
  /// every restart: the name follows the new actor).
  std::string registered_name = {};
};

/// A child_spec that spawns `behaviour(self, args...)` with `o` (copies of
/// the behaviour and arguments start each incarnation).
template <class Msg = detail::actor_impl::deduce, class F, class... A>
child_spec actor_child(std::string id, actor_options o, F behaviour, A... args) {
  child_spec s;
  s.id = std::move(id);
  s.start = [o = std::move(o), behaviour = std::move(behaviour), args...]() {
    return any_actor_ref(spawn_actor<Msg>(o, behaviour, args...));
  };
  return s;
}
template <class Msg = detail::actor_impl::deduce, class F, class... A>
requires(!std::is_same_v<std::remove_cvref_t<F>, actor_options>) child_spec
    actor_child(std::string id, F behaviour, A... args) {
  return actor_child<Msg>(std::move(id), actor_options{}, std::move(behaviour), std::move(args)...);
}

struct supervisor_options {
  /// The supervisor's actor name.
  std::string name = {};
  restart_strategy strategy = restart_strategy::one_for_one;
  /// Restart intensity: more than `max_restarts` restarts within `period`
  /// and the supervisor stops its children and fails (supervisor_error).
  int max_restarts = 3;
  std::chrono::milliseconds period = std::chrono::seconds(5);
  /// Delay before a restart: `backoff_initial` doubled for each earlier
  /// restart of the same child within `period`, at most `backoff_max`.
  /// Zero: restart at once.
  std::chrono::milliseconds backoff_initial = std::chrono::milliseconds(0);
  std::chrono::milliseconds backoff_max = std::chrono::seconds(1);
};

/// What a supervisor ends with when its restart intensity is reached.
class supervisor_error : public std::runtime_error {
 public:
  explicit supervisor_error(const std::string& what) : std::runtime_error(what) {}
};

/// which_children's answer, one per child in start order.
struct child_info {
  std::string id;
  any_actor_ref ref;  // the live incarnation (empty while stopped or waiting for a restart)
  std::uint64_t restarts = 0;  // restarts so far, failed starts included
};
/// Requests a supervisor answers.
struct which_children {};
struct find_child {
  std::string id;
};
/// Adds a child at the end and starts it (Erlang's supervisor:start_child):
/// the reply is its ref, or an empty ref if the id is taken or the start
/// failed (a failed start counts as a restart, as for any child). For
/// children that come and go (one per connection), use
/// restart_type::temporary: an ended temporary child is forgotten.
struct start_child {
  child_spec spec;
};
/// Told to a supervisor: stop every child in reverse order, then end normally.
struct stop_supervisor {};
using supervisor_msg = std::variant<request<which_children, std::vector<child_info>>,
                                    request<find_child, any_actor_ref>,
                                    request<start_child, any_actor_ref>, stop_supervisor>;
using supervisor_ref = actor_ref<supervisor_msg>;

/// Spawns a supervisor that starts `children` in order. It traps exits and
/// links to every child. An abnormal exit signal from an actor that is not
/// one of its children (its own supervisor, or a linked owner) stops the
/// children in reverse order and ends the supervisor with that reason.
/// @throws usage_error for duplicate child ids or a spec without start.
supervisor_ref spawn_supervisor(supervisor_options o, std::vector<child_spec> children);

/// A child_spec that starts a supervisor (a subtree). Its shutdown deadline
/// defaults to infinity-like (a minute): a subtree stops its own children
/// first.
child_spec supervisor_child(std::string id, supervisor_options o, std::vector<child_spec> children);

}  // namespace taiga
