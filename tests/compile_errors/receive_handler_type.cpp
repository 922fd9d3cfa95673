// Must not compile: a receive handler that takes the wrong type.
#include <string>
#include <taiga/channels.hpp>

void f(const taiga::channel<int>& ch) {
  taiga::select(taiga::on_receive(ch, [](std::string) {}));
}
