#include "server/shard.hpp"

#include "server/relay.hpp"

namespace podrelay::server {

namespace {
redis::MasterLocator make_locator(boost::asio::any_io_executor ex, config::Config const& cfg,
                                  std::optional<redis::Endpoint> const& node) {
  return node ? redis::MasterLocator(ex, cfg, *node) : redis::MasterLocator(ex, cfg);
}
}  // namespace

Shard::Shard(boost::asio::any_io_executor ex, config::Config const& cfg, Relay& relay,
             std::optional<redis::Endpoint> node_)
    : node(std::move(node_)),
      locator(make_locator(ex, cfg, node)),
      publisher(ex, cfg, locator, *this),
      subscriber(ex, cfg, locator, *this),
      relay_(relay) {
  publisher.set_sharded(node.has_value());
  subscriber.set_sharded(node.has_value());
  publisher.set_hold([this] { return !tracker.settled(); });
}

void Shard::start() {
  publisher.start();
  subscriber.start();
  // After a Sentinel failover both connections move to the new master; acked publishes in
  // flight on the old one are answered OUTCOME_UNKNOWN, subscriptions are re-made.
  locator.start_watch([this] {
    publisher.reconnect();
    subscriber.reconnect();
  });
}

void Shard::stop() {
  publisher.stop();
  subscriber.stop();
  locator.stop();
}

void Shard::on_publish_outcome(redis::PublishTag const& tag, std::optional<proto::ErrorCode> error,
                               std::string_view text, std::chrono::nanoseconds latency) {
  relay_.on_publish_outcome(*this, tag, error, text, latency);
}

void Shard::on_publisher_state(bool connected) { relay_.on_publisher_state(*this, connected); }

void Shard::on_subscriber_state(bool connected) { relay_.on_subscriber_state(*this, connected); }

void Shard::on_pubsub_event(redis::PubSubEvent const& event) {
  relay_.on_pubsub_event(*this, event);
}

}  // namespace podrelay::server
