#include "config/config.hpp"

#include "proto/frame.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>
#include <utility>

namespace podrelay::config {
namespace {

constexpr int exit_usage = 2;
constexpr std::int64_t mib = 1024LL * 1024;
constexpr std::int64_t gib = 1024 * mib;

// The option table. Each row names a flag, where its value lands in Config and what it must
// satisfy; the default is what Config{} holds. Every flag is also PODRELAY_<FLAG>.

// Byte sizes and counts, checked against [lo, hi].
struct CountFlag {
  char const* name;
  std::size_t Config::*field;
  std::int64_t lo;
  std::int64_t hi;
  char const* help;
};
constexpr CountFlag count_flags[] = {
    {"--max-frame-bytes", &Config::max_frame_bytes, proto::min_max_frame_bytes, 64 * mib,
     "Largest frame accepted from an app"},
    {"--max-queue-bytes", &Config::max_queue_bytes, 1024, 4 * gib - 1,
     "Outbound bytes queued to one app connection before it is disconnected as a slow consumer"},
    {"--soft-queue-bytes", &Config::soft_queue_bytes, 0, 4 * gib - 1,
     "Outbound bytes a connection may stay above for at most --soft-queue-seconds (Redis' "
     "client-output-buffer-limit soft limit; default: the smaller of 2 MiB and "
     "--max-queue-bytes / 4)"},
    {"--publish-buffer-bytes", &Config::publish_buffer_bytes, 1024, 64 * gib,
     "Bytes of publishes held while Redis is unreachable; beyond: nack"},
    {"--max-connections", &Config::max_connections, 1, 1'000'000, "Concurrent app connections"},
    {"--max-subscriptions", &Config::max_subscriptions, 1, 10'000'000,
     "Channels plus patterns one app connection may subscribe to"},
    {"--max-subscription-bytes", &Config::max_subscription_bytes, 1024, 4 * gib,
     "Bytes of the channel and pattern names (with their prefix) one app connection may hold "
     "subscribed"},
    {"--durable-max-len", &Config::durable_max_len, 1, 1'000'000'000,
     "Entries kept per durable channel (approximate trimming, MAXLEN ~)"},
    {"--durable-min-replicas", &Config::durable_min_replicas, 0, 100,
     "Replicas that must have a durable publish (WAIT) before it is acknowledged"},
};

// Durations given in (fractional) seconds, checked against [lo, hi].
struct SecondsFlag {
  char const* name;
  std::chrono::milliseconds Config::*field;
  double lo;
  double hi;
  char const* help;
};
constexpr SecondsFlag seconds_flags[] = {
    {"--soft-queue-seconds", &Config::soft_queue_window, 0.001, 3600,
     "How long a connection may stay above --soft-queue-bytes"},
    {"--publish-buffer-timeout", &Config::publish_buffer_timeout, 0.001, 3600,
     "Seconds a publish may wait unwritten while Redis is unreachable before it is nacked "
     "(PUBLISH_TIMEOUT); one already written waits for Redis' reply instead"},
    {"--hello-timeout", &Config::hello_timeout, 0.01, 3600,
     "Seconds a new app connection has to complete its HELLO before it is closed"},
    {"--drain-timeout", &Config::drain_timeout, 0, 3600,
     "Seconds to flush pending publishes after SIGTERM before exiting"},
    {"--redis-connect-timeout", &Config::redis_connect_timeout, 0.01, 600,
     "Seconds to connect and authenticate to Redis"},
    {"--redis-ping-interval", &Config::redis_ping_interval, 0.01, 600,
     "Seconds between health-check PINGs on each Redis connection"},
    {"--redis-ping-timeout", &Config::redis_ping_timeout, 0.01, 600,
     "Seconds without any reply from Redis before the connection is dropped"},
    {"--lazy-read-seconds", &Config::lazy_read_window, 0, 60,
     "At most this long, Redis' replies to fire-and-forget publishes and the echoes of PUBX "
     "messages no other local app receives are left unread, to be read in bulk (fewer "
     "wake-ups); 0 reads everything at once"},
    {"--durable-ttl", &Config::durable_ttl, 1, 10.0 * 365 * 86'400,
     "Seconds an idle durable channel's stream is kept (whole seconds: Redis' EXPIRE)"},
};

// Free text taken as given.
struct TextFlag {
  char const* name;
  std::string& (*field)(Config&);
  char const* help;
};
constexpr TextFlag text_flags[] = {
    {"--channel-prefix", [](Config& c) -> std::string& { return c.channel_prefix; },
     "Prefix of every channel on Redis"},
    {"--resp-channel-prefix", [](Config& c) -> std::string& { return c.resp_channel_prefix; },
     "Prefix of the Redis channels of RESP clients (default empty: the same channels as a "
     "client connected to Redis directly)"},
    {"--tls-ca-file", [](Config& c) -> std::string& { return c.tls.ca_file; },
     "CA bundle to verify Redis (rediss://)"},
    {"--tls-cert-file", [](Config& c) -> std::string& { return c.tls.cert_file; },
     "Client certificate for Redis TLS"},
    {"--tls-key-file", [](Config& c) -> std::string& { return c.tls.key_file; },
     "Client key for Redis TLS"},
    {"--tls-server-name", [](Config& c) -> std::string& { return c.tls.server_name; },
     "Name to verify in Redis' certificate and send as SNI (default: URL host)"},
    {"--node-id", [](Config& c) -> std::string& { return c.node_id; },
     "Identifier of this sidecar (default: hostname-random)"},
};

std::string env_name(std::string_view flag) {
  std::string out = "PODRELAY_";
  for (char ch : flag.substr(2)) out += ch == '-' ? '_' : static_cast<char>(std::toupper(ch));
  return out;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  std::ostringstream ss;
  ss << static_cast<double>(ms.count()) / 1000.0;
  return ss.str();
}

// "must be between lo and hi" for a number of type T, NaN and trailing text refused (NaN
// passes CLI::Range, every comparison being false).
template <class T>
CLI::Validator between(T lo, T hi, char const* unit) {
  std::ostringstream range;
  range << lo << " and " << hi << unit;
  std::ostringstream desc;
  desc << "in [" << lo << ", " << hi << "]";
  return {[lo, hi, range = range.str()](std::string& text) -> std::string {
            T v{};
            bool ok = CLI::detail::lexical_cast(text, v) && v >= lo && v <= hi;
            if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(v);
            return ok ? std::string() : "must be between " + range + " (got '" + text + "')";
          },
          desc.str()};
}

// Secrets come from files (Kubernetes Secret volumes); trailing CR/LF bytes are dropped.
// Only a regular file (a Secret volume's symlink is followed) of at most 64 KiB: a device or
// a FIFO given by mistake would be read for ever or block the start.
constexpr std::size_t max_secret_bytes = std::size_t{64} * 1024;
std::string read_secret(std::string const& path, std::string_view flag, std::string& out) {
  auto const name = std::string(flag) + " '" + path + "'";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "cannot read " + name + ": " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return name + " is not a regular file";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + name + ": " + std::strerror(errno);
  out.assign(max_secret_bytes + 1, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in.gcount()));
  if (out.size() > max_secret_bytes) {
    out.clear();
    return name + " is larger than " + std::to_string(max_secret_bytes) + " bytes";
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.empty()) return std::string(flag) + " '" + path + "' is empty";
  return {};
}

// The values that need parsing after CLI11 has read them, as given.
struct Raw {
  std::vector<std::string> listen;
  std::vector<std::string> resp_listen;
  std::string admin_listen;
  std::string redis;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string password_file;
  std::string sentinel_password_file;
  std::string token_file;
  std::string unix_socket_mode = "0660";
};

void add_options(CLI::App& app, Config& c, Raw& raw) {
  auto const opt = [&](char const* name, auto& target, char const* help) {
    return app.add_option(name, target, help)->envname(env_name(name));
  };
  opt("--listen", raw.listen,
      "App listen address, repeatable: host:port (loopback only unless --allow-remote) or "
      "unix:/path")
      ->delimiter(',');
  opt("--unix-socket-mode", raw.unix_socket_mode,
      "Permission bits (octal) of every unix:/path socket of --listen and --resp-listen; "
      "connecting needs write permission, so 0660 lets the sidecar's group in (k8s: fsGroup)");
  app.add_flag("--allow-remote", c.allow_remote,
               "Allow --listen and --resp-listen on non-loopback addresses (no TLS)")
      ->envname(env_name("--allow-remote"));
  opt("--redis", raw.redis,
      "redis://[user:pass@]host:port[/db], rediss://..., redis-sentinel://h1:p1,h2:p2/master, "
      "redis-cluster://h1:p1,h2:p2 (rediss-sentinel://, rediss-cluster:// for TLS)");
  opt("--redis-password-file", raw.password_file,
      "File holding the Redis password (overrides a password in --redis)");
  opt("--sentinel-password-file", raw.sentinel_password_file,
      "redis-sentinel:// only: file holding the password of the sentinels themselves (their "
      "requirepass); default: sentinels are asked without AUTH");
  opt("--sentinel-username", c.sentinel_username,
      "redis-sentinel:// only: ACL user for the sentinels (with --sentinel-password-file)");
  opt("--admin-listen", raw.admin_listen, "Admin HTTP address for /metrics, /healthz, /readyz");
  opt("--resp-listen", raw.resp_listen,
      "Redis-protocol (RESP) listen address for apps' own Redis clients, repeatable: host:port "
      "(loopback only unless --allow-remote) or unix:/path; off by default")
      ->delimiter(',');
  opt("--durable", c.durable,
      "Durable channels: a Redis glob over app channel names (repeatable or comma separated), "
      "read and written as Redis streams with recovery")
      ->delimiter(',');
  opt("--auth-token-file", raw.token_file,
      "File holding a token apps must present in HELLO (default: no app auth)");
  opt("--log-level", raw.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  opt("--log-format", raw.log_format, "text or json (JSON lines on stderr)")
      ->check(CLI::IsMember({"text", "json"}));
  for (auto const& f : text_flags) opt(f.name, f.field(c), f.help);
  for (auto const& f : count_flags) opt(f.name, c.*f.field, f.help)->check(between(f.lo, f.hi, ""));
  // Its default depends on --max-queue-bytes; say so instead of printing a fixed number.
  app.get_option("--soft-queue-bytes")->default_str("min(2097152, --max-queue-bytes / 4)");
  for (auto const& f : seconds_flags) {
    app.add_option_function<double>(
           f.name,
           [&c, field = f.field](double s) {
             c.*field = std::chrono::milliseconds(std::llround(s * 1000.0));
           },
           f.help)
        ->envname(env_name(f.name))
        ->default_str(seconds_text(c.*f.field))
        ->check(between(f.lo, f.hi, " seconds"));
  }
}

// Kubernetes' service links: a Service whose name starts with "podrelay" gives every pod of
// its namespace PODRELAY_SERVICE_HOST, PODRELAY_PORT_7400_TCP_ADDR and the like. No typo.
bool is_service_link(std::string_view name) {
  constexpr auto npos = std::string_view::npos;
  if (name.find("_SERVICE_HOST") != npos || name.find("_SERVICE_PORT") != npos) return true;
  if (name.ends_with("_PORT")) return true;
  auto const at = name.find("_PORT_");
  if (at == npos) return false;
  auto rest = name.substr(at + 6);  // <digits>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR]
  auto const digits = rest.find_first_not_of("0123456789");
  if (digits == 0 || digits == npos) return false;
  rest = rest.substr(digits);
  return rest.starts_with("_TCP") || rest.starts_with("_UDP") || rest.starts_with("_SCTP");
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    auto diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      auto const up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// PODRELAY_* variables no flag reads (a typo in a pod spec would otherwise be ignored
// without a word), each with the nearest name that is read.
void warn_unknown_env(CLI::App const& app, std::vector<StartWarning>& out) {
  std::vector<std::string> known;
  for (auto const* o : app.get_options()) {
    if (!o->get_envname().empty()) known.push_back(o->get_envname());
  }
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view const entry(*e);
    if (!entry.starts_with("PODRELAY_")) continue;
    auto const name = entry.substr(0, entry.find('='));
    if (is_service_link(name) || std::find(known.begin(), known.end(), name) != known.end()) {
      continue;
    }
    StartWarning w{"environment variable ignored: no podrelay flag reads it",
                   {{"variable", std::string(name)}}};
    std::string const* nearest = nullptr;
    std::size_t best = 5;  // a suggestion must be at most 4 edits away
    for (auto const& k : known) {
      if (auto const d = edit_distance(name, k); d < best) {
        best = d;
        nearest = &k;
      }
    }
    if (nearest != nullptr) w.fields.emplace_back("did_you_mean", *nearest);
    out.push_back(std::move(w));
  }
}

// --allow-remote used for real: the ports have no TLS, so say it at every start.
void warn_remote(Config const& c, std::vector<StartWarning>& out) {
  for (auto const* list : {&c.listen, &c.resp_listen}) {
    for (auto const& a : *list) {
      if (is_loopback(a)) continue;
      out.push_back(
          {"listening beyond loopback (--allow-remote): plain TCP without TLS, anyone "
           "who reaches it can publish and subscribe",
           {{"listen", a.to_string()}, {"app_auth", c.auth_token.empty() ? "none" : "token"}}});
    }
  }
}

// --listen and --resp-listen: addresses, loopback only unless --allow-remote.
std::string parse_listeners(std::vector<std::string> const& texts, std::string_view flag,
                            bool allow_remote, std::vector<ListenAddress>& out) {
  out.clear();
  for (auto const& text : texts) {
    auto parsed = parse_listen_address(text);
    if (!parsed.ok()) return std::string(flag) + ": " + parsed.error;
    if (!allow_remote && !is_loopback(parsed.address)) {
      return std::string(flag) + " " + text +
             " is not a loopback address; the port is unauthenticated plain TCP. Use 127.0.0.1 "
             "(the pod shares its network namespace) or pass --allow-remote";
    }
    out.push_back(std::move(parsed.address));
  }
  return {};
}

// --unix-socket-mode: octal permission bits, 0 to 0777 (no setuid/sticky bits on a socket).
std::string parse_socket_mode(std::string const& text, unsigned& out) {
  auto const bad = [&] {
    return "--unix-socket-mode must be octal permission bits such as 0660 or 600, got '" + text +
           "'";
  };
  if (text.empty() || text.size() > 4) return bad();
  unsigned mode = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '7') return bad();
    mode = mode * 8 + static_cast<unsigned>(ch - '0');
  }
  if (mode > 0777) return bad();
  if ((mode & 0200) == 0)
    return "--unix-socket-mode " + text +
           " leaves the owner without write permission: nobody could connect";
  out = mode;
  return {};
}

