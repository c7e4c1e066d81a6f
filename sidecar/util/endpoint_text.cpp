#include "util/endpoint_text.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

namespace podrelay::util {

namespace {

template <class SockAddr>
bool copy_out(boost::asio::generic::stream_protocol::endpoint const& endpoint, SockAddr& out) {
  if (endpoint.size() < sizeof(SockAddr)) return false;
  std::memcpy(&out, endpoint.data(), sizeof(SockAddr));
  return true;
}

}  // namespace

std::string endpoint_text(boost::asio::generic::stream_protocol::endpoint const& endpoint) {
  std::array<char, INET6_ADDRSTRLEN> ip{};
  switch (endpoint.data()->sa_family) {
    case AF_INET: {
      sockaddr_in in{};
      if (!copy_out(endpoint, in) || !inet_ntop(AF_INET, &in.sin_addr, ip.data(), ip.size()))
        return {};
      return std::string(ip.data()) + ":" + std::to_string(ntohs(in.sin_port));
    }
    case AF_INET6: {
      sockaddr_in6 in6{};
      if (!copy_out(endpoint, in6) || !inet_ntop(AF_INET6, &in6.sin6_addr, ip.data(), ip.size()))
        return {};
      return "[" + std::string(ip.data()) + "]:" + std::to_string(ntohs(in6.sin6_port));
    }
    case AF_UNIX: {
      auto const offset = offsetof(sockaddr_un, sun_path);
      if (endpoint.size() <= offset) return {};
      sockaddr_un un{};
      std::memcpy(&un, endpoint.data(), std::min(endpoint.size(), sizeof un));
      auto const n = ::strnlen(un.sun_path, std::min(endpoint.size() - offset, sizeof un.sun_path));
      if (n == 0) return {};  // unnamed, or abstract (leading NUL)
      return std::string(un.sun_path, n) + ":0";
    }
    default: return {};
  }
}

}  // namespace podrelay::util
