// The relay wires the parts together. Sessions hand it their requests and get back what
// it can answer at once; everything later reaches them one way, through the interfaces
// they implement (core::Receiver for messages and subscription replies,
// redis::PublishOrigin for publish outcomes). The subscriptions core decides every routing
// question; the relay carries out the commands it returns on the shards' Redis links
// (one shard for a single Redis or a Sentinel master, one per master on Redis Cluster),
// follows the cluster topology, and keeps the metrics. Used only from the io_context
// thread (no locks anywhere on the data path).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "core/channel_names.hpp"
#include "core/durable_channels.hpp"
#include "core/echo_filter.hpp"
#include "core/stream_polls.hpp"
#include "core/subscriptions.hpp"
#include "metrics/metrics.hpp"
#include "redis/cluster_slots.hpp"
#include "redis/cluster_topology.hpp"
#include "redis/stream_reader.hpp"
#include "resp_server/command.hpp"
#include "server/connection_slots.hpp"
#include "server/shard.hpp"

namespace podrelay::server {

class Connection;

class Relay final : public redis::Publisher::Events,
                    public redis::Subscriber::Events,
                    public redis::StreamReader::Events {
 public:
  Relay(boost::asio::any_io_executor ex, config::Config const& cfg, metrics::Metrics& metrics);

  void start();

  // Sessions: a listener asks admit() before it makes one; the session attaches when it
  // starts (holding the returned slot for its lifetime) and detaches when it stops taking
  // part (GOAWAY, protocol error, close): its subscriptions go at once. detach is idempotent.
  bool admit() const noexcept { return !draining_ && connections_.available(); }
  ConnectionSlots::Slot attach(std::shared_ptr<Connection> const& connection);
  void detach(Connection& connection);

  // A refusal the session answers itself.
  struct Nack {
    proto::ErrorCode code;
    std::string text;
  };
  // PUB: nullopt when queued for Redis (an acked one is answered later through the
  // session's PublishOrigin), else why not.
  // `names` maps the connection's protocol's names to Redis names (framed_names() or
  // resp_names()). `except_sender` (PUBX): the message is not delivered back to
  // `connection` (best effort, core/echo_filter.hpp).
  std::optional<Nack> publish(Connection& connection, std::uint32_t request_id,
                              core::ChannelNames const& names, std::string_view channel,
                              std::string_view payload, bool except_sender = false);
  // SUB/PSUB/UNSUB/PUNSUB: answered through Receiver::on_subscription_reply, in order.
  void subscribe(Connection& connection, core::ChannelNames const& names, core::SubKind kind,
                 std::uint32_t request_id, std::span<std::string_view const> app_names);
  void unsubscribe(Connection& connection, core::ChannelNames const& names, core::SubKind kind,
                   std::uint32_t request_id, std::span<std::string_view const> app_names);
  // A PUBSUB query (already encoded, names already prefixed) for Redis; the reply comes back
  // through the connection's PublishOrigin. `route_name` picks the cluster shard (empty:
  // the first).
  std::optional<Nack> query(Connection& connection, std::uint32_t request_id,
                            std::string const& command, std::string_view route_name);
  // Redis names this connection holds, of one kind (for RESP's UNSUBSCRIBE without names).
  std::vector<std::string> held_names(Connection const& connection, core::SubKind kind) const;

  // Durable channels. A resume (RSUB) sends its queries (stream metadata, XRANGE pages)
  // through durable_query; the reply comes back through PublishOrigin::on_durable_reply.
  core::DurableChannels const& durable() const noexcept { return durable_; }
  core::StreamId durable_position(std::string_view redis_channel) const {
    return reader_ ? reader_->position(redis_channel) : polls_.position(redis_channel);
  }
  // `stream_key` routes the query to the shard that holds the stream (Redis Cluster).
  std::optional<Nack> durable_query(Connection& connection, std::uint64_t token,
                                    std::string const& command, std::string_view stream_key);
  // A fresh epoch token (for a stream created anew, or reserved by a resume).
  std::string new_epoch();

  core::ChannelNames const& framed_names() const noexcept { return names_; }
  core::ChannelNames const& resp_names() const noexcept { return resp_names_; }
  // What every RESP connection's command machine answers with (it borrows it).
  resp_server::Config const& resp_config() const noexcept { return resp_config_; }
  bool cluster_mode() const noexcept { return cluster(); }

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
  // Durable channels are "held" by the stream reader, which the subscriptions core sees as
  // one more shard (there is no stream reader on Redis Cluster, so id 1 is free).
  static constexpr core::ShardId durable_shard_id = 1;
  // redis::Publisher::Events and redis::Subscriber::Events; `link` is the shard id.
  void on_publish_outcome(std::size_t link, redis::PublishTag const& tag,
                          std::optional<proto::ErrorCode> error, std::string_view text,
                          std::chrono::nanoseconds latency, redisReply const* reply) override;
  void on_publisher_state(std::size_t link, bool connected) override;
  void on_subscriber_state(std::size_t link, bool connected) override;
  void on_message(std::size_t link, redis::PubSubEvent const& event) override;
  void on_message_dropped(std::size_t link, redis::PubSubEvent const& event,
                          std::size_t payload_bytes) override;
  void on_confirmed(std::size_t link, core::SubKind kind, std::string_view name,
                    bool subscribed) override;
  void on_refused(std::size_t link, core::SubKind kind, bool subscribe,
                  std::vector<std::string> const& names, std::string_view text) override;
  void on_quiet_spell_over(std::size_t link) override;
  // Quiet echoes (redis/subscriber.hpp): the echo bytes of a PUBX on `redis_channel`
  // that nobody needs read at once, or 0 (someone else receives it, or quiet reads are off).
  std::size_t quiet_echo_bytes(std::string const& redis_channel, std::string_view payload) const;
  // The echo filter's quiet bytes changed: tell the subscriber link.
  void update_quiet();

  // redis::StreamReader::Events.
  void on_reader_state(bool connected) override;
  void on_reader_confirmed(std::vector<std::string> const& channels, bool subscribed) override;
  void on_stream_entry(std::string const& channel, std::string_view id, core::StreamId parsed,
                       std::string_view payload) override;
  void on_reader_unblock(std::int64_t client_id) override;
  void on_stream_lost(std::string const& channel, core::StreamCursor::Continuity how,
                      std::string const& old_epoch, std::string const& epoch) override;
  std::optional<Nack> publish_durable(redis::PublishTag tag, std::string_view app_channel,
                                      std::string_view payload);
  bool durable_outcome(redis::PublishTag const& tag, std::optional<proto::ErrorCode>& error,
                       std::string& text, redisReply const* reply);
  // One stream entry to the local subscribers of `hub_name` (the Redis channel; on a
  // cluster the wake channel, which durable subscriptions are held under).
  void deliver_stream_entry(std::string const& channel, std::string_view hub_name,
                            std::string_view id, core::StreamId parsed, std::string_view payload);

  // Durable channels on Redis Cluster (relay_cluster_durable.cpp): subscriptions are held
  // as the channels' wake channels; each wake-up reads the stream on its shard's publisher.
  bool cluster_durable() const noexcept { return cluster() && durable_.enabled(); }
  // The Redis name a subscription to `app_name` is held under.
  std::string subscription_name(core::ChannelNames const& map, std::string_view app_name) const;
  // Set when `app_name` is the wake channel of a durable channel (on a cluster), which apps
  // may not use: its messages would be taken for wake-ups. The error text.
  std::optional<std::string> reserved_channel(core::ChannelNames const& map,
                                              std::string_view app_name) const;
  bool on_wake(redis::PubSubEvent const& event);  // true: it was a wake-up
  bool on_wake_confirmed(std::size_t link, std::string_view name, bool subscribed);
  void start_polls(boost::asio::any_io_executor ex);
  void pump_polls();
  void on_poll_reply(std::uint64_t token, std::optional<proto::ErrorCode> error,
                     std::string_view text, redisReply const* reply);
  struct PollOrigin;
  struct Poll {
    core::StreamPolls::Ticket ticket;
    bool fetch = false;
  };

  bool cluster() const noexcept { return topology_ != nullptr; }
  std::vector<Shard*> active_shards() const;
  // The shard that owns `redis_name` now (cluster: by slot; unknown slot: the first seed).
  Shard& route(std::string_view redis_name);
  Shard& shard_at(config::Endpoint const& node);
  std::string where(Shard const& shard) const;
  void apply(core::Subscriptions::Effects const& effects);
  void on_topology(redis::SlotMap const& map);
  void retire_shards(redis::SlotMap const& map);
  bool redirect(redis::PublishTag const& tag, std::string_view error_text);
  void update_connected_gauges();

  boost::asio::any_io_executor ex_;
  config::Config const& cfg_;
  metrics::Metrics& metrics_;
  core::ChannelNames names_;
  core::ChannelNames resp_names_;
  core::DurableChannels durable_;  // before subscriptions_: its router asks it
  resp_server::Config resp_config_;
  core::Subscriptions subscriptions_;
  core::EchoFilter echoes_;                     // PUBX messages on their way back from Redis
  std::vector<std::unique_ptr<Shard>> shards_;  // by id; never shrinks: retired shards stay
  std::unique_ptr<redis::ClusterTopology> topology_;
  redis::SlotMap slots_;
  std::unique_ptr<redis::StreamReader> reader_;  // with --durable only, not on a cluster
  core::StreamPolls polls_;                      // with --durable on a cluster
  std::shared_ptr<PollOrigin> poll_origin_;      // where the polls' replies come back
  std::unordered_map<std::uint64_t, Poll> polls_in_flight_;
  std::unordered_map<std::string, std::size_t> poll_confirms_;  // channel -> link to confirm
  std::unique_ptr<boost::asio::steady_timer> poll_retry_;
  bool poll_retry_armed_ = false;
  std::uint64_t next_poll_token_ = 1;
  bool reader_seen_up_ = false;
  std::uint64_t epoch_counter_ = 0;  // epoch tokens: a random start, then a mixed counter
  std::unordered_map<Connection*, std::weak_ptr<Connection>> sessions_;
  ConnectionSlots connections_;
  bool listening_ = false;
  bool draining_ = false;
  bool publisher_seen_up_ = false;
  bool subscriber_seen_up_ = false;
};

}  // namespace podrelay::server
