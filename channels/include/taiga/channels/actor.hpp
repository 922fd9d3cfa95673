// taiga actors: typed mailboxes, request/reply with deadlines, links and
// monitors (Erlang/OTP's processes, CAF's typed actors, Akka Typed's
// behaviours), on ordinary tasklets.
//
//     using counter_msg = std::variant<add, taiga::request<get, int>>;
//     auto c = taiga::spawn_actor([](taiga::actor_self<counter_msg>& self) { ... });
//     c.tell(add{2});                              // a compile error for a type not in counter_msg
//     taiga::ask_result<int> r = c.ask(get{});     // reply, or timeout / dead / failed
//
// An actor is a detached tasklet: its name, kill, locals and trace apply,
// and actor_ref::join() waits for its end. What is guaranteed about
// delivery, order and failure is in docs/design/actors.md; the guide is
// docs/guide/actors.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <taiga/channels/actor_types.hpp>
#include <taiga/channels/detail/actor_core.hpp>
#include <taiga/runtime/errors.hpp>
#include <taiga/runtime/tasklet.hpp>
#include <taiga/runtime/this_tasklet.hpp>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace taiga {

template <class Msg>
class actor_ref;
template <class Msg>
class actor_self;

/// The handle with which an actor answers one ask: call it once with the
/// reply. A second call throws usage_error. Dropped unanswered, it answers
/// the asker with ask_error::no_reply (unless an exception is unwinding the
/// actor: then the actor's end, or the deadline, answers). Move-only.
template <class R>
class reply_to {
 public:
  reply_to() noexcept = default;
  explicit reply_to(std::shared_ptr<detail::actor_impl::ask_state<R>> st) noexcept
      : st_(std::move(st)) {}
  reply_to(reply_to&&) noexcept = default;
  reply_to& operator=(reply_to&& o) noexcept {
    if (this != &o) {
      drop();
      st_ = std::move(o.st_);
    }
    return *this;
  }
  ~reply_to() { drop(); }

  /// Sends the reply. A reply that comes after the asker gave up is dropped
  /// and counted (mailbox_stats::late_replies), never seen by another ask.
  /// @throws usage_error if a reply was already sent with this handle.
  void operator()(R v) {
    if (!st_)
      throw usage_error("taiga::reply_to: a reply was already sent (each ask takes one reply)");
    auto st = std::move(st_);
    st->deliver(std::move(v));
  }
  /// True until the reply is sent.
  bool pending() const noexcept { return st_ != nullptr; }

 private:
  void drop() noexcept {
    if (st_) std::exchange(st_, nullptr)->broken();
  }
  std::shared_ptr<detail::actor_impl::ask_state<R>> st_;
};

/// A request: a message `Q` that expects a reply `R`. Put request<Q, R> in
/// an actor's message variant to let callers ask(Q{...}) it; the actor
/// answers with `req.reply(r)`.
template <class Q, class R>
struct request {
  static_assert(!std::is_void_v<R>, "taiga::request<Q, R>: R must be a value type");
  Q value;
  reply_to<R> reply;
};

