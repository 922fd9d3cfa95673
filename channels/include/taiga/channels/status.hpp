#pragma once

#include <cstdint>

namespace taiga {

/// The outcome of a channel or queue operation that can fail in an expected
/// way (closed, timed out, would block). Failures that are bugs throw.
enum class channel_status : std::uint8_t {
  ok,           // done
  closed,       // the channel is closed (and, for receives, drained)
  timeout,      // the deadline passed first
  would_block,  // a try_ operation that could not complete at once
};
const char* to_string(channel_status s) noexcept;

}  // namespace taiga
