// Every podrelay_* metric, registered once in one prometheus-cpp registry. Hot paths hold
// references to the counters they bump; gauges that mirror state (connections,
// subscriptions, queue bytes) are set by the relay just before each scrape. No label
// carries a per-connection value, so cardinality is fixed.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proto/error_code.hpp"
#include "proto/frame.hpp"

namespace podrelay::metrics {

class Metrics {
 private:
  // Declared first: members initialize in declaration order and the references below
  // come out of these families.
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& frames_received_;
  prometheus::Family<prometheus::Counter>& protocol_errors_;
  prometheus::Family<prometheus::Counter>& publish_nacks_;
  prometheus::Family<prometheus::Counter>& messages_dropped_;
  prometheus::Family<prometheus::Counter>& connections_refused_;
  prometheus::Family<prometheus::Gauge>& local_subscriptions_;
  prometheus::Family<prometheus::Gauge>& redis_subscriptions_;
  prometheus::Family<prometheus::Gauge>& redis_connected_;
  prometheus::Family<prometheus::Counter>& redis_reconnects_;
  prometheus::Family<prometheus::Gauge>& shard_connected_;

 public:
  Metrics();

  // Why a message or publish did not make it, as a label value.
  static std::string_view reason_label(proto::ErrorCode code);

  prometheus::Counter& protocol_error(proto::ErrorCode code);
  prometheus::Counter& publish_nack(proto::ErrorCode code);     // acked publish refused
  prometheus::Counter& message_dropped(proto::ErrorCode code);  // fire-and-forget lost
  prometheus::Counter& connection_refused(proto::ErrorCode code);
  // Every publish that did not make it so far: fire-and-forget ones dropped, acked ones
  // nacked (all reasons). The drain's last log line reports what it added.
  struct PublishFailures {
    double dropped = 0;
    double nacked = 0;
  };
  PublishFailures publish_failures();
  // Redis Cluster: per-shard connection state, labelled with the master's host:port (a
  // handful of series, one per master, not per connection).
  prometheus::Gauge& shard_connected(std::string const& shard, std::string_view role);
  void remove_shard(std::string const& shard);

  // Prometheus text format, podrelay_* and process_*. Folds the hot counters in first.
  std::string serialize();

  // Counters bumped once or more per message live here as plain integers (the data path
  // is single-threaded, so an atomic or a registry lookup per message would be pure cost).
  // serialize() adds what accumulated since the last scrape to the prometheus metrics.
  struct Hot {
    std::uint64_t published = 0;
    std::uint64_t received = 0;
    std::uint64_t delivered = 0;
    std::uint64_t acks = 0;
    std::uint64_t echoes_withheld = 0;        // PUBX echoes not delivered back to their sender
    std::array<std::uint64_t, 256> frames{};  // by frame type byte
    std::array<std::uint64_t, 15> latency_buckets{};  // latency_bounds, then +Inf
    double latency_sum = 0;
    void observe_latency(double seconds) noexcept;
  };
  Hot hot;
  static constexpr std::array<double, 14> latency_bounds{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

  prometheus::Gauge& app_connections;
  prometheus::Counter& app_connections_accepted;
  prometheus::Counter& messages_published;  // PUBLISH answered by Redis
  prometheus::Counter& messages_received;   // message / pmessage from Redis
  prometheus::Counter& messages_delivered;  // MSG frames queued to app connections
  prometheus::Counter& messages_unrouted;   // from Redis with no local subscriber left
  prometheus::Counter& publish_acks;
  prometheus::Counter& echoes_withheld;
  prometheus::Gauge& local_channel_subscriptions;
  prometheus::Gauge& local_pattern_subscriptions;
  prometheus::Gauge& redis_channel_subscriptions;
  prometheus::Gauge& redis_pattern_subscriptions;
  prometheus::Gauge& outbound_queue_bytes;
  prometheus::Gauge& publish_buffer_bytes;
  prometheus::Gauge& redis_publisher_connected;
  prometheus::Gauge& redis_subscriber_connected;
  prometheus::Counter& redis_publisher_reconnects;
  prometheus::Counter& redis_subscriber_reconnects;
  prometheus::Histogram& redis_publish_latency;
  prometheus::Counter& slow_consumer_disconnects;

 private:
  void fold_hot();
  Hot exported_;  // what fold_hot() already added to the prometheus metrics

 public:
  prometheus::Gauge& draining;

  // Durable channels (after `draining` so the families above exist first).
 private:
  prometheus::Family<prometheus::Counter>& durable_recoveries_;

 public:
  prometheus::Counter& durable_published;  // durable publishes Redis accepted (XADD)
  prometheus::Counter& durable_received;   // entries the stream reader read
  prometheus::Counter& durable_delivered;  // live durable messages queued to apps
  prometheus::Counter& durable_replayed;   // messages replayed to resumed subscriptions
  prometheus::Counter& durable_reader_reconnects;
  prometheus::Counter& durable_streams_lost;  // streams found lost or rolled back on reconnect
  prometheus::Gauge& durable_streams;         // durable channels the reader reads now
  prometheus::Gauge& redis_stream_reader_connected;
  // RSUB outcomes: fresh, recovered, epoch_changed, trimmed, stream_gone, unknown_id, failed.
  prometheus::Counter& durable_recovery(std::string_view outcome);
};

}  // namespace podrelay::metrics
