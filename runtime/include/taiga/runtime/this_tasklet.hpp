#pragma once

#include <chrono>
#include <stop_token>
#include <string>
#include <taiga/runtime/source_location.hpp>
#include <taiga/runtime/tasklet.hpp>

namespace taiga::this_tasklet {

/// Lets other ready tasklets run; the caller goes to the back of its
/// worker's ready queue. Also a kill point. @pre in a tasklet.
void yield();

/// Parks the calling tasklet for at least `d`. Kill points. @pre in a tasklet.
/// The caller's site is where reports say it parked.
void sleep_until(std::chrono::steady_clock::time_point t,
                 detail::call_site site = detail::call_site::current());
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d,
               detail::call_site site = detail::call_site::current()) {
  sleep_until(
      std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::steady_clock::duration>(d),
      site);
}

/// The calling tasklet's stop token (tasklet::request_stop; the same one a
/// callable taking a std::stop_token gets). @pre in a tasklet.
std::stop_token get_stop_token();
/// get_stop_token().stop_requested(); false outside tasklets.
bool stop_requested() noexcept;

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
