#include "redis/redis_url.hpp"

#include <charconv>

namespace podrelay::redis {
namespace {

bool parse_port(std::string_view s, std::uint16_t& port) {
  unsigned v = 0;
  auto const [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v == 0 || v > 65535) return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding for the userinfo part, so passwords may contain ':' '@' '/'.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int const hi = hex_value(in[i + 1]);
    int const lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace

bool parse_host_port(std::string_view text, std::uint16_t default_port, Endpoint& out,
                     std::string& error) {
  out = Endpoint{};
  out.port = default_port;
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    auto const close = text.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated '[' in address '" + std::string(text) + "'";
      return false;
    }
    host = text.substr(1, close - 1);
    auto const after = text.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) {
        error = "unexpected text after ']' in address '" + std::string(text) + "'";
        return false;
      }
      port = after.substr(1);
    }
  } else {
    auto const colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      error = "IPv6 addresses need brackets, e.g. [::1]:6379 (got '" + std::string(text) + "')";
      return false;
    }
    host = text.substr(0, colon);
    if (colon != std::string_view::npos) port = text.substr(colon + 1);
  }
  if (host.empty()) {
    error = "missing host in address '" + std::string(text) + "'";
    return false;
  }
  if (!port.empty() || text.ends_with(':')) {
    if (!parse_port(port, out.port)) {
      error = "invalid port '" + std::string(port) + "' (expected 1-65535)";
      return false;
    }
  }
  out.host = std::string(host);
  return true;
}

RedisUrlResult parse_redis_url(std::string_view text) {
  RedisUrlResult r;
  auto& url = r.url;
  auto const fail = [&](std::string msg) {
    r.error = std::move(msg);
    return r;
  };
  auto const sep = text.find("://");
  if (sep == std::string_view::npos) {
    return fail("expected a URL such as redis://host:6379 (missing '://')");
  }
  auto const scheme = text.substr(0, sep);
  std::uint16_t default_port = 6379;
  if (scheme == "redis" || scheme == "rediss") {
    url.mode = RedisUrl::Mode::single;
  } else if (scheme == "redis-sentinel" || scheme == "rediss-sentinel") {
    url.mode = RedisUrl::Mode::sentinel;
    default_port = 26379;
  } else if (scheme == "redis-cluster" || scheme == "rediss-cluster") {
    url.mode = RedisUrl::Mode::cluster;
  } else {
    return fail("unknown scheme '" + std::string(scheme) +
                "' (expected redis, rediss, redis-sentinel or redis-cluster)");
  }
  url.tls = scheme.starts_with("rediss");

  auto rest = text.substr(sep + 3);
  auto const slash = rest.find('/');
  auto const authority = rest.substr(0, slash);
  std::string_view path =
      slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

  // userinfo: the last '@' separates it, so the host part never contains one.
  std::string_view hosts = authority;
  if (auto const at = authority.rfind('@'); at != std::string_view::npos) {
    auto const userinfo = authority.substr(0, at);
    hosts = authority.substr(at + 1);
    auto const colon = userinfo.find(':');
    std::string user_raw(userinfo.substr(0, colon));
    if (colon == std::string_view::npos) {
      // "redis://secret@host" is the password-only form many clients accept.
      if (!percent_decode(user_raw, url.password))
        return fail("invalid %-escape in URL credentials");
    } else {
      if (!percent_decode(user_raw, url.username) ||
          !percent_decode(userinfo.substr(colon + 1), url.password)) {
        return fail("invalid %-escape in URL credentials");
      }
    }
  }
  if (hosts.empty()) return fail("missing host (e.g. redis://127.0.0.1:6379)");

  std::size_t start = 0;
  while (start <= hosts.size()) {
    auto const comma = hosts.find(',', start);
    auto const item =
        hosts.substr(start, comma == std::string_view::npos ? hosts.npos : comma - start);
    Endpoint ep;
    std::string err;
    if (!parse_host_port(item, default_port, ep, err)) return fail(err);
    url.endpoints.push_back(std::move(ep));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (url.mode == RedisUrl::Mode::single && url.endpoints.size() != 1) {
    return fail(
        "redis:// takes exactly one host; use redis-sentinel:// or redis-cluster:// for several");
  }

  switch (url.mode) {
    case RedisUrl::Mode::single:
      if (!path.empty()) {
        int db = 0;
        auto const [p, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
        if (ec != std::errc{} || p != path.data() + path.size() || db < 0) {
          return fail("invalid database '" + std::string(path) + "' (expected a number >= 0)");
        }
        url.db = db;
      }
      break;
    case RedisUrl::Mode::sentinel:
      if (path.empty() || path.find('/') != std::string_view::npos) {
        return fail(
            "redis-sentinel:// needs the master name as the path, e.g. "
            "redis-sentinel://h1:26379,h2:26379/mymaster");
      }
      url.master_name = std::string(path);
      break;
    case RedisUrl::Mode::cluster:
      if (!path.empty()) return fail("redis-cluster:// takes no path");
      break;
  }
  return r;
}

std::string redact(RedisUrl const& url) {
  std::string out;
  switch (url.mode) {
    case RedisUrl::Mode::single: out = url.tls ? "rediss://" : "redis://"; break;
    case RedisUrl::Mode::sentinel:
      out = url.tls ? "rediss-sentinel://" : "redis-sentinel://";
      break;
    case RedisUrl::Mode::cluster: out = url.tls ? "rediss-cluster://" : "redis-cluster://"; break;
  }
  if (!url.username.empty() || !url.password.empty()) {
    out += url.username;
    if (!url.password.empty()) out += ":***";
    out += '@';
  }
  for (std::size_t i = 0; i < url.endpoints.size(); ++i) {
    if (i > 0) out += ',';
    auto const& ep = url.endpoints[i];
    bool const v6 = ep.host.find(':') != std::string::npos;
    out += v6 ? "[" + ep.host + "]" : ep.host;
    out += ':' + std::to_string(ep.port);
  }
  if (url.mode == RedisUrl::Mode::single && url.db != 0) out += '/' + std::to_string(url.db);
  if (url.mode == RedisUrl::Mode::sentinel) out += '/' + url.master_name;
  return out;
}

}  // namespace podrelay::redis
