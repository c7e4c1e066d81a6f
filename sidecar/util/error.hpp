// The daemon's internal error vocabulary: why a Redis connection, a Sentinel query, a
// CLUSTER SLOTS reply, the TLS setup or a listening socket failed. Codes are for programs (compare
// them, count them); the reason string that travels with them is one line for humans and the logs,
// and never holds a secret. The wire codes sent to apps live in proto/error_code.hpp instead.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace podrelay {

enum class errc {
  tls_file_unusable = 1,    // a --tls-* file OpenSSL cannot load
  resolve_failed,           // the host name did not resolve
  connect_failed,           // TCP connect refused, unreachable or timed out
  tls_handshake_failed,     // TLS handshake failed or timed out
  handshake_failed,         // the AUTH/SELECT/... exchange broke off (I/O, timeout)
  auth_failed,              // Redis refused a handshake command (AUTH, SELECT, SETNAME)
  not_master,               // ROLE says replica: the sentinels' view is stale
  protocol_error,           // the peer does not speak RESP
  io_failed,                // a write or read on an open connection failed
  connection_lost,          // an established connection went away
  sentinel_unknown_master,  // no sentinel named the configured master
  bad_reply,                // a well-formed reply that is not what the command returns
  slot_map_invalid,         // CLUSTER SLOTS did not describe a slot map
  listen_failed,            // an app or admin address cannot be bound or listened on
};

std::error_category const& error_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// An error with the one-line reason a person needs (empty code: success).
struct Error {
  std::error_code code;
  std::string reason;

  Error() = default;
  Error(errc e, std::string why) : code(make_error_code(e)), reason(std::move(why)) {}
  explicit operator bool() const noexcept { return static_cast<bool>(code); }
};

// A value or the Error that prevented it (std::expected is C++23).
template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Expected(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  explicit operator bool() const noexcept { return v_.index() == 0; }
  T& operator*() { return std::get<0>(v_); }
  T const& operator*() const { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  T const* operator->() const { return &std::get<0>(v_); }
  Error const& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace podrelay

template <>
struct std::is_error_code_enum<podrelay::errc> : std::true_type {};
