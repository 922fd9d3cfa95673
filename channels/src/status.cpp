#include <taiga/channels/status.hpp>

namespace taiga {

const char* to_string(channel_status s) noexcept {
  switch (s) {
    case channel_status::ok:
      return "ok";
    case channel_status::closed:
      return "closed";
    case channel_status::timeout:
      return "timeout";
    case channel_status::would_block:
      return "would_block";
  }
  return "?";
}

}  // namespace taiga
