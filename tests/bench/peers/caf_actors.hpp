// The CAF 0.17 peers of the actor benchmarks (caf_actors.cpp): the same
// programs written with CAF's event-based actors, built only when CAF is
// found (tests/bench/CMakeLists.txt), for the *_caf rows printed beside
// taiga's in the same run.
#pragma once

namespace caf_peer {

/// One pair bouncing a counter on a one-thread scheduler: ns per round trip.
double pingpong_ns(long round_trips);
/// `pairs` pairs, `round_trips` each, on `threads` threads: messages per second.
double pairs_msgs_per_s(int pairs, long round_trips, unsigned threads);
/// request/response between two actors on one thread: ns per round trip.
double ask_ns(long asks);
struct spawn_figures {
  double ns_per_actor;
  double rss_bytes_per_actor;
};
/// `n` actors spawned, each sent one message on which it quits.
spawn_figures spawn(long n, unsigned threads);
/// `n` actors in a ring passing a token `rounds` times around: ns per hop.
double ring_ns_per_hop(int n, int rounds, unsigned threads);

}  // namespace caf_peer
