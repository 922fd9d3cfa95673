// Must not compile: asking an actor with a message it takes no request<Q, R> for.
#include <taiga/channels/actor.hpp>
#include <variant>

struct add {
  int n;
};
struct get {};
using counter_msg = std::variant<add, taiga::request<get, int>>;

void f(const taiga::actor_ref<counter_msg>& c) {
  (void)c.ask(add{1});
}
