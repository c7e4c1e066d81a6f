#include "server/shard.hpp"

#include "redis/stream_commands.hpp"

namespace podrelay::server {

namespace {
redis::MasterLocator make_locator(boost::asio::any_io_executor ex, config::Config const& cfg,
                                  std::optional<config::Endpoint> const& node) {
  return node ? redis::MasterLocator(ex, cfg, *node) : redis::MasterLocator(ex, cfg);
}
}  // namespace

Shard::Shard(boost::asio::any_io_executor ex, config::Config const& cfg, Events events,
             std::size_t shard_id, std::optional<config::Endpoint> redis_node,
             std::function<bool()> hold)
    : id(shard_id),
      node(std::move(redis_node)),
      locator(make_locator(ex, cfg, node)),
      publisher(ex, cfg, locator, events.first, id),
      subscriber(ex, cfg, locator, events.second, id) {
  publisher.set_sharded(node.has_value());
  subscriber.set_sharded(node.has_value());
  publisher.set_hold(std::move(hold));
  // Durable publishes name their script by SHA1 (EVALSHA); see redis/stream_commands.cpp.
  if (!cfg.durable.empty()) publisher.set_script(redis::durable_publish_script());
}

void Shard::start() {
  publisher.start();
  subscriber.start();
  // After a Sentinel failover both connections move to the new master; acked publishes in
  // flight on the old one are answered OUTCOME_UNKNOWN, subscriptions are re-made.
  locator.start_watch([this] {
    publisher.reconnect();
    subscriber.reconnect();
    if (also_on_failover_) also_on_failover_();
  });
}

void Shard::stop() {
  publisher.stop();
  subscriber.stop();
  locator.stop();
}

}  // namespace podrelay::server
