// Keeps the Redis Cluster slot map fresh: asks CLUSTER SLOTS of any known node (the seeds
// from the URL, then the masters it learned) at start, every refresh interval, and soon
// after anyone reports a sign of change (MOVED, a dropped sharded subscription, a lost
// shard). Refreshes are coalesced and spaced. Single-threaded; owned by the relay.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <vector>

#include "redis/cluster_slots.hpp"
#include "redis/redis_connection.hpp"

namespace podrelay::redis {

class ClusterTopology {
 public:
  using Callback = std::function<void(SlotMap const&)>;

  ClusterTopology(asio::any_io_executor ex, std::vector<Endpoint> seeds, ConnectOptions options,
                  std::chrono::milliseconds interval, Callback on_update);
  void start();
  void stop();
  void refresh_soon();
  // While this answers true (a shard is unreachable), the map is re-read every second:
  // a failover shows up there within the cluster's node timeout.
  void set_degraded_check(std::function<bool()> degraded) { degraded_ = std::move(degraded); }

 private:
  asio::awaitable<void> run();
  // Reads the map from the first candidate that answers; else the last failure's reason.
  asio::awaitable<Error> fetch();
  // A CLUSTER SLOTS reply: a few hundred bytes per node, so this covers the largest
  // cluster Redis supports many times over.
  static constexpr std::size_t max_slots_reply = std::size_t{64} << 20;

  asio::any_io_executor ex_;
  std::vector<Endpoint> seeds_;
  std::vector<Endpoint> candidates_;
  ConnectOptions options_;
  std::chrono::milliseconds interval_;
  Callback on_update_;
  std::function<bool()> degraded_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point last_fetch_{};
  bool stopped_ = false;
  bool waiting_ = false;
};

}  // namespace podrelay::redis
