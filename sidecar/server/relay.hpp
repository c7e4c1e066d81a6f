// The relay wires the parts together: sessions hand it their requests; it keeps the hub,
// routes every Redis name to its shard (one for a single Redis or a Sentinel master, one
// per master on Redis Cluster), answers requests, fans messages out, and keeps the
// metrics. It owns the process' state and is used only from the io_context thread (no
// locks anywhere on the data path).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "core/channel_names.hpp"
#include "core/hub.hpp"
#include "metrics/metrics.hpp"
#include "redis/cluster_slots.hpp"
#include "redis/cluster_topology.hpp"
#include "server/shard.hpp"

namespace podrelay::server {

class Session;

class Relay {
 public:
  Relay(boost::asio::any_io_executor ex, config::Config const& cfg, metrics::Metrics& metrics);

  void start();

  // Session lifecycle.
  bool admit_session();  // false when --max-connections is reached or the relay drains
  void add_session(std::shared_ptr<Session> const& session);
  void remove_session(Session& session);  // releases its subscriptions; idempotent
  void session_opened() noexcept;
  void session_closed();

  // Requests, from sessions.
  void publish(Session& session, std::uint32_t request_id, std::string_view channel,
               std::string_view payload);
  void subscribe(Session& session, core::SubKind kind, std::uint32_t request_id,
                 std::span<std::string_view const> names);
  void unsubscribe(Session& session, core::SubKind kind, std::uint32_t request_id,
                   std::span<std::string_view const> names);

  // Events, from the shards' connections.
  void on_publish_outcome(Shard& shard, redis::PublishTag const& tag,
                          std::optional<proto::ErrorCode> error, std::string_view text,
                          std::chrono::nanoseconds latency);
  void on_publisher_state(Shard& shard, bool connected);
  void on_subscriber_state(Shard& shard, bool connected);
  void on_pubsub_event(Shard& shard, redis::PubSubEvent const& event);

  // Readiness: empty when ready, else the reason.
  std::string not_ready_reason() const;
  void set_listening(bool listening) { listening_ = listening; }
  void update_gauges();

  // Graceful shutdown: GOAWAY to apps, flush publishes, stop Redis connections.
  boost::asio::awaitable<void> drain();
  bool draining() const noexcept { return draining_; }

  config::Config const& config() const noexcept { return cfg_; }
  metrics::Metrics& metrics() noexcept { return metrics_; }
  std::size_t session_count() const noexcept { return sessions_.size(); }

 private:
  // (P)UNSUBSCRIBEs to send, one batch per shard and kind: a session leaving with
  // thousands of channels must not cost thousands of commands.
  struct UnsubscribeBatch {
    Shard* shard = nullptr;
    core::SubKind kind = core::SubKind::channel;
    std::vector<std::string> names;
  };
  using Unsubscribes = std::vector<UnsubscribeBatch>;

  bool cluster() const noexcept { return topology_ != nullptr; }
  std::vector<Shard*> active_shards() const;
  // The shard that owns `redis_name` now (cluster: by slot; unknown slot: the first seed).
  Shard& route(std::string_view redis_name);
  Shard& shard_at(redis::Endpoint const& node);
  // The shard holding `redis_name`'s subscription (where it was wanted).
  Shard& holder(core::SubKind kind, std::string const& redis_name);
  std::string redis_name(core::SubKind kind, std::string_view app_name) const;

  void release(Session& session, core::SubKind kind, std::string const& name,
               Unsubscribes& unsubscribe_now);
  void send_unsubscribes(Unsubscribes const& batches);
  void release_waiters(std::vector<core::SubscriptionTracker::WaiterId> const& ids);
  void fan_out(core::SubKind kind, std::string_view key, std::string_view channel,
               std::string_view pattern, std::string_view payload);
  void on_topology(redis::SlotMap const& map);
  void move_channel(std::string const& redis_name, Shard& from, Shard& to);
  bool redirect(redis::PublishTag const& tag, std::string_view error_text);
  void update_connected_gauges();

  // A SUB/PSUB waiting for Redis to confirm some of its names.
  struct PendingSubscribe {
    std::weak_ptr<Session> session;
    std::uint32_t request_id = 0;
    std::size_t remaining = 0;
  };

  boost::asio::any_io_executor ex_;
  config::Config const& cfg_;
  metrics::Metrics& metrics_;
  core::ChannelNames names_;
  core::Hub hub_;
  std::vector<std::unique_ptr<Shard>> shards_;  // never shrinks: retired shards stay
  std::unique_ptr<redis::ClusterTopology> topology_;
  redis::SlotMap slots_;
  // Cluster mode: which shard holds each subscribed Redis channel.
  std::unordered_map<std::string, Shard*> placement_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
  std::unordered_map<core::SubscriptionTracker::WaiterId, PendingSubscribe> pending_;
  core::SubscriptionTracker::WaiterId next_waiter_ = 1;
  std::size_t open_sockets_ = 0;
  std::size_t peak_sockets_ = 0;  // since the last heap trim
  boost::asio::steady_timer trim_timer_;
  bool trim_armed_ = false;
  bool listening_ = false;
  bool draining_ = false;
  bool publisher_seen_up_ = false;
  bool subscriber_seen_up_ = false;
};

}  // namespace podrelay::server
