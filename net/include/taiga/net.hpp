// taiga::net: Asio-backed endpoints that park the calling tasklet while it
// waits on I/O. See docs/guide/networking.md.
#pragma once

#include <taiga/net/serve.hpp>
#include <taiga/net/signal.hpp>
#include <taiga/net/stream.hpp>
#include <taiga/net/tcp.hpp>
#include <taiga/net/tls.hpp>
#include <taiga/net/udp.hpp>
#include <taiga/net/unix.hpp>
