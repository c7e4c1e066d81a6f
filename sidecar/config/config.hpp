// The daemon's configuration: every flag, its PODRELAY_<FLAG> environment variable, its
// default, and its validation. parse_config() does no I/O beyond reading the secret files
// named by flags, so it is unit tested with plain argv arrays.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "config/address.hpp"
#include "config/redis_url.hpp"
#include "util/log.hpp"

namespace podrelay::config {

// The log settings are the logger's own types (util/ sits below config/).
using log::LogFormat;
using log::LogLevel;

struct TlsFiles {
  std::string ca_file;    // verify Redis with this CA bundle (system store when empty)
  std::string cert_file;  // optional client certificate
  std::string key_file;
  std::string server_name;  // SNI and verification name; the URL host when empty
  bool insecure_skip_verify = false;
};

// Every default lives here: parse_config() shows these values in --help and keeps them when a
// flag is not given.
struct Config {
  std::vector<ListenAddress> listen{{ListenAddress::Kind::tcp, "127.0.0.1", 7400, ""}};
  std::vector<ListenAddress> resp_listen;  // the Redis-protocol front end; empty: off
  ListenAddress admin_listen{ListenAddress::Kind::tcp, "0.0.0.0", 9400, ""};
  bool allow_remote = false;
  // Permission bits of every unix:/path socket (--unix-socket-mode): owner and group may
  // connect, so an app container of another UID in the same fsGroup can.
  unsigned unix_socket_mode = 0660;
  RedisUrl redis{.endpoints = {{"127.0.0.1", 6379}}};
  std::string channel_prefix = "podrelay:";
  std::string resp_channel_prefix;  // for RESP clients: empty, so their channels are Redis'
  LogLevel log_level = LogLevel::info;
  LogFormat log_format = LogFormat::text;
  std::size_t max_frame_bytes = std::size_t{1024} * 1024;
  std::size_t max_queue_bytes = std::size_t{8} * 1024 * 1024;  // hard limit: disconnect at once
  std::size_t soft_queue_bytes =
      std::size_t{2} * 1024 * 1024;                     // soft limit (at most max_queue / 4 unless
                                                        // given): disconnect if over it ...
  std::chrono::milliseconds soft_queue_window{10'000};  // ... for longer than this
  std::size_t publish_buffer_bytes = std::size_t{16} * 1024 * 1024;
  std::chrono::milliseconds publish_buffer_timeout{10'000};
  std::size_t max_connections = 10'000;
  std::size_t max_subscriptions = 10'000;                             // per connection
  std::size_t max_subscription_bytes = std::size_t{4} * 1024 * 1024;  // of their names
  std::chrono::milliseconds drain_timeout{10'000};
  std::chrono::milliseconds hello_timeout{5'000};  // a new connection's HELLO deadline
  std::chrono::milliseconds redis_connect_timeout{3'000};
  std::chrono::milliseconds redis_ping_interval{1'000};
  std::chrono::milliseconds redis_ping_timeout{3'000};
  // Lazy reads: how long replies to fire-and-forget publishes, and echoes of this pod's PUBX
  // messages nobody local receives, may stay unread to be read in bulk; zero: never.
  std::chrono::milliseconds lazy_read_window{5};
  std::string node_id;     // generated when empty
  std::string auth_token;  // from --auth-token-file; empty: no app auth
  // Sentinel mode: AUTH to the sentinels themselves (their requirepass or an ACL user),
  // from --sentinel-password-file and --sentinel-username; empty: sentinels without AUTH.
  std::string sentinel_username;
  std::string sentinel_password;
  TlsFiles tls;
  // Durable channels (--durable*): globs over app channel names read and written as Redis
  // streams; empty: none.
  std::vector<std::string> durable;
  std::size_t durable_max_len = 10'000;
  std::chrono::milliseconds durable_ttl{86'400'000};
  std::size_t durable_min_replicas = 0;
};

// Something the operator should hear about, though the sidecar starts: logged as a warning
// once the logger is configured.
struct StartWarning {
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;
};

struct ConfigResult {
  Config config;
  std::vector<StartWarning> warnings;
  bool exit = false;  // true: print `output` and exit with `exit_code` (help, version, error)
  int exit_code = 0;
  std::string output;  // for errors: one line "podrelay: ..." meant for stderr
};

ConfigResult parse_config(int argc, char const* const* argv);

}  // namespace podrelay::config
