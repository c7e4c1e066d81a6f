// One Redis master and the two links this pod keeps to it (pipelined publisher,
// subscriber). A single Redis or a Sentinel-managed master is one shard; on Redis Cluster
// there is one shard per master. The links report to the relay with the shard's id; what
// the shard is subscribed to lives in the subscriptions core under the same id. Owned by
// the relay; never destroyed while the io_context runs (retired shards stay stopped).
// Single-threaded.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>

#include "redis/master_locator.hpp"
#include "redis/publisher.hpp"
#include "redis/subscriber.hpp"

namespace podrelay::server {

class Shard {
 public:
  using Events = std::pair<redis::Publisher::Events&, redis::Subscriber::Events&>;
  // `node`: the cluster master this shard talks to; empty for single and Sentinel modes.
  // `hold`: true while publishes written after a (re)connect must wait (see Publisher).
  Shard(boost::asio::any_io_executor ex, config::Config const& cfg, Events events, std::size_t id,
        std::optional<config::Endpoint> node, std::function<bool()> hold);

  void start();
  void stop();
  bool retired() const noexcept { return retired_; }
  // One more connection to move after a Sentinel failover (the stream reader).
  void also_on_failover(std::function<void()> f) { also_on_failover_ = std::move(f); }
  void mark_retired() noexcept { retired_ = true; }

  std::size_t const id;
  std::optional<config::Endpoint> const node;
  redis::MasterLocator locator;  // before the connections that use it
  redis::Publisher publisher;
  redis::Subscriber subscriber;

 private:
  bool retired_ = false;
  std::function<void()> also_on_failover_;
};

}  // namespace podrelay::server
