// Parsing of --redis URLs:
//   redis://[user:pass@]host:port[/db]      rediss:// for TLS
//   redis-sentinel://[user:pass@]h1:p1,h2:p2/master-name   (rediss-sentinel:// for TLS)
//   redis-cluster://[user:pass@]h1:p1,h2:p2                (rediss-cluster:// for TLS)
// Error messages never repeat the password. Pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace podrelay::config {

struct Endpoint {
  std::string host;
  std::uint16_t port = 6379;
  friend bool operator==(Endpoint const&, Endpoint const&) = default;
  // "host:port", with an IPv6 host in brackets ("[::1]:6379") as URLs write it.
  std::string to_string() const {
    auto const h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return h + ":" + std::to_string(port);
  }
};

struct RedisUrl {
  enum class Mode { single, sentinel, cluster };
  Mode mode = Mode::single;
  bool tls = false;
  std::vector<Endpoint> endpoints;  // one for single mode
  std::string username{};           // empty: the default user
  std::string password{};           // empty: no AUTH
  // The userinfo had no ':' ("redis://word@host"): `word` was taken as the password, the
  // form many clients accept; with --redis-password-file it is the user name instead.
  bool password_only = false;
  int db = 0;
  std::string master_name{};  // sentinel mode
};

struct RedisUrlResult {
  RedisUrl url;
  std::string error;  // empty on success
  bool ok() const noexcept { return error.empty(); }
};

RedisUrlResult parse_redis_url(std::string_view text);

// "host:port" with IPv6 in brackets ("[::1]:6379"); default_port when ":port" is absent.
bool parse_host_port(std::string_view text, std::uint16_t default_port, Endpoint& out,
                     std::string& error);

// The URL with the password replaced by "***", for logs.
std::string redact(RedisUrl const& url);

}  // namespace podrelay::config
