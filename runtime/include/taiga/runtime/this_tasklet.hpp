#pragma once

#include <chrono>
#include <string>
#include <taiga/runtime/source_location.hpp>
#include <taiga/runtime/tasklet.hpp>

namespace taiga::this_tasklet {

/// Lets other ready tasklets run; the caller goes to the back of its
/// worker's ready queue. Also a kill point. @pre in a tasklet.
void yield();

/// Parks the calling tasklet for at least `d`. Kill points. @pre in a tasklet.
void sleep_until(std::chrono::steady_clock::time_point t);
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(std::chrono::steady_clock::now() +
              std::chrono::ceil<std::chrono::steady_clock::duration>(d));
}

/// The id of the calling tasklet; 0 outside tasklets.
tasklet_id get_id() noexcept;
std::string name();
void set_name(std::string name);
taiga::source_location spawn_site();
/// The worker the calling tasklet runs on now (it may change after any park
/// point unless the tasklet is pinned). -1 outside workers.
int worker() noexcept;
/// True inside a tasklet.
bool in_tasklet() noexcept;

}  // namespace taiga::this_tasklet
