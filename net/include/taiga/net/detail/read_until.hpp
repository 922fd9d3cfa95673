// Internal to taiga::net (installed only because the stream templates use
// it): the one loop behind every stream's read_until (tcp_stream,
// unix_stream, tls_stream). Users must not name taiga::net::detail.
#pragma once

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace taiga::net::detail {

/// Appends to `buf` through `read(void* p, std::size_t n, error_code& ec)`
/// (the stream's read with its direction's lock held) until `buf` holds
/// `delim`; returns the length up to and including it, and bytes after it
/// stay in `buf` for the next call. asio::error::message_size once `buf`
/// would pass `max` bytes without a delimiter. Reads at most 4 KiB at a
/// time, so a line protocol's buffer grows with its lines, not its reads;
/// and searches only the new bytes (plus a delimiter's length of overlap).
template <class Read>
std::size_t read_until_with(std::string& buf, std::string_view delim, std::size_t max,
                            boost::system::error_code& ec, Read&& read) {
  ec = {};
  std::size_t searched = 0;
  for (;;) {
    std::size_t from = searched >= delim.size() ? searched - delim.size() + 1 : 0;
    std::size_t pos = buf.find(delim, from);
    if (pos != std::string::npos) return pos + delim.size();
    searched = buf.size();
    if (buf.size() >= max) {
      ec = boost::asio::error::message_size;
      return 0;
    }
    std::size_t old = buf.size();
    std::size_t chunk = std::min<std::size_t>(max - old, 4096);
    buf.resize(old + chunk);
    std::size_t n = read(buf.data() + old, chunk, ec);
    buf.resize(old + n);
    if (ec) return 0;
  }
}

}  // namespace taiga::net::detail
