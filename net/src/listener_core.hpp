// listener_core.hpp: what tcp_listener and unix_listener share (internal to
// net/src): the acceptor on the creating worker's context, accept's loop
// (drain until EAGAIN, spread the sockets round-robin over the workers'
// contexts, park on readability) and close()'s protocol against a tasklet
// parked in accept. One copy, so that a fix to that protocol lands once.
//
//   L1 close() stores `closing`, then (seq_cst fence) either takes the
//      accept direction's gate itself, when no accept runs, and closes the
//      socket, or cancels the parked accept's wait, whose tasklet then sees
//      `closing` and closes the socket. accept() starts its wait, fences,
//      then re-checks `closing`: either close() finds the wait to cancel
//      or accept sees the flag (Dekker through the two fences).
//   L2 `life` orders close()'s cancel with the accepting tasklet's close
//      of the socket on another thread: Asio's socket is not safe for
//      concurrent use, and a cancel racing a close dereferences reactor
//      state that the close is freeing.
#pragma once

#include <atomic>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/socket_base.hpp>
#include <mutex>
#include <string>
#include <taiga/net/detail/io.hpp>
#include <taiga/runtime/park.hpp>

namespace taiga::net::detail {

template <class Protocol>
struct listener_core {
  explicit listener_core(io_poller& p) : home(&p), acc(p.context()) {}

  /// Accepts one connection, as a `Stream` on the next worker's context
  /// (round-robin); parks while none is queued. operation_aborted once
  /// close() was called. `peer` (optional) receives the peer's endpoint.
  template <class Stream>
  Stream accept(typename Protocol::endpoint* peer, error_code& ec, call_site site) {
    std::unique_lock g(rd.gate);  // E2: one accept at a time; an interruption point
    for (;;) {
      if (closing.load(std::memory_order_acquire)) {
        {
          std::lock_guard lk(life);  // L2
          acc.close(ec);
        }
        ec = asio::error::operation_aborted;
        return {};
      }
      io_poller& target = poller_at(next.fetch_add(1, std::memory_order_relaxed) % poller_count());
      auto sock = peer ? acc.accept(target.context(), *peer, ec) : acc.accept(target.context(), ec);
      if (!ec) return Stream(target, std::move(sock));
      if (ec == asio::error::connection_aborted) continue;  // reset in the queue
      if (ec != asio::error::would_block && ec != asio::error::try_again) return {};
      // Drained: park until the listener is readable again.
      await_op(
          rd, *home, park_cause(park_reason::io_accept, "net accept"),
          taiga::fd_object(acc.native_handle()), nullptr, ec,
          [&](auto&& h) {
            acc.async_wait(asio::socket_base::wait_read, std::move(h));
            std::atomic_thread_fence(std::memory_order_seq_cst);  // L1
            if (closing.load(std::memory_order_relaxed))
              rd.cancel.emit(asio::cancellation_type::terminal);
          },
          site);
      if (ec && ec != asio::error::operation_aborted) return {};
    }
  }

  bool is_open() const noexcept {
    return !closing.load(std::memory_order_acquire) && acc.is_open();
  }

  /// L1: closes the socket now, or has the parked accept close it.
  void close() noexcept {
    closing.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with accept's
    bool idle = false;
    try {
      idle = rd.gate.try_lock();
    } catch (...) {  // a pending kill of the caller: leave it pending
    }
    error_code ec;
    std::unique_lock lk(life);  // L2
    if (idle) {
      acc.close(ec);
      lk.unlock();
      rd.gate.unlock();
    } else {
      acc.cancel(ec);
    }
  }

  io_poller* home;
  asio::basic_socket_acceptor<Protocol, asio::io_context::executor_type> acc;
  direction rd;  // accept's (E2)
  std::atomic<bool> closing{false};
  std::mutex life;                // L2
  std::atomic<unsigned> next{0};  // round-robin over the workers' contexts
};

}  // namespace taiga::net::detail
