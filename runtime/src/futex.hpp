// futex.hpp: the futex(2) call shared by the workers' sleep (scheduler.cpp)
// and plain-thread waits and their wakers (park.cpp).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <ctime>

namespace taiga::internal {

inline long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val,
                  const struct timespec* ts = nullptr) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op | FUTEX_PRIVATE_FLAG, val,
                   ts, nullptr, 0);
}

}  // namespace taiga::internal
