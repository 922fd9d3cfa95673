// The echo servers of bench_tcp_echo (tests/bench/tcp_echo.cpp). Each runs
// in a child process of its own (`bench_tcp_echo --serve KIND --threads N`),
// so that its CPU time can be read alone from /proc/PID/stat. A server
// listens on 127.0.0.1 port 0 (ephemeral), calls report_port(port) once it
// accepts, and echoes every byte it reads back on the same connection until
// the process is killed (SIGTERM).
#pragma once

namespace taiga_bench {

/// Boost.Asio callback server: `threads` threads, each with its own
/// io_context and its own acceptor on the same port (SO_REUSEPORT).
/// tests/bench/peers/asio_echo_server.cpp.
[[noreturn]] void serve_asio_echo(unsigned threads, void (*report_port)(unsigned short));

}  // namespace taiga_bench

#ifdef TAIGA_BENCH_HAVE_NET
/// The taiga tasklet server (tests/bench/tcp_echo_taiga.cpp): a runtime of
/// `workers` workers, one tasklet per connection. Serves echo on an
/// ephemeral port; writes the bound port with report_port(port) before
/// serving; never returns.
[[noreturn]] void serve_taiga_echo(unsigned workers, void (*report_port)(unsigned short));
#endif
