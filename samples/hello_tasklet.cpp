// The README's example: spawn tasklets, join results, kill a sleeper.
#include <taiga/runtime.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

int main() {
  using namespace std::chrono_literals;
  int total = taiga::run([] {
    std::vector<taiga::tasklet<int>> workers;
    for (int i = 1; i <= 10; ++i)
      workers.push_back(taiga::spawn(
          [](int n) {
            taiga::this_tasklet::sleep_for(1ms);  // parks, the worker runs others
            return n * n;
          },
          i));
    auto sleeper = taiga::spawn([] { taiga::this_tasklet::sleep_for(1h); });
    sleeper.kill();  // raises taiga::tasklet_exit at its park point
    int sum = 0;
    for (auto& w : workers) sum += w.join();
    return sum;
  });
  std::printf("sum of squares 1..10 = %d\n", total);
  return total == 385 ? 0 : 1;
}
