// Must not compile: .when() on a case kept in a variable.
#include <taiga/channels.hpp>

void f(const taiga::channel<int>& ch, bool guard) {
  auto c = taiga::on_receive(ch);
  taiga::select(c.when(guard));
}
