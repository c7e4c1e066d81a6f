#include "config/config.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace podrelay::config {
namespace {

constexpr int exit_usage = 2;

// Secrets come from files (Kubernetes Secret volumes); one trailing newline is dropped.
bool read_secret(std::string const& path, std::string const& flag, std::string& out,
                 std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + flag + " '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.empty()) {
    error = flag + " '" + path + "' is empty";
    return false;
  }
  return true;
}

bool to_millis(double seconds, std::string const& flag, double min_s, double max_s,
               std::chrono::milliseconds& out, std::string& error) {
  if (!std::isfinite(seconds) || seconds < min_s || seconds > max_s) {
    std::ostringstream ss;
    ss << flag << " must be between " << min_s << " and " << max_s << " seconds";
    error = ss.str();
    return false;
  }
  out = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
  return true;
}

bool in_range(std::int64_t v, std::string const& flag, std::int64_t lo, std::int64_t hi,
              std::size_t& out, std::string& error) {
  if (v < lo || v > hi) {
    error = flag + " must be between " + std::to_string(lo) + " and " + std::to_string(hi);
    return false;
  }
  out = static_cast<std::size_t>(v);
  return true;
}

// --- durable channels: one block, easy to move into an option table ---------------------
struct DurableFlags {
  std::int64_t max_len = 10'000;
  std::int64_t ttl = 86'400;
  std::int64_t min_replicas = 0;
};

void add_durable_flags(CLI::App& app, Config& c, DurableFlags& f) {
  auto env = [](std::string const& flag) { return "PODRELAY_" + flag; };
  app.add_option("--durable", c.durable,
                 "Durable channels: a Redis glob over app channel names (repeatable or comma "
                 "separated), read and written as Redis streams with recovery")
      ->envname(env("DURABLE"))
      ->delimiter(',');
  app.add_option("--durable-max-len", f.max_len,
                 "Entries kept per durable channel (approximate trimming, MAXLEN ~)")
      ->envname(env("DURABLE_MAX_LEN"));
  app.add_option("--durable-ttl", f.ttl, "Seconds an idle durable channel's stream is kept")
      ->envname(env("DURABLE_TTL"));
  app.add_option("--durable-min-replicas", f.min_replicas,
                 "Replicas that must have a durable publish (WAIT) before it is acknowledged")
      ->envname(env("DURABLE_MIN_REPLICAS"));
}

