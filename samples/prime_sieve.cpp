// The concurrent prime sieve of Newsqueak and Go: a generator tasklet sends
// 2, 3, 4, ... on a channel; the main tasklet takes the first number, which
// is prime, and puts a filter tasklet between the generator and itself that
// drops the multiples of that prime. Each prime found adds a filter to the
// chain. Prints the first N primes (default 100) and checks them against a
// plain sieve of Eratosthenes.
//
//   prime_sieve [--count N]
#include <taiga/channels.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

// [doc:sieve]
// Sends 2, 3, 4, ... until the channel is closed (or the tasklet killed).
void generate(taiga::channel<int> out) {
  for (int i = 2;; ++i)
    if (out.send(i) != taiga::channel_status::ok) return;
}

// Copies `in` to `out`, dropping the multiples of `prime`.
void filter(taiga::channel<int> in, taiga::channel<int> out, int prime) {
  for (int v : in)
    if (v % prime != 0 && out.send(v) != taiga::channel_status::ok) return;
}

std::vector<int> sieve(int count) {
  std::vector<taiga::tasklet<void>> chain;  // every tasklet of the pipeline
  taiga::channel<int> ch;                   // unbuffered: a rendezvous per number
  chain.push_back(taiga::spawn(generate, ch));
  std::vector<int> primes;
  for (int i = 0; i < count; ++i) {
    int prime = *ch.receive();  // the chain never closes on its own
    primes.push_back(prime);
    taiga::channel<int> next;
    chain.push_back(taiga::spawn(filter, ch, next, prime));
    ch = next;
  }
  // The generator and the filters are all parked in send() or receive() now.
  // Kill them (Stackless's kill): each one unwinds from its park point.
  for (auto& t : chain) t.kill();
  for (auto& t : chain) {
    try {
      t.join();
    } catch (const taiga::tasklet_killed&) {
      // expected: join() reports the kill
    }
  }
  return primes;
}
// [/doc]

std::vector<int> reference(int count) {
  std::vector<int> primes;
  for (int limit = 64; static_cast<int>(primes.size()) < count; limit *= 2) {
    std::vector<bool> composite(static_cast<std::size_t>(limit), false);
    primes.clear();
    for (int i = 2; i < limit && static_cast<int>(primes.size()) < count; ++i) {
      if (composite[static_cast<std::size_t>(i)]) continue;
      primes.push_back(i);
      for (long j = static_cast<long>(i) * i; j < limit; j += i)
        composite[static_cast<std::size_t>(j)] = true;
    }
  }
  return primes;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 100;
  if (argc == 3 && std::strcmp(argv[1], "--count") == 0) {
    count = std::atoi(argv[2]);
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: %s [--count N]\n", argv[0]);
    return 2;
  }
  if (count <= 0) {
    std::fprintf(stderr, "prime_sieve: --count must be positive\n");
    return 2;
  }

  taiga::runtime rt;
  std::vector<int> primes = rt.run([count] { return sieve(count); });
  // Tasklets that just finished may still be handing their stacks back on
  // their worker: give them a moment, then none may be left.
  for (int i = 0; i < 500 && rt.report().live_tasklets != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  taiga::runtime_report rep = rt.report();
  rt.shutdown();

  for (std::size_t i = 0; i < primes.size(); ++i)
    std::printf("%d%c", primes[i], (i + 1) % 10 == 0 || i + 1 == primes.size() ? '\n' : ' ');
  if (primes != reference(count)) {
    std::fprintf(stderr, "prime_sieve: WRONG primes\n");
    return 1;
  }
  if (count == 100 && primes.back() != 541) {
    std::fprintf(stderr, "prime_sieve: the 100th prime is 541, got %d\n", primes.back());
    return 1;
  }
  if (rep.live_tasklets != 0) {
    std::fprintf(stderr, "prime_sieve: %zu tasklets left alive\n", rep.live_tasklets);
    return 1;
  }
  std::printf("prime #%d is %d\n", count, primes.back());
  return 0;
}
