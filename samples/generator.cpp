// Fibers without a scheduler: a generator, and python-fibers' switch rules.
#include <taiga/runtime.hpp>

#include <cstdio>
#include <string>

int main() {
  // [doc:generator]
  taiga::generator<long> fib([](auto& yield) {
    long a = 0, b = 1;
    for (int i = 0; i < 10; ++i) {
      yield(a);
      long next = a + b;
      a = b;
      b = next;
    }
  });
  long sum = 0;
  for (long v : fib) sum += v;
  // [/doc]
  std::printf("sum of the first 10 Fibonacci numbers: %ld\n", sum);

  // A raw fiber: values go in through switch_to and come back to the parent.
  taiga::fiber echo([] {
    std::any got = taiga::fiber::current().parent()->switch_to(std::string("ready"));
    return std::any(std::any_cast<std::string>(got) + "!");
  });
  auto first = std::any_cast<std::string>(echo.switch_to());
  auto last = std::any_cast<std::string>(echo.switch_to(std::string("done")));
  std::printf("%s, %s\n", first.c_str(), last.c_str());
  return sum == 88 && first == "ready" && last == "done!" ? 0 : 1;
}