namespace detail::actor_impl {

template <class T>
struct is_variant : std::false_type {};
template <class... M>
struct is_variant<std::variant<M...>> : std::true_type {};

template <class T, class Msg>
struct accepts : std::is_same<T, Msg> {};
template <class T, class... M>
struct accepts<T, std::variant<M...>> : std::disjunction<std::is_same<T, M>...> {};

/// The reply type of request<Q, R> in Msg (void if none; `ambiguous` if
/// several).
struct ambiguous {};
template <class Q, class M>
struct reply_of_one {
  using type = void;
};
template <class Q, class R>
struct reply_of_one<Q, request<Q, R>> {
  using type = R;
};
template <class Q, class Msg>
struct reply_of : reply_of_one<Q, Msg> {};
template <class Q, class... M>
struct reply_of<Q, std::variant<M...>> {
  template <class Acc, class Next>
  struct step {
    using type = std::conditional_t<std::is_void_v<Next>, Acc,
                                    std::conditional_t<std::is_void_v<Acc>, Next, ambiguous>>;
  };
  template <class Acc, class... Rest>
  struct fold {
    using type = Acc;
  };
  template <class Acc, class First, class... Rest>
  struct fold<Acc, First, Rest...>
      : fold<typename step<Acc, typename reply_of_one<Q, First>::type>::type, Rest...> {};
  using type = typename fold<void, M...>::type;
};

/// The Msg of a behaviour `void(actor_self<Msg>&, A...)` (deduced from a
/// non-generic callable).
template <class T>
struct self_msg {};
template <class M>
struct self_msg<actor_self<M>&> {
  using type = M;
};
// SFINAE-friendly all the way: for a first argument that is not a
// behaviour (actor_options), the overload taking it drops out quietly also
// where a compiler substitutes into the return type before it checks the
// requires-clause (clang 14).
template <class F, class = void>
struct first_param {};
template <class F>
struct first_param<F, std::void_t<decltype(&F::operator())>>
    : first_param<decltype(&F::operator())> {};
template <class C, class R, class P, class... A>
struct first_param<R (C::*)(P, A...) const, void> {
  using type = P;
};
template <class C, class R, class P, class... A>
struct first_param<R (C::*)(P, A...), void> {
  using type = P;
};
template <class R, class P, class... A>
struct first_param<R (*)(P, A...), void> {
  using type = P;
};
template <class R, class P, class... A>
struct first_param<R(P, A...), void> {
  using type = P;
};
struct deduce {};  // spawn_actor's default Msg: take it from the behaviour
template <class F, class = void>
struct deduced_msg {};
template <class F>
struct deduced_msg<F, std::void_t<typename self_msg<typename first_param<F>::type>::type>> {
  using type = typename self_msg<typename first_param<F>::type>::type;
};
template <class Msg, class F>
struct resolve_msg {
  using type = Msg;
};
template <class F>
struct resolve_msg<deduce, F> : deduced_msg<std::remove_cvref_t<F>> {};

/// What actor_self::exit throws (not a std::exception: user code that
/// catches std::exception lets it through).
struct exit_request {
  exit_reason reason;
};

/// The callable of an actor's tasklet.
template <class Msg, class F, class... A>
struct actor_body {
  std::shared_ptr<mailbox<Msg>> box;
  F fn;
  std::tuple<A...> args;

  actor_body(std::shared_ptr<mailbox<Msg>> b, F&& f, std::tuple<A...>&& a)
      : box(std::move(b)), fn(std::move(f)), args(std::move(a)) {}
  actor_body(actor_body&&) noexcept = default;
  actor_body& operator=(actor_body&&) = delete;
  // The runtime destroys the callable unrun when the tasklet is killed
  // before its first run (runtime shutdown): the actor still ends, once.
  ~actor_body() {
    if (box && !box->ended())
      box->finish(exit_reason{exit_kind::shutdown, {}, "the actor never ran"});
  }

  void operator()() {
    std::shared_ptr<mailbox<Msg>> b = box;
    if (!b->start()) {
      b->finish(b->kill_reason());
      return;
    }
    exit_reason r;
    try {
      actor_self<Msg> self(b);
      std::apply([&](A&... a) { std::invoke(fn, self, std::move(a)...); }, args);
    } catch (const exit_request& e) {
      r = e.reason;
    } catch (const tasklet_exit&) {
      // Swallowed: the actor's end is reported through its record (join,
      // monitors, links), not through a tasklet nobody joins.
      r = b->kill_reason();
    } catch (...) {
      r = current_exception_reason();
    }
    b->finish(std::move(r));
  }
};

[[noreturn]] void throw_type_mismatch(const char* where, const std::string& name,
                                      const actor_base& b, const char* wanted);

}  // namespace detail::actor_impl

