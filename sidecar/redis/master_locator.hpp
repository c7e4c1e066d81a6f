// Where the Redis master is. With redis:// it is the URL's endpoint. With
// redis-sentinel:// the sentinels are asked in turn (SENTINEL get-master-addr-by-name), the
// answer is verified with ROLE at connect time, and a watcher subscribed to +switch-master
// on one sentinel reports failovers so both connections move to the new master.
// Single-threaded; owned by the relay.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "redis/redis_connection.hpp"
#include "util/log.hpp"

namespace podrelay::redis {

class MasterLocator {
 public:
  MasterLocator(asio::any_io_executor ex, config::Config const& cfg);
  // Always this endpoint: one shard of a Redis Cluster.
  MasterLocator(asio::any_io_executor ex, config::Config const& cfg, Endpoint fixed);

  // Options every connection to the master starts from (TLS, timeouts, ROLE check).
  ConnectOptions const& master_options() const noexcept { return master_options_; }
  bool sentinel_mode() const noexcept { return cfg_.redis.mode == RedisUrl::Mode::sentinel; }

  asio::awaitable<std::optional<Endpoint>> locate(std::string& why);

  // Sentinel mode only: follow +switch-master; `on_switch` runs when the master moved.
  void start_watch(std::function<void()> on_switch);
  void stop();

 private:
  asio::awaitable<std::optional<Endpoint>> ask(RedisConnection& conn, Endpoint const& sentinel,
                                               std::string& why);
  asio::awaitable<void> watch();
  void master_changed(Endpoint const& now, std::string_view how);

  asio::any_io_executor ex_;
  config::Config const& cfg_;
  ConnectOptions master_options_;
  ConnectOptions sentinel_options_;
  std::optional<Endpoint> current_;
  std::optional<Endpoint> fixed_;
  std::size_t preferred_ = 0;  // the sentinel that answered last
  std::function<void()> on_switch_;
  RedisConnection watch_conn_;
  asio::steady_timer watch_retry_;
  bool stopped_ = false;
};

// Connects `conn` to the master for `role`, retrying with backoff and jitter until it is
// connected (true) or `stopped` turns true (false). Failures are logged, rate limited.
asio::awaitable<bool> connect_with_retry(RedisConnection& conn, MasterLocator& locator,
                                         ConnectOptions const& options, Backoff& backoff,
                                         asio::steady_timer& retry, std::string_view role,
                                         bool const& stopped, log::RateLimit& limit);

}  // namespace podrelay::redis
