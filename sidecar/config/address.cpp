#include "config/address.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace podrelay::config {

std::string ListenAddress::to_string() const {
  if (kind == Kind::unix_socket) return "unix:" + path;
  bool const v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

ListenAddressResult parse_listen_address(std::string_view text) {
  ListenAddressResult r;
  auto& a = r.address;
  if (text.starts_with("unix:")) {
    a.kind = ListenAddress::Kind::unix_socket;
    a.path = std::string(text.substr(5));
    if (a.path.empty() || a.path.front() != '/') {
      r.error = "unix socket address needs an absolute path, e.g. unix:/var/run/podrelay.sock";
    } else if (a.path.size() >= 108) {  // sizeof(sockaddr_un::sun_path)
      r.error = "unix socket path too long (max 107 bytes): " + a.path;
    }
    return r;
  }
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    auto const close = text.find("]:");
    if (close == std::string_view::npos) {
      r.error = "invalid address '" + std::string(text) + "' (expected [v6-address]:port)";
      return r;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto const colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      r.error = "invalid address '" + std::string(text) +
                "' (expected host:port, [v6]:port or unix:/path)";
      return r;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto const [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || p > 65535) {
    r.error = "invalid port '" + std::string(port) + "' in address '" + std::string(text) + "'";
    return r;
  }
  a.port = static_cast<std::uint16_t>(p);
  a.host = std::string(host);
  if (a.host == "localhost") return r;
  unsigned char buf[16];
  if (inet_pton(AF_INET, a.host.c_str(), buf) != 1 &&
      inet_pton(AF_INET6, a.host.c_str(), buf) != 1) {
    r.error = "invalid IP address '" + a.host + "' in '" + std::string(text) +
              "' (use a numeric address, or localhost)";
  }
  return r;
}

bool is_loopback(ListenAddress const& address) {
  if (address.kind == ListenAddress::Kind::unix_socket) return true;
  if (address.host == "localhost" || address.host == "::1") return true;
  unsigned char v4[4];
  if (inet_pton(AF_INET, address.host.c_str(), v4) == 1) return v4[0] == 127;
  return false;
}

}  // namespace podrelay::config
