// machine: what the host charges right now for the operations that taiga's
// figures are made of, so that a figure can be read against the hour it was
// taken in. On our VMs these move by 2-4x between hours (a syscall, a fresh
// page, a cross-thread wake-up: ../shared/machine.md), and spawn_join's
// first round or alive_1m's time follow them. scripts/bench runs this one
// first when it runs them all.
//
//   bench_machine
//
// Figures:
//   populate_huge      MADV_POPULATE_WRITE over 2 MiB chunks of a fresh
//                      mapping, each marked MADV_HUGEPAGE first, per MiB
//   populate_4k        the same in 4 KiB pages, per MiB (the slab populates
//                      its chunks as whichever of the two is cheaper)
//   touch_after_populate  the first write from user space to each page that
//                      MADV_POPULATE_WRITE just faulted in, per page
//   first_touch        a write to each 4 KiB page of a fresh mapping, per page
//   syscall            getppid() through syscall(2), per call
//   futex_round_trip   two threads passing a turn through one futex word
//   context_round_trip two Boost.Context contexts jumping to each other and
//                      back (jump_fcontext, called plainly): the floor under
//                      taiga's `switch`, which moves with the hour as well
//
// Memory that stayed free for a few seconds has been reported to the host, so
// the page figures of a run after idle are the "first after idle" ones. A
// figure the kernel cannot measure (no THP, Linux before 5.14) is left out,
// with a line on stderr.
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "bench_util.hpp"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace tb = taiga_bench;

namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t chunk = 2 * mib;

double syscall_ns() {
  constexpr int n = 100'000;
  auto t0 = tb::clock_type::now();
  for (int i = 0; i < n; ++i) ::syscall(SYS_getppid);
  return tb::ns_since(t0) / n;
}

// A fresh, 2 MiB-aligned anonymous mapping of `bytes`. Never unmapped: what
// one figure freed would be handed straight back to the next one, still
// backed by the host, which is the case these figures must not measure.
char* fresh(std::size_t bytes) {
  void* raw = ::mmap(nullptr, bytes + chunk, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) tb::fail("machine", "mmap failed");
  auto a = (reinterpret_cast<std::uintptr_t>(raw) + chunk - 1) & ~(std::uintptr_t{chunk} - 1);
  return reinterpret_cast<char*>(a);
}
// us per page for one write to each 4 KiB page of [p, p + bytes).
double write_each_page_us(char* p, std::size_t bytes) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto t0 = tb::clock_type::now();
  for (std::size_t off = 0; off < bytes; off += page) static_cast<volatile char*>(p)[off] = 1;
  return tb::ns_since(t0) / 1000.0 / static_cast<double>(bytes / page);
}
double first_touch_us(std::size_t bytes) {
  char* p = fresh(bytes);
  ::madvise(p, bytes, MADV_NOHUGEPAGE);
  return write_each_page_us(p, bytes);
}

// ms per MiB, or a negative value (and why, on stderr) where the kernel
// cannot do it: MADV_POPULATE_WRITE is Linux 5.14+, MADV_HUGEPAGE needs THP.
double populate_ms_per_mib(std::size_t bytes, bool huge) {
  char* p = fresh(bytes);
  if (::madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0 && huge) {
    std::fprintf(stderr, "machine: MADV_HUGEPAGE failed (no transparent huge pages)\n");
    return -1;
  }
  auto t0 = tb::clock_type::now();
  for (std::size_t off = 0; off < bytes; off += chunk) {
    if (::madvise(p + off, chunk, MADV_POPULATE_WRITE) != 0) {
      std::fprintf(stderr, "machine: MADV_POPULATE_WRITE failed (Linux 5.14 or later)\n");
      return -1;
    }
  }
  return tb::ms_since(t0) / static_cast<double>(bytes / mib);
}

// us per page for the first write from user space to a page that
// MADV_POPULATE_WRITE has just faulted in, or a negative value. On bare
// metal, a cache miss. Under a hypervisor that keeps its own page tables for
// the guest's (shadow paging: `pvm_*` symbols in a guest's kernel profile),
// a fault taken by the host, which populating in the guest cannot spare: with
// the populate, the floor per parked tasklet (alive_1m).
double touch_after_populate_us(std::size_t bytes) {
  char* p = fresh(bytes);
  ::madvise(p, bytes, MADV_NOHUGEPAGE);
  if (::madvise(p, bytes, MADV_POPULATE_WRITE) != 0) return -1;
  return write_each_page_us(p, bytes);
}

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 &&
              std::atomic<std::uint32_t>::is_always_lock_free);  // a futex word
long futex(std::atomic<std::uint32_t>& w, int op, std::uint32_t v) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), op | FUTEX_PRIVATE_FLAG, v,
                   nullptr, nullptr, 0);
}

// The turn word says whose turn it is (0: main, 1: the other thread); each
// side sleeps in the kernel until the other hands it the turn, so a round
// trip is two cross-thread wakes and up to two sleeps (a side that finds the
// turn already handed back does not sleep).
double futex_round_trip_us() {
  constexpr int n = 2'000;
  std::atomic<std::uint32_t> turn{0};
  auto wait_for = [&turn](std::uint32_t mine) {
    std::uint32_t v;
    while ((v = turn.load(std::memory_order_acquire)) != mine) futex(turn, FUTEX_WAIT, v);
  };
  auto hand_to = [&turn](std::uint32_t other) {
    turn.store(other, std::memory_order_release);
    futex(turn, FUTEX_WAKE, 1);
  };
  std::thread other([&] {
    for (int i = 0; i < n; ++i) {
      wait_for(1);
      hand_to(0);
    }
  });
  auto t0 = tb::clock_type::now();
  for (int i = 0; i < n; ++i) {
    hand_to(1);
    wait_for(0);
  }
  double us = tb::ns_since(t0) / 1000.0 / n;
  other.join();
  return us;
}

double context_round_trip_ns() {
  namespace bc = boost::context::detail;
  constexpr long n = 5'000'000;
  alignas(64) static char stack[64 * 1024];
  // Bounces every jump straight back; never ends (left suspended at exit).
  bc::fcontext_t ctx = bc::make_fcontext(stack + sizeof stack, sizeof stack, [](bc::transfer_t t) {
    for (;;) t = bc::jump_fcontext(t.fctx, nullptr);
  });
  ctx = bc::jump_fcontext(ctx, nullptr).fctx;  // warm up
  auto t0 = tb::clock_type::now();
  for (long i = 0; i < n; ++i) ctx = bc::jump_fcontext(ctx, nullptr).fctx;
  return tb::ns_since(t0) / n;
}

}  // namespace

int main(int argc, char** argv) {
  (void)tb::parse(argc, argv);
  if (double ms = populate_ms_per_mib(64 * mib, true); ms >= 0)
    tb::report("machine", "populate_huge", ms, "ms_per_MiB");
  if (double ms = populate_ms_per_mib(64 * mib, false); ms >= 0)
    tb::report("machine", "populate_4k", ms, "ms_per_MiB");
  if (double us = touch_after_populate_us(16 * mib); us >= 0)
    tb::report("machine", "touch_after_populate", us, "us");
  tb::report("machine", "first_touch", first_touch_us(16 * mib), "us");
  tb::report("machine", "syscall", syscall_ns(), "ns");
  tb::report("machine", "futex_round_trip", futex_round_trip_us(), "us");
  tb::report("machine", "context_round_trip", context_round_trip_ns(), "ns");
  return 0;
}
