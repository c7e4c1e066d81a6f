#include "proto/error_code.hpp"

#include <array>
#include <utility>

namespace podrelay::proto {
namespace {

constexpr std::array<std::pair<ErrorCode, std::string_view>, 21> names{{
    {ErrorCode::malformed_frame, "MALFORMED_FRAME"},
    {ErrorCode::frame_too_large, "FRAME_TOO_LARGE"},
    {ErrorCode::unknown_type, "UNKNOWN_TYPE"},
    {ErrorCode::handshake_required, "HANDSHAKE_REQUIRED"},
    {ErrorCode::unsupported_version, "UNSUPPORTED_VERSION"},
    {ErrorCode::auth_failed, "AUTH_FAILED"},
    {ErrorCode::unexpected_frame, "UNEXPECTED_FRAME"},
    {ErrorCode::invalid_argument, "INVALID_ARGUMENT"},
    {ErrorCode::too_many_subscriptions, "TOO_MANY_SUBSCRIPTIONS"},
    {ErrorCode::not_supported, "NOT_SUPPORTED"},
    {ErrorCode::draining, "DRAINING"},
    {ErrorCode::subscribe_refused, "SUBSCRIBE_REFUSED"},
    {ErrorCode::publish_buffer_full, "PUBLISH_BUFFER_FULL"},
    {ErrorCode::publish_timeout, "PUBLISH_TIMEOUT"},
    {ErrorCode::outcome_unknown, "OUTCOME_UNKNOWN"},
    {ErrorCode::redis_error, "REDIS_ERROR"},
    {ErrorCode::not_replicated, "NOT_REPLICATED"},
    {ErrorCode::slow_consumer, "SLOW_CONSUMER"},
    {ErrorCode::shutting_down, "SHUTTING_DOWN"},
    {ErrorCode::too_many_connections, "TOO_MANY_CONNECTIONS"},
    {ErrorCode::stream_lost, "STREAM_LOST"},
}};

}  // namespace

std::string_view error_name(ErrorCode code) noexcept {
  for (auto const& [c, n] : names) {
    if (c == code) return n;
  }
  return "UNKNOWN";
}

std::optional<ErrorCode> error_from_name(std::string_view name) noexcept {
  for (auto const& [c, n] : names) {
    if (n == name) return c;
  }
  return std::nullopt;
}

}  // namespace podrelay::proto
