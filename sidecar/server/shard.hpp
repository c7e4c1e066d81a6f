// One Redis master and the two connections this pod keeps to it (pipelined publisher,
// subscriber), with the tracker of what this pod subscribed there. A single Redis or a
// Sentinel-managed master is one shard; on Redis Cluster there is one shard per master.
// Events from the connections are forwarded to the relay with the shard they came from.
// Owned by the relay; never destroyed while the io_context runs (retired shards stay
// stopped). Single-threaded.
#pragma once

#include <optional>

#include "core/subscription_tracker.hpp"
#include "redis/master_locator.hpp"
#include "redis/publisher.hpp"
#include "redis/subscriber.hpp"

namespace podrelay::server {

class Relay;

class Shard final : public redis::Publisher::Events, public redis::Subscriber::Events {
 public:
  // `node`: the cluster master this shard talks to; empty for single and Sentinel modes.
  Shard(boost::asio::any_io_executor ex, config::Config const& cfg, Relay& relay,
        std::optional<redis::Endpoint> node);

  void start();
  void stop();
  bool retired() const noexcept { return retired_; }
  void mark_retired() noexcept { retired_ = true; }

  std::optional<redis::Endpoint> const node;
  redis::MasterLocator locator;  // before the connections that use it
  redis::Publisher publisher;
  redis::Subscriber subscriber;
  core::SubscriptionTracker tracker;

 private:
  void on_publish_outcome(redis::PublishTag const& tag, std::optional<proto::ErrorCode> error,
                          std::string_view text, std::chrono::nanoseconds latency) override;
  void on_publisher_state(bool connected) override;
  void on_subscriber_state(bool connected) override;
  void on_pubsub_event(redis::PubSubEvent const& event) override;

  Relay& relay_;
  bool retired_ = false;
};

}  // namespace podrelay::server
