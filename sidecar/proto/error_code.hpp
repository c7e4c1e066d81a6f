// Protocol error codes of proto/PROTOCOL.md section 4. The hundreds digit is the consequence:
// 1xx close the connection, 2xx refuse one request, 3xx nack one publish, 4xx GOAWAY reasons.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace podrelay::proto {

enum class ErrorCode : std::uint16_t {
  malformed_frame = 100,
  frame_too_large = 101,
  unknown_type = 102,
  handshake_required = 103,
  unsupported_version = 104,
  auth_failed = 105,
  unexpected_frame = 106,
  invalid_argument = 200,
  too_many_subscriptions = 201,
  not_supported = 202,
  draining = 203,
  subscribe_refused = 204,
  publish_buffer_full = 300,
  publish_timeout = 301,
  outcome_unknown = 302,
  redis_error = 303,
  not_replicated = 304,
  slow_consumer = 400,
  shutting_down = 401,
  too_many_connections = 402,
  stream_lost = 403,
};

// The spec's upper-case name, e.g. "FRAME_TOO_LARGE"; "UNKNOWN" for codes not in the table.
std::string_view error_name(ErrorCode code) noexcept;
std::optional<ErrorCode> error_from_name(std::string_view name) noexcept;

// True for the codes after which the sidecar closes the connection.
constexpr bool closes_connection(ErrorCode code) noexcept {
  auto const v = static_cast<std::uint16_t>(code);
  return (v >= 100 && v < 200) || v >= 400;
}

}  // namespace podrelay::proto