// Everything CLI11 cannot check alone: addresses, the URL, secrets and how the flags relate.
std::string finish(Config& c, Raw const& raw, bool soft_queue_given) {
  if (auto e = parse_listeners(raw.listen, "--listen", c.allow_remote, c.listen); !e.empty())
    return e;
  if (c.listen.empty()) return "--listen: at least one address is needed";
  if (auto e = parse_socket_mode(raw.unix_socket_mode, c.unix_socket_mode); !e.empty()) return e;
  if (auto e = parse_listeners(raw.resp_listen, "--resp-listen", c.allow_remote, c.resp_listen);
      !e.empty())
    return e;
  auto admin = parse_listen_address(raw.admin_listen);
  if (!admin.ok()) return "--admin-listen: " + admin.error;
  if (admin.address.kind != ListenAddress::Kind::tcp)
    return "--admin-listen must be host:port (probes and Prometheus use TCP)";
  c.admin_listen = std::move(admin.address);
  auto url = parse_redis_url(raw.redis);
  if (!url.ok()) return "--redis: " + url.error;
  c.redis = std::move(url.url);

  c.log_level = raw.log_level == "debug"   ? LogLevel::debug
                : raw.log_level == "warn"  ? LogLevel::warn
                : raw.log_level == "error" ? LogLevel::error
                                           : LogLevel::info;
  c.log_format = raw.log_format == "json" ? LogFormat::json : LogFormat::text;

  if (c.max_queue_bytes < c.max_frame_bytes + 64)
    return "--max-queue-bytes must be at least --max-frame-bytes + 64";
  if (!soft_queue_given)
    c.soft_queue_bytes = std::min<std::size_t>(c.soft_queue_bytes, c.max_queue_bytes / 4);
  if (c.soft_queue_bytes > c.max_queue_bytes)
    return "--soft-queue-bytes must not exceed --max-queue-bytes";

  if (!raw.password_file.empty()) {
    // The file holds the password, so "redis://relay@host" names the ACL user (as the
    // manifests' PODRELAY_REDIS documents), not a password the file would override.
    if (c.redis.password_only) c.redis.username = std::exchange(c.redis.password, {});
    if (auto e = read_secret(raw.password_file, "--redis-password-file", c.redis.password);
        !e.empty())
      return e;
  }
  if (!raw.token_file.empty()) {
    if (auto e = read_secret(raw.token_file, "--auth-token-file", c.auth_token); !e.empty())
      return e;
  }
  bool const sentinel_auth = !raw.sentinel_password_file.empty() || !c.sentinel_username.empty();
  if (sentinel_auth && c.redis.mode != RedisUrl::Mode::sentinel)
    return "--sentinel-password-file and --sentinel-username need a redis-sentinel:// URL";
  if (!c.sentinel_username.empty() && raw.sentinel_password_file.empty())
    return "--sentinel-username needs --sentinel-password-file";
  if (!raw.sentinel_password_file.empty()) {
    if (auto e = read_secret(raw.sentinel_password_file, "--sentinel-password-file",
                             c.sentinel_password);
        !e.empty())
      return e;
  }
  for (auto const* f : {&c.tls.ca_file, &c.tls.cert_file, &c.tls.key_file}) {
    if (!f->empty() && !std::ifstream(*f))
      return "cannot read TLS file '" + *f + "': " + std::strerror(errno);
  }
  if (c.tls.cert_file.empty() != c.tls.key_file.empty())
    return "--tls-cert-file and --tls-key-file go together";
  if (!c.redis.tls &&
      !(c.tls.ca_file.empty() && c.tls.cert_file.empty() && c.tls.server_name.empty()))
    return "--tls-ca-file, --tls-cert-file and --tls-key-file, --tls-server-name need a TLS "
           "Redis URL (rediss://, rediss-sentinel:// or rediss-cluster://); --redis is plain TCP";
  for (auto const& p : c.durable) {
    if (p.empty()) return "--durable: empty pattern";
  }
  // It names the sidecar's Redis connections (CLIENT SETNAME refuses spaces and newlines:
  // the sidecar would never become ready) and travels in every WELCOME (a protocol string).
  if (c.node_id.size() > 255) return "--node-id: longer than 255 bytes";
  if (std::any_of(c.node_id.begin(), c.node_id.end(),
                  [](unsigned char ch) { return ch <= ' ' || ch == 0x7f; }))
    return "--node-id: spaces and control characters are not allowed (Redis CLIENT SETNAME)";
  return {};
}

}  // namespace

