// Must not compile: a send case that refers to an rvalue, passed as an lvalue.
#include <memory>
#include <taiga/channels.hpp>

void f(const taiga::channel<std::unique_ptr<int>>& ch, std::unique_ptr<int> p) {
  auto c = taiga::on_send(ch, std::move(p));
  taiga::select(c);
}
