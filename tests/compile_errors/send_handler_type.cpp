// Must not compile: a send handler that takes the wrong type.
#include <string>
#include <taiga/channels.hpp>

void f(const taiga::channel<int>& ch) {
  taiga::select(taiga::on_send(ch, 1, [](std::string) {}));
}
