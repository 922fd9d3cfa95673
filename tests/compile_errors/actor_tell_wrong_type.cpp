// Must not compile: telling an actor a type its message variant does not hold.
#include <string>
#include <taiga/channels/actor.hpp>
#include <variant>

struct add {
  int n;
};
using counter_msg = std::variant<add>;

void f(const taiga::actor_ref<counter_msg>& c) {
  (void)c.tell(std::string("add 1"));
}
