// The value types of taiga's actors (actor.hpp): why an actor ended, the
// system messages a visitor receive can take, the spawn options and the
// outcomes of tell and ask. No dependencies on the actor machinery, so a
// header that only names these types stays light.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace taiga {

namespace detail::actor_impl {
class actor_base;
}

/// How an actor ended.
enum class exit_kind : std::uint8_t {
  normal,     // its behaviour returned
  exception,  // its behaviour threw; exit_reason::type and ::text say what
  killed,     // kill(), or a linked actor ended abnormally (text says which)
  shutdown,   // the runtime shut down, or a supervisor stopped it
};
const char* to_string(exit_kind k) noexcept;

/// Why an actor ended: its kind, and for an exception the exception's type
/// (demangled) and what(). Links propagate every kind but `normal`.
struct exit_reason {
  exit_kind kind = exit_kind::normal;
  std::string type;  // exception: the exception's type, e.g. "std::runtime_error"
  std::string text;  // exception: what(); killed: by whom, when a link did it
  bool abnormal() const noexcept { return kind != exit_kind::normal; }
  /// One line: "normal", "exception std::runtime_error: boom", "killed: ...".
  std::string describe() const;
};

/// An untyped handle to an actor: what system messages carry, and what
/// monitors, links and supervisors work with. Cheap to copy (one shared
/// pointer); keeps the actor's record alive, not the actor. Every
/// actor_ref<Msg> converts to it.
class any_actor_ref {
 public:
  any_actor_ref() noexcept = default;
  explicit any_actor_ref(std::shared_ptr<detail::actor_impl::actor_base> b) noexcept
      : base_(std::move(b)) {}

  /// The actor's process-unique id (never reused); 0 for an empty handle.
  std::uint64_t id() const noexcept;
  /// The name given at spawn (actor_options::name), or "".
  std::string name() const;
  /// False once the actor has ended (a snapshot).
  bool alive() const noexcept;
  /// Ends the actor with exit_kind::killed at its current or next park point
  /// (its destructors run). Returns false if it had already ended.
  bool kill() const;
  /// Waits (parks; a plain thread blocks) until the actor has ended and
  /// returns why. A kill point.
  exit_reason join() const;

  explicit operator bool() const noexcept { return base_ != nullptr; }
  friend bool operator==(const any_actor_ref& a, const any_actor_ref& b) noexcept {
    return a.base_ == b.base_;
  }
  const std::shared_ptr<detail::actor_impl::actor_base>& base() const noexcept { return base_; }

 private:
  std::shared_ptr<detail::actor_impl::actor_base> base_;
};

/// A system message: a monitored actor ended. Delivered exactly once per
/// monitor() call, also when the actor had already ended.
struct down {
  any_actor_ref actor;
  exit_reason reason;
};

/// A system message for an actor that traps exits (actor_self::trap_exit):
/// a linked actor ended. Without trapping, an abnormal end of a linked actor
/// kills this one instead, and a normal one is ignored.
struct exit_msg {
  any_actor_ref from;
  exit_reason reason;
};

/// What a visitor receive_for hands its visitor when the time ran out.
struct receive_timeout {};

/// What a send into a full mailbox does (chosen at spawn).
enum class overflow_policy : std::uint8_t {
  park,         // the sender waits for room (ask: until its deadline); the actor
                // itself never waits on its own mailbox: it gets send_status::full
  fail,         // the send returns send_status::full; the message is not sent
  drop_newest,  // the new message is dropped: send_status::dropped
  drop_oldest,  // the oldest queued message is dropped to make room
};
const char* to_string(overflow_policy p) noexcept;

/// Options for spawn_actor.
struct actor_options {
  /// The actor's name (also its tasklet's name): reports and dumps show it.
  std::string name = {};
  /// Most user messages the mailbox holds (at least 1). System messages
  /// (down, exit_msg) do not count: they are few and never dropped.
  std::size_t mailbox_capacity = 1024;
  overflow_policy overflow = overflow_policy::park;
  /// The deadline of an ask that gives none.
  std::chrono::nanoseconds ask_timeout = std::chrono::seconds(5);
  /// Start trapping exits (actor_self::trap_exit) before the first message.
  bool trap_exit = false;
  /// Usable stack bytes of the actor's tasklet; 0 = the runtime's default.
  std::size_t stack_size = 0;
};

/// The outcome of a tell.
enum class send_status : std::uint8_t {
  ok,       // queued
  dead,     // the actor has ended: nothing was queued (never waits)
  full,     // overflow_policy::fail and the mailbox is full
  dropped,  // overflow_policy::drop_newest and the mailbox is full
  timeout,  // overflow_policy::park and the deadline passed first (ask only)
};
const char* to_string(send_status s) noexcept;

/// Why an ask has no reply.
enum class ask_error : std::uint8_t {
  timeout,   // no reply before the deadline; a later reply is dropped
  dead,      // the actor ended normally, was killed or shut down first
  failed,    // the actor ended with an exception; the text says which
  full,      // the mailbox refused the request (fail or drop_newest policy)
  no_reply,  // the actor dropped the request without replying
};
const char* to_string(ask_error e) noexcept;

/// Thrown by ask_result::value() when the ask failed.
class ask_failure : public std::runtime_error {
 public:
  ask_failure(ask_error e, const std::string& what) : std::runtime_error(what), error_(e) {}
  ask_error error() const noexcept { return error_; }

 private:
  ask_error error_;
};

/// Mailbox figures of one actor (snapshots).
struct mailbox_stats {
  std::size_t size = 0;            // user messages queued now
  std::size_t capacity = 0;        // actor_options::mailbox_capacity
  std::size_t high_water = 0;      // the most ever queued at once
  std::uint64_t dropped = 0;       // lost to drop_newest or drop_oldest
  std::uint64_t rejected = 0;      // refused by overflow_policy::fail
  std::uint64_t late_replies = 0;  // replies that came after their ask gave up
};

}  // namespace taiga