/// What an ask returns: the reply, or why there is none.
template <class R>
class ask_result {
 public:
  ask_result(R v) : value_(std::move(v)) {}  // NOLINT: a reply converts
  ask_result(ask_error e, std::string text) : error_(e), text_(std::move(text)) {}

  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  /// The reply. @throws ask_failure (with error() and what()) if there is none.
  R& value() & {
    if (!value_) throw ask_failure(error_, text_);
    return *value_;
  }
  const R& value() const& {
    if (!value_) throw ask_failure(error_, text_);
    return *value_;
  }
  /// On a temporary: the reply moved out (by value, so that
  /// `for (auto& x : *ref.ask(q))` does not dangle).
  R value() && { return std::move(value()); }
  R& operator*() & { return value(); }
  const R& operator*() const& { return value(); }
  R operator*() && { return std::move(value()); }
  R* operator->() { return &value(); }
  const R* operator->() const { return &value(); }
  /// Why there is no reply (meaningless when ok()).
  ask_error error() const noexcept { return error_; }
  /// The error in words: for ask_error::failed, the actor's exception.
  const std::string& what() const noexcept { return text_; }

 private:
  std::optional<R> value_;
  ask_error error_ = ask_error::timeout;
  std::string text_;
};

/// A typed handle to an actor that accepts `Msg` (one type or a
/// std::variant of types). Cheap to copy; compares equal for the same
/// actor. Keeps the actor's record alive, not the actor: an actor runs until
/// its behaviour returns, throws or is killed, whoever holds refs.
/// @threadsafe
template <class Msg>
class actor_ref {
  using box_type = detail::actor_impl::mailbox<Msg>;

 public:
  using message_type = Msg;

  actor_ref() noexcept = default;
  explicit actor_ref(std::shared_ptr<box_type> b) noexcept : box_(std::move(b)) {}

  /// Queues `msg` (fire and forget), by the actor's overflow policy.
  /// `T` must be `Msg` or one of its alternatives: anything else is a
  /// compile error.
  /// @returns ok; dead at once if the actor has ended; full, dropped per policy.
  /// @suspends only with overflow_policy::park on a full mailbox (a kill
  ///           point; a plain thread blocks), until there is room or the
  ///           actor ends.
  template <class T>
  send_status tell(T&& msg, detail::op_site at = detail::op_site::current()) const {
    static_assert(detail::actor_impl::accepts<std::remove_cvref_t<T>, Msg>::value,
                  "taiga::actor_ref::tell: the actor does not accept this message type (it is "
                  "neither the actor's Msg nor one of its alternatives)");
    require("tell");
    Msg m(std::forward<T>(msg));
    return box_->push(m, nullptr, at);
  }

  /// Sends `q` as a request<Q, R> and waits for the reply, at most `timeout`
  /// (default: the actor's actor_options::ask_timeout). `R` is deduced from
  /// the one request<Q, R> among Msg's alternatives, or given.
  /// @returns the reply, or ask_error::timeout (a later reply is dropped
  ///          and counted), dead / failed (the actor ended first; failed
  ///          carries its exception), full (the mailbox refused it),
  ///          no_reply (it dropped the request).
  /// @throws usage_error outside a tasklet (an ask parks); tasklet_exit if
  ///         the caller is killed meanwhile (the reply is then dropped).
  /// @suspends yes; a kill point.
  template <class R = void, class Q>
  auto ask(Q&& q, std::chrono::nanoseconds timeout,
           detail::op_site at = detail::op_site::current()) const {
    return ask_impl<R>(std::forward<Q>(q), timeout, at);
  }
  template <class R = void, class Q>
  auto ask(Q&& q, detail::op_site at = detail::op_site::current()) const {
    require("ask");
    return ask_impl<R>(std::forward<Q>(q), box_->ask_timeout(), at);
  }

  /// Ends the actor with exit_kind::killed (see any_actor_ref::kill).
  bool kill() const {
    require("kill");
    return box_->kill(exit_kind::killed);
  }
  /// Waits for the actor's end and returns why. A kill point.
  exit_reason join(detail::call_site site = detail::call_site::current()) const {
    require("join");
    return box_->join(site);
  }
  bool alive() const noexcept { return box_ != nullptr && !box_->ended(); }
  std::uint64_t id() const noexcept { return box_ ? box_->id() : 0; }
  std::string name() const { return box_ ? box_->name() : std::string(); }
  /// User messages queued now (a snapshot).
  std::size_t size() const { return box_ ? box_->size() : 0; }
  mailbox_stats stats() const { return box_ ? box_->stats() : mailbox_stats{}; }

