// Test support: the `tasklets` suite (a runtime per test at each worker
// count, runtime_fixture.hpp), shared by the tasklet test files;
// tasklet_test.cpp instantiates it.
#pragma once

#include <taiga/runtime.hpp>

#include "runtime_fixture.hpp"

class tasklets : public taiga::test::with_workers {};

// Options that keep a new tasklet on the spawner's worker, unstolen, so it
// cannot start before the spawner parks.
inline taiga::spawn_options here() {
  return taiga::spawn_options{.pinned = true, .worker = taiga::this_tasklet::worker()};
}
