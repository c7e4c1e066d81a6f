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
#include "redis/link.hpp"
#include "redis/redis_connection.hpp"
#include "util/log.hpp"

namespace podrelay::redis {

class MasterLocator final : Link::Role {
 public:
  MasterLocator(asio::any_io_executor ex, config::Config const& cfg);
  // Always this endpoint: one shard of a Redis Cluster.
  MasterLocator(asio::any_io_executor ex, config::Config const& cfg, Endpoint fixed);

  // Options every connection to the master starts from (TLS, timeouts, ROLE check).
  ConnectOptions const& master_options() const noexcept { return master_options_; }
  bool sentinel_mode() const noexcept { return cfg_.redis.mode == RedisUrl::Mode::sentinel; }

  // The master now, or why it cannot be found (sentinel_unknown_master, or the error of
  // the last sentinel asked).
  asio::awaitable<Expected<Endpoint>> locate();

  // Sentinel mode only: follow +switch-master; `on_switch` runs when the master moved.
  void start_watch(std::function<void()> on_switch);
  void stop();

 private:
  asio::awaitable<Expected<Endpoint>> ask(RedisConnection& conn, Endpoint const& sentinel);
  void master_changed(Endpoint const& now, std::string_view how);

  // Link::Role of the Sentinel watcher: ask a sentinel (the next one on each attempt), then
  // SUBSCRIBE +switch-master on it; a lost watch is logged and retried after a backoff.
  asio::awaitable<Error> connect(RedisConnection& conn) override;
  void on_up() override {}
  bool on_reply(redisReply const& reply) override;
  Error on_down() override;
  void log_retry(log::RateLimit& limit, std::string_view reason) override;
  // Subscription confirmations and +switch-master events only.
  std::size_t reply_limit() const override { return RedisConnection::max_small_reply; }

  asio::any_io_executor ex_;
  config::Config const& cfg_;
  ConnectOptions master_options_;
  ConnectOptions sentinel_options_;
  std::optional<Endpoint> current_;
  std::optional<Endpoint> fixed_;
  std::size_t preferred_ = 0;  // the sentinel that answered last
  std::function<void()> on_switch_;
  std::size_t watch_index_ = 0;  // the sentinel the next watch attempt asks
  Endpoint const* watched_ = nullptr;
  log::RateLimit watch_limit_{std::chrono::seconds(5)};
  Link watch_link_;  // last: its coroutines use the members above
};

}  // namespace podrelay::redis
