#include "config/redis_url.hpp"

#include <charconv>

namespace podrelay::config {
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

// Why `host` cannot be resolved or connected to, or empty if it can: a DNS name or IPv4
// address (letters, digits, '-', '_', dot-separated labels) or, bracketed, an IPv6 address.
std::string host_problem(std::string_view host, bool bracketed) {
  auto const is_hex = [](char c) { return hex_value(c) >= 0; };
  auto const is_name = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  };
  if (bracketed) {
    auto const zone = host.find('%');  // fe80::1%eth0
    auto const addr = host.substr(0, zone);
    bool ok = addr.find(':') != std::string_view::npos;
    for (char const c : addr) ok = ok && (is_hex(c) || c == ':' || c == '.');
    if (zone != std::string_view::npos) {
      ok = ok && zone + 1 < host.size();
      for (char const c : host.substr(zone + 1)) ok = ok && is_name(c);
    }
    return ok ? std::string() : "invalid IPv6 address '[" + std::string(host) + "]'";
  }
  if (host.size() > 253) return "host name longer than 253 characters";
  // A trailing dot (a fully qualified name) is allowed; an empty label is not.
  auto const name = host.ends_with('.') ? host.substr(0, host.size() - 1) : host;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0) return "invalid host '" + std::string(host) + "' (empty label between dots)";
      label = 0;
      continue;
    }
    if (!is_name(name[i])) {
      return "invalid character '" + std::string(1, name[i]) + "' in host '" + std::string(host) +
             "' (expected a DNS name or an IP address)";
    }
    ++label;
  }
  return {};
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
  if (auto problem = host_problem(host, text.starts_with('[')); !problem.empty()) {
    error = std::move(problem);
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

namespace {

// Each step of parse_redis_url fills its part of the URL and returns why it failed (empty: ok).

std::string parse_scheme(std::string_view scheme, RedisUrl& url) {
  if (scheme == "redis" || scheme == "rediss") {
    url.mode = RedisUrl::Mode::single;
  } else if (scheme == "redis-sentinel" || scheme == "rediss-sentinel") {
    url.mode = RedisUrl::Mode::sentinel;
  } else if (scheme == "redis-cluster" || scheme == "rediss-cluster") {
    url.mode = RedisUrl::Mode::cluster;
  } else {
    return "unknown scheme '" + std::string(scheme) +
           "' (expected redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or "
           "rediss-cluster)";
  }
  url.tls = scheme.starts_with("rediss");
  return {};
}

// "user:pass" or the password-only form "secret" many clients accept; %-escapes allowed.
std::string parse_userinfo(std::string_view userinfo, RedisUrl& url) {
  auto const colon = userinfo.find(':');
  url.password_only = colon == std::string_view::npos;
  bool const ok = colon == std::string_view::npos
                      ? percent_decode(userinfo, url.password)
                      : percent_decode(userinfo.substr(0, colon), url.username) &&
                            percent_decode(userinfo.substr(colon + 1), url.password);
  return ok ? std::string() : "invalid %-escape in URL credentials";
}

std::string parse_hosts(std::string_view hosts, RedisUrl& url) {
  if (hosts.empty()) return "missing host (e.g. redis://127.0.0.1:6379)";
  std::uint16_t const default_port = url.mode == RedisUrl::Mode::sentinel ? 26379 : 6379;
  std::size_t start = 0;
  while (start <= hosts.size()) {
    auto const comma = hosts.find(',', start);
    auto const item =
        hosts.substr(start, comma == std::string_view::npos ? hosts.npos : comma - start);
    Endpoint ep;
    std::string err;
    if (!parse_host_port(item, default_port, ep, err)) return err;
    url.endpoints.push_back(std::move(ep));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (url.mode == RedisUrl::Mode::single && url.endpoints.size() != 1)
    return "redis:// takes exactly one host; use redis-sentinel:// or redis-cluster:// for several";
  return {};
}

// The path: the database number, the Sentinel master name, or nothing for a cluster.
std::string parse_path(std::string_view path, RedisUrl& url) {
  switch (url.mode) {
    case RedisUrl::Mode::single: {
      if (path.empty()) return {};
      auto const [p, ec] = std::from_chars(path.data(), path.data() + path.size(), url.db);
      if (ec != std::errc{} || p != path.data() + path.size() || url.db < 0)
        return "invalid database '" + std::string(path) + "' (expected a number >= 0)";
      return {};
    }
    case RedisUrl::Mode::sentinel:
      if (path.empty() || path.find('/') != std::string_view::npos)
        return "redis-sentinel:// needs the master name as the path, e.g. "
               "redis-sentinel://h1:26379,h2:26379/mymaster";
      url.master_name = std::string(path);
      return {};
    case RedisUrl::Mode::cluster:
      return path.empty() ? std::string() : "redis-cluster:// takes no path";
  }
  return {};
}

}  // namespace

RedisUrlResult parse_redis_url(std::string_view text) {
  RedisUrlResult r;
  auto const sep = text.find("://");
  if (sep == std::string_view::npos) {
    r.error = "expected a URL such as redis://host:6379 (missing '://')";
    return r;
  }
  auto const rest = text.substr(sep + 3);
  auto const slash = rest.find('/');
  auto const authority = rest.substr(0, slash);
  auto const path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  // The last '@' ends the userinfo, so a host never contains one.
  auto const at = authority.rfind('@');
  auto const hosts = at == std::string_view::npos ? authority : authority.substr(at + 1);
  r.error = parse_scheme(text.substr(0, sep), r.url);
  if (r.error.empty() && at != std::string_view::npos)
    r.error = parse_userinfo(authority.substr(0, at), r.url);
  if (r.error.empty()) r.error = parse_hosts(hosts, r.url);
  if (r.error.empty()) r.error = parse_path(path, r.url);
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
    out += url.endpoints[i].to_string();
  }
  if (url.mode == RedisUrl::Mode::single && url.db != 0) out += '/' + std::to_string(url.db);
  if (url.mode == RedisUrl::Mode::sentinel) out += '/' + url.master_name;
  return out;
}

}  // namespace podrelay::config