  operator any_actor_ref() const noexcept { return any_actor_ref(box_); }  // NOLINT
  explicit operator bool() const noexcept { return box_ != nullptr; }
  friend bool operator==(const actor_ref& a, const actor_ref& b) noexcept {
    return a.box_ == b.box_;
  }

 private:
  void require(const char* what) const {
    if (!box_) throw usage_error(std::string("taiga::actor_ref::") + what + " on an empty ref");
  }

  template <class R0, class Q>
  auto ask_impl(Q&& q, std::chrono::nanoseconds timeout, detail::op_site at) const {
    using Qd = std::remove_cvref_t<Q>;
    using R = std::conditional_t<std::is_void_v<R0>,
                                 typename detail::actor_impl::reply_of<Qd, Msg>::type, R0>;
    static_assert(!std::is_same_v<R, detail::actor_impl::ambiguous>,
                  "taiga::actor_ref::ask: the actor accepts several request<Q, R> for this Q; "
                  "name the reply type: ask<R>(q)");
    static_assert(!std::is_void_v<R>,
                  "taiga::actor_ref::ask: the actor accepts no request<Q, R> for this message "
                  "type Q");
    static_assert(detail::actor_impl::accepts<request<Qd, R>, Msg>::value,
                  "taiga::actor_ref::ask<R>: the actor accepts no request<Q, R> with this Q and R");
    require("ask");
    if (!this_tasklet::in_tasklet())
      throw usage_error(
          "taiga::actor_ref::ask called outside a tasklet (an ask parks until the reply: ask "
          "from a tasklet or an actor)");
    using state = detail::actor_impl::ask_state<R>;
    const auto dl = detail::deadline_after(timeout);
    auto st = std::make_shared<state>(box_);
    if (!box_->register_ask(*st)) return ask_result<R>(st->error(), std::move(st->text()));
    struct done {
      box_type& b;
      state& s;
      ~done() {
        s.abandon();
        b.unregister_ask(s);
      }
    } guard{*box_, *st};
    {
      Msg m(request<Qd, R>{Qd(std::forward<Q>(q)), reply_to<R>(st)});
      switch (box_->push(m, &dl, at)) {
        case send_status::ok:
          break;
        case send_status::dead: {
          auto e = detail::actor_impl::actor_base::error_for(*box_->reason());
          return ask_result<R>(e.first, std::move(e.second));
        }
        case send_status::timeout:
          return ask_result<R>(ask_error::timeout, "taiga: ask timed out waiting for mailbox room");
        case send_status::full:
        case send_status::dropped:
          return ask_result<R>(ask_error::full, "taiga: the actor's mailbox is full");
      }
    }
    st->await(dl, at);
    switch (st->outcome()) {
      case state::state::replied:
        return ask_result<R>(std::move(*st->value()));
      case state::state::failed:
        return ask_result<R>(st->error(), std::move(st->text()));
      default:
        return ask_result<R>(ask_error::timeout, "taiga: ask timed out");
    }
  }

  template <class M>
  friend actor_ref<M> actor_ref_cast(const any_actor_ref& r);
  std::shared_ptr<box_type> box_;
};

/// The typed ref behind an any_actor_ref.
/// @throws usage_error naming both types if the actor does not take `Msg`.
template <class Msg>
actor_ref<Msg> actor_ref_cast(const any_actor_ref& r) {
  if (!r) return actor_ref<Msg>();
  if (r.base()->msg_type() != typeid(Msg))
    detail::actor_impl::throw_type_mismatch("actor_ref_cast", r.name(), *r.base(),
                                            typeid(Msg).name());
  return actor_ref<Msg>(std::static_pointer_cast<detail::actor_impl::mailbox<Msg>>(r.base()));
}