bool validate_durable(Config& c, DurableFlags const& f, std::string& error) {
  for (auto const& p : c.durable) {
    if (p.empty()) {
      error = "--durable: empty pattern";
      return false;
    }
  }
  std::size_t ttl = 0;
  if (!in_range(f.max_len, "--durable-max-len", 1, 1'000'000'000, c.durable_max_len, error) ||
      !in_range(f.ttl, "--durable-ttl", 1, 10LL * 365 * 86'400, ttl, error) ||
      !in_range(f.min_replicas, "--durable-min-replicas", 0, 100, c.durable_min_replicas, error)) {
    return false;
  }
  c.durable_ttl = std::chrono::seconds(ttl);
  if (!c.durable.empty() && c.redis.mode == redis::RedisUrl::Mode::cluster) {
    error = "--durable is not supported with redis-cluster:// yet (single Redis and Sentinel only)";
    return false;
  }
  return true;
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

  std::vector<std::string> listen{"127.0.0.1:7400"};
  std::vector<std::string> resp_listen;
  std::string redis_url = "redis://127.0.0.1:6379";
  std::string admin_listen = "0.0.0.0:9400";
  std::string log_level = "info";
  std::string log_format = "text";
  std::int64_t max_frame = static_cast<std::int64_t>(c.max_frame_bytes);
  std::int64_t max_queue = static_cast<std::int64_t>(c.max_queue_bytes);
  std::int64_t soft_queue = static_cast<std::int64_t>(c.soft_queue_bytes);
  double soft_window = 10.0;
  std::int64_t pub_buffer = static_cast<std::int64_t>(c.publish_buffer_bytes);
  double pub_timeout = 10.0;
  std::int64_t max_conns = static_cast<std::int64_t>(c.max_connections);
  std::int64_t max_subs = static_cast<std::int64_t>(c.max_subscriptions);
  double drain_timeout = 10.0;
  double hello_timeout = 5.0;
  double connect_timeout = 3.0;
  double ping_interval = 1.0;
  double ping_timeout = 3.0;
  std::string password_file;
  std::string token_file;

  auto env = [](std::string const& flag) { return "PODRELAY_" + flag; };
  app.add_option("--listen", listen,
                 "App listen address, repeatable: host:port (loopback only unless "
                 "--allow-remote) or unix:/path")
      ->envname(env("LISTEN"))
      ->delimiter(',');
  app.add_flag("--allow-remote", c.allow_remote,
               "Allow --listen on non-loopback addresses (the app port has no TLS)")
      ->envname(env("ALLOW_REMOTE"));
  app.add_option("--redis", redis_url,
                 "redis://[user:pass@]host:port[/db], rediss://..., "
                 "redis-sentinel://h1:p1,h2:p2/master, redis-cluster://h1:p1,h2:p2")
      ->envname(env("REDIS"));
  app.add_option("--redis-password-file", password_file,
                 "File holding the Redis password (overrides a password in --redis)")
      ->envname(env("REDIS_PASSWORD_FILE"));
  app.add_option("--tls-ca-file", c.tls.ca_file, "CA bundle to verify Redis (rediss://)")
      ->envname(env("TLS_CA_FILE"));
  app.add_option("--tls-cert-file", c.tls.cert_file, "Client certificate for Redis TLS")
      ->envname(env("TLS_CERT_FILE"));
  app.add_option("--tls-key-file", c.tls.key_file, "Client key for Redis TLS")
      ->envname(env("TLS_KEY_FILE"));
  app.add_option("--tls-server-name", c.tls.server_name,
                 "Name to verify in Redis' certificate and send as SNI (default: URL host)")
      ->envname(env("TLS_SERVER_NAME"));
  app.add_option("--admin-listen", admin_listen,
                 "Admin HTTP address for /metrics, /healthz, /readyz")
      ->envname(env("ADMIN_LISTEN"));
  app.add_option("--resp-listen", resp_listen,
                 "Redis-protocol (RESP) listen address for apps' own Redis clients, repeatable: "
                 "host:port (loopback only unless --allow-remote) or unix:/path; off by default")
      ->delimiter(',')
      ->envname(env("RESP_LISTEN"));
  app.add_option("--resp-channel-prefix", c.resp_channel_prefix,
                 "Prefix of the Redis channels of RESP clients (default empty: the same "
                 "channels as a client connected to Redis directly)")
      ->envname(env("RESP_CHANNEL_PREFIX"));
  app.add_option("--channel-prefix", c.channel_prefix, "Prefix of every channel on Redis")
      ->envname(env("CHANNEL_PREFIX"));
  app.add_option("--auth-token-file", token_file,
                 "File holding a token apps must present in HELLO (default: no app auth)")
      ->envname(env("AUTH_TOKEN_FILE"));
  app.add_option("--log-level", log_level, "debug, info, warn or error")->envname(env("LOG_LEVEL"));
  app.add_option("--log-format", log_format, "text or json (JSON lines on stderr)")
      ->envname(env("LOG_FORMAT"));
  app.add_option("--max-frame-bytes", max_frame, "Largest frame accepted from an app")
      ->envname(env("MAX_FRAME_BYTES"));
  app.add_option("--max-queue-bytes", max_queue,
                 "Outbound bytes queued to one app connection before it is disconnected as a "
                 "slow consumer")
      ->envname(env("MAX_QUEUE_BYTES"));
  auto* soft_queue_opt =
      app.add_option("--soft-queue-bytes", soft_queue,
                     "Outbound bytes a connection may stay above for at most --soft-queue-seconds "
                     "(Redis' client-output-buffer-limit soft limit; default: the smaller of "
                     "2 MiB and --max-queue-bytes / 4)")
          ->envname(env("SOFT_QUEUE_BYTES"));
  app.add_option("--soft-queue-seconds", soft_window,
                 "How long a connection may stay above --soft-queue-bytes")
      ->envname(env("SOFT_QUEUE_SECONDS"));
  app.add_option("--publish-buffer-bytes", pub_buffer,
                 "Bytes of publishes held while Redis is unreachable; beyond: nack")
      ->envname(env("PUBLISH_BUFFER_BYTES"));
  app.add_option("--publish-buffer-timeout", pub_timeout,
                 "Seconds a publish may wait for Redis before it is nacked")
      ->envname(env("PUBLISH_BUFFER_TIMEOUT"));
  app.add_option("--max-connections", max_conns, "Concurrent app connections")
      ->envname(env("MAX_CONNECTIONS"));
  app.add_option("--max-subscriptions", max_subs,
                 "Channels plus patterns one app connection may subscribe to")
      ->envname(env("MAX_SUBSCRIPTIONS"));
  app.add_option("--hello-timeout", hello_timeout,
                 "Seconds a new app connection has to complete its HELLO before it is closed")
      ->envname(env("HELLO_TIMEOUT"));
  app.add_option("--drain-timeout", drain_timeout,
                 "Seconds to flush pending publishes after SIGTERM before exiting")
      ->envname(env("DRAIN_TIMEOUT"));
  app.add_option("--redis-connect-timeout", connect_timeout,
                 "Seconds to connect and authenticate to Redis")
      ->envname(env("REDIS_CONNECT_TIMEOUT"));
  app.add_option("--redis-ping-interval", ping_interval,
                 "Seconds between health-check PINGs on each Redis connection")
      ->envname(env("REDIS_PING_INTERVAL"));
  app.add_option("--redis-ping-timeout", ping_timeout,
                 "Seconds without any reply from Redis before the connection is dropped")
      ->envname(env("REDIS_PING_TIMEOUT"));
  app.add_option("--node-id", c.node_id, "Identifier of this sidecar (default: hostname-random)")
      ->envname(env("NODE_ID"));
  DurableFlags durable_flags;
  add_durable_flags(app, c, durable_flags);

  try {
    app.parse(argc, argv);
  } catch (CLI::CallForHelp const&) {
    result.exit = true;
    result.output = app.help();
    return result;
  } catch (CLI::CallForVersion const& e) {
    result.exit = true;
    result.output = std::string(e.what()) + "\n";
    return result;
  } catch (CLI::ParseError const& e) {
    result.exit = true;
    result.exit_code = exit_usage;
    result.output = std::string("podrelay: ") + e.what() + " (see --help)";
    return result;
  }

  auto const fail = [&](std::string msg) {
    result.exit = true;
    result.exit_code = exit_usage;
    result.output = "podrelay: " + msg;
    return result;
  };

  c.listen.clear();
  for (auto const& l : listen) {
    auto parsed = parse_listen_address(l);
    if (!parsed.ok()) return fail("--listen: " + parsed.error);
    if (!c.allow_remote && !is_loopback(parsed.address)) {
      return fail("--listen " + l +
                  " is not a loopback address; the app port is unauthenticated plain TCP. "
                  "Use 127.0.0.1 (the pod shares its network namespace) or pass --allow-remote");
    }
    c.listen.push_back(std::move(parsed.address));
  }
  if (c.listen.empty()) return fail("--listen: at least one address is needed");
  for (auto const& l : resp_listen) {
    auto parsed = parse_listen_address(l);
    if (!parsed.ok()) return fail("--resp-listen: " + parsed.error);
    if (!c.allow_remote && !is_loopback(parsed.address)) {
      return fail("--resp-listen " + l +
                  " is not a loopback address; add --allow-remote to expose it (no TLS)");
    }
    c.resp_listen.push_back(std::move(parsed.address));
  }

  auto admin = parse_listen_address(admin_listen);
  if (!admin.ok()) return fail("--admin-listen: " + admin.error);
  if (admin.address.kind != ListenAddress::Kind::tcp) {
    return fail("--admin-listen must be host:port (probes and Prometheus use TCP)");
  }
  c.admin_listen = std::move(admin.address);

  auto url = redis::parse_redis_url(redis_url);
  if (!url.ok()) return fail("--redis: " + url.error);
  c.redis = std::move(url.url);

  if (log_level == "debug")
    c.log_level = LogLevel::debug;
  else if (log_level == "info")
    c.log_level = LogLevel::info;
  else if (log_level == "warn")
    c.log_level = LogLevel::warn;
  else if (log_level == "error")
    c.log_level = LogLevel::error;
  else
    return fail("--log-level must be debug, info, warn or error (got '" + log_level + "')");

  if (log_format == "text")
    c.log_format = LogFormat::text;
  else if (log_format == "json")
    c.log_format = LogFormat::json;
  else
    return fail("--log-format must be text or json (got '" + log_format + "')");

  std::string err;
  constexpr std::int64_t GiB = 1024LL * 1024 * 1024;
  if (!in_range(max_frame, "--max-frame-bytes", 64, 64 * 1024 * 1024, c.max_frame_bytes, err) ||
      !in_range(max_queue, "--max-queue-bytes", 1024, 4 * GiB - 1, c.max_queue_bytes, err) ||
      !in_range(soft_queue, "--soft-queue-bytes", 0, 4 * GiB - 1, c.soft_queue_bytes, err) ||
      !to_millis(soft_window, "--soft-queue-seconds", 0.001, 3600, c.soft_queue_window, err) ||
      !in_range(pub_buffer, "--publish-buffer-bytes", 1024, 64 * GiB, c.publish_buffer_bytes,
                err) ||
      !in_range(max_conns, "--max-connections", 1, 1'000'000, c.max_connections, err) ||
      !in_range(max_subs, "--max-subscriptions", 1, 10'000'000, c.max_subscriptions, err) ||
      !to_millis(pub_timeout, "--publish-buffer-timeout", 0.001, 3600, c.publish_buffer_timeout,
                 err) ||
      !to_millis(drain_timeout, "--drain-timeout", 0, 3600, c.drain_timeout, err) ||
      !to_millis(hello_timeout, "--hello-timeout", 0.01, 3600, c.hello_timeout, err) ||
      !to_millis(connect_timeout, "--redis-connect-timeout", 0.01, 600, c.redis_connect_timeout,
                 err) ||
      !to_millis(ping_interval, "--redis-ping-interval", 0.01, 600, c.redis_ping_interval, err) ||
      !to_millis(ping_timeout, "--redis-ping-timeout", 0.01, 600, c.redis_ping_timeout, err)) {
    return fail(err);
  }
  if (!validate_durable(c, durable_flags, err)) return fail(err);
  if (c.max_queue_bytes < c.max_frame_bytes + 64) {
    return fail("--max-queue-bytes must be at least --max-frame-bytes + 64");
  }

  if (soft_queue_opt->count() == 0) {
    c.soft_queue_bytes = std::min<std::size_t>(c.soft_queue_bytes, c.max_queue_bytes / 4);
  }
  if (c.soft_queue_bytes > c.max_queue_bytes) {
    return fail("--soft-queue-bytes must not exceed --max-queue-bytes");
  }
  if (!password_file.empty()) {
    if (!read_secret(password_file, "--redis-password-file", c.redis.password, err))
      return fail(err);
  }
  if (!token_file.empty()) {
    if (!read_secret(token_file, "--auth-token-file", c.auth_token, err)) return fail(err);
  }
  for (auto const* f : {&c.tls.ca_file, &c.tls.cert_file, &c.tls.key_file}) {
    if (!f->empty() && !std::ifstream(*f))
      return fail("cannot read TLS file '" + *f + "': " + std::strerror(errno));
  }
  if (c.tls.cert_file.empty() != c.tls.key_file.empty()) {
    return fail("--tls-cert-file and --tls-key-file go together");
  }
  return result;
}

}  // namespace podrelay::config