ConfigResult parse_config(int argc, char const* const* argv) {
  ConfigResult result;
  Config& c = result.config;
  CLI::App app{
      "podrelay: a Kubernetes sidecar that mirrors a tiny framed localhost protocol onto Redis "
      "pub/sub.\nEvery flag can also be set with the environment variable PODRELAY_<FLAG> "
      "(upper case, '-' as '_'), e.g. PODRELAY_REDIS.",
      "podrelay"};
  app.set_version_flag("--version", std::string("podrelay ") + PODRELAY_VERSION);
  app.option_defaults()->always_capture_default();

  Raw raw;
  for (auto const& l : c.listen) raw.listen.push_back(l.to_string());
  raw.admin_listen = c.admin_listen.to_string();
  raw.redis = redact(c.redis);  // the default has no password
  add_options(app, c, raw);

  auto const stop = [&](int code, std::string output) {
    result.exit = true;
    result.exit_code = code;
    result.output = std::move(output);
    return result;
  };
  try {
    app.parse(argc, argv);
  } catch (CLI::CallForHelp const&) {
    return stop(0, app.help());
  } catch (CLI::CallForVersion const& e) {
    return stop(0, std::string(e.what()) + "\n");
  } catch (CLI::ParseError const& e) {
    return stop(exit_usage, std::string("podrelay: ") + e.what() + " (see --help)");
  }
  if (auto error = finish(c, raw, app.get_option("--soft-queue-bytes")->count() > 0);
      !error.empty())
    return stop(exit_usage, "podrelay: " + error);
  warn_unknown_env(app, result.warnings);
  warn_remote(c, result.warnings);
  return result;
}

}  // namespace podrelay::config