/// What an actor's behaviour gets as its first argument: its mailbox (the
/// receive calls) and its links and monitors. Only the actor itself uses it.
template <class Msg>
class actor_self {
  using box_type = detail::actor_impl::mailbox<Msg>;

 public:
  explicit actor_self(std::shared_ptr<box_type> b) noexcept : box_(std::move(b)) {}
  actor_self(const actor_self&) = delete;
  actor_self& operator=(const actor_self&) = delete;

  /// The next user message, parking until one comes. A kill point.
  Msg receive(detail::op_site at = detail::op_site::current()) {
    std::optional<Msg> m;
    (void)box_->receive(m, nullptr, none, nullptr, at);
    return std::move(*m);
  }
  /// The next user message, or std::nullopt after `d`.
  template <class Rep, class Period>
  std::optional<Msg> receive_for(std::chrono::duration<Rep, Period> d,
                                 detail::op_site at = detail::op_site::current()) {
    std::optional<Msg> m;
    const auto dl = detail::deadline_after(d);
    (void)box_->receive(m, nullptr, none, &dl, at);
    return m;
  }
  /// The next user message if one is queued now.
  std::optional<Msg> try_receive() { return receive_for(std::chrono::nanoseconds(0)); }

  /// The visitor form: calls `v` with the next message. User messages are
  /// visited (every alternative of a variant Msg must be accepted); system
  /// messages (down, exit_msg) are taken only if `v` accepts their type,
  /// and before user messages; others stay queued.
  template <class V>
  requires(!std::is_convertible_v<V, detail::op_site>) void receive(
      V&& v, detail::op_site at = detail::op_site::current()) {
    (void)visit_next(v, nullptr, at);
  }
  /// The visitor form with a time limit: false after `d` with nothing
  /// received, having called `v(receive_timeout{})` if `v` takes it.
  template <class Rep, class Period, class V>
  bool receive_for(std::chrono::duration<Rep, Period> d, V&& v,
                   detail::op_site at = detail::op_site::current()) {
    const auto dl = detail::deadline_after(d);
    if (visit_next(v, &dl, at)) return true;
    if constexpr (std::is_invocable_v<V&, receive_timeout>) v(receive_timeout{});
    return false;
  }

  /// This actor's ref.
  actor_ref<Msg> ref() const noexcept { return actor_ref<Msg>(box_); }
  std::uint64_t id() const noexcept { return box_->id(); }
  const std::string& name() const noexcept { return box_->name(); }
  mailbox_stats stats() const { return box_->stats(); }

  /// Delivers one down{other, reason} when `other` ends; at once if it has.
  void monitor(const any_actor_ref& other) const { base_of(other)->add_monitor(box_); }
  /// Links this actor and `other`: an abnormal end of either kills the
  /// other, unless it traps exits (then it gets an exit_msg). Linking to an
  /// actor that has ended delivers its exit signal at once.
  void link(const any_actor_ref& other) const { box_->link(base_of(other)); }
  void unlink(const any_actor_ref& other) const { box_->unlink(base_of(other)); }
  /// While on, exit signals from links arrive as exit_msg instead of
  /// killing this actor.
  void trap_exit(bool on) const noexcept { box_->set_trap_exit(on); }
  bool trapping_exit() const noexcept { return box_->trap_exit(); }
  /// Ends this actor now with `r` (its destructors run as the exception
  /// unwinds): monitors, links and joiners see `r`.
  [[noreturn]] void exit(exit_reason r) const {
    throw detail::actor_impl::exit_request{std::move(r)};
  }

 private:
  static constexpr auto none = [](const detail::actor_impl::system_message&) { return false; };
  static const std::shared_ptr<detail::actor_impl::actor_base>& base_of(const any_actor_ref& r) {
    if (!r) throw usage_error("taiga::actor_self: monitor or link with an empty ref");
    return r.base();
  }

