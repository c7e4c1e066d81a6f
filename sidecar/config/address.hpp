// Listen addresses: "host:port", "[v6]:port" or "unix:/path". Pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace podrelay::config {

struct ListenAddress {
  enum class Kind { tcp, unix_socket };
  Kind kind = Kind::tcp;
  std::string host;  // numeric IP or "localhost" (tcp)
  std::uint16_t port = 0;
  std::string path;  // unix
  std::string to_string() const;
};

struct ListenAddressResult {
  ListenAddress address;
  std::string error;
  bool ok() const noexcept { return error.empty(); }
};

// Port 0 is allowed (the kernel picks one; tests use it).
ListenAddressResult parse_listen_address(std::string_view text);

// 127.0.0.0/8, ::1, "localhost" and Unix sockets are local to the pod.
bool is_loopback(ListenAddress const& address);

}  // namespace podrelay::config