  template <class V>
  bool visit_next(V& v, const detail::sync_clock::time_point* dl, detail::op_site at) {
    constexpr bool takes_down = std::is_invocable_v<V&, down&>;
    constexpr bool takes_exit = std::is_invocable_v<V&, exit_msg&>;
    auto accepts = [](const detail::actor_impl::system_message& m) {
      return std::holds_alternative<down>(m) ? takes_down : takes_exit;
    };
    std::optional<Msg> m;
    std::optional<detail::actor_impl::system_message> s;
    if (!box_->receive(m, (takes_down || takes_exit) ? &s : nullptr, accepts, dl, at)) return false;
    if (s) {
      std::visit(
          [&](auto& x) {
            if constexpr (std::is_invocable_v<V&, decltype(x)>) v(x);
          },
          *s);
    } else if constexpr (detail::actor_impl::is_variant<Msg>::value) {
      std::visit(v, *m);
    } else {
      v(*m);
    }
    return true;
  }

  std::shared_ptr<box_type> box_;
};

/// Spawns an actor running `behaviour(self, args...)` on a new tasklet of
/// the current runtime and returns its ref. `Msg` is deduced from the
/// behaviour's first parameter (`actor_self<Msg>&`) or given:
/// `spawn_actor<Msg>(generic_lambda)`. The arguments are moved into the
/// actor. Its end (return: normal; an exception; a kill) goes to its
/// monitors, links and joiners; an exception never reaches the runtime's
/// error handler.
/// @throws usage_error outside a runtime (as spawn).
template <class Msg = detail::actor_impl::deduce, class F, class... A>
requires(!std::is_same_v<std::remove_cvref_t<F>, actor_options>)
    actor_ref<typename detail::actor_impl::resolve_msg<Msg, F>::type> spawn_actor(F&& behaviour,
                                                                                  A&&... args) {
  return spawn_actor<Msg>(actor_options{}, std::forward<F>(behaviour), std::forward<A>(args)...);
}

/// spawn_actor with options (name, mailbox capacity and overflow policy,
/// default ask timeout, trap_exit, stack size).
template <class Msg = detail::actor_impl::deduce, class F, class... A>
actor_ref<typename detail::actor_impl::resolve_msg<Msg, F>::type> spawn_actor(
    const actor_options& o, F&& behaviour, A&&... args) {
  using M = typename detail::actor_impl::resolve_msg<Msg, F>::type;
  using body = detail::actor_impl::actor_body<M, std::decay_t<F>, std::decay_t<A>...>;
  if (o.mailbox_capacity == 0)
    throw usage_error("taiga::spawn_actor: mailbox_capacity must be >= 1");
  auto box = std::make_shared<detail::actor_impl::mailbox<M>>(o);
  spawn_options so;
  so.name = o.name;
  so.stack_size = o.stack_size;
  actor_ref<M> ref(box);
  detail::spawn_at(nullptr, &so, detail::call_site::current(),
                   body(std::move(box), std::decay_t<F>(std::forward<F>(behaviour)),
                        std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)))
      .detach();
  return ref;
}

// ---- registry ---------------------------------------------------------------

/// Names an actor process-wide. False if the name already names a live
/// actor, or `ref` has ended. The name is removed when the actor ends.
/// @threadsafe
bool register_actor(const std::string& name, const any_actor_ref& ref);
/// Removes a name; false if it named nothing.
bool unregister_actor(const std::string& name);
/// The actor a name names, untyped (std::nullopt if none).
std::optional<any_actor_ref> whereis(const std::string& name);
/// The actor a name names, as an actor_ref<Msg>.
/// @returns std::nullopt if the name names nothing.
/// @throws usage_error naming both types if the actor does not take `Msg`.
template <class Msg>
std::optional<actor_ref<Msg>> whereis(const std::string& name) {
  std::optional<any_actor_ref> r = whereis(name);
  if (!r) return std::nullopt;
  if (r->base()->msg_type() != typeid(Msg))
    detail::actor_impl::throw_type_mismatch("whereis", name, *r->base(), typeid(Msg).name());
  return actor_ref_cast<Msg>(*r);
}

}  // namespace taiga
