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

 public:
  Metrics();

  // Why a message or publish did not make it, as a label value.
  static std::string_view reason_label(proto::ErrorCode code);

  prometheus::Counter& frames_received(proto::FrameType type);
  prometheus::Counter& protocol_error(proto::ErrorCode code);
  prometheus::Counter& publish_nack(proto::ErrorCode code);     // acked publish refused
  prometheus::Counter& message_dropped(proto::ErrorCode code);  // fire-and-forget lost
  prometheus::Counter& connection_refused(proto::ErrorCode code);

  std::string serialize() const;  // Prometheus text format, podrelay_* and process_*

  prometheus::Gauge& app_connections;
  prometheus::Counter& app_connections_accepted;
  prometheus::Counter& messages_published;  // PUBLISH answered by Redis
  prometheus::Counter& messages_received;   // message / pmessage from Redis
  prometheus::Counter& messages_delivered;  // MSG frames queued to app connections
  prometheus::Counter& messages_unrouted;   // from Redis with no local subscriber left
  prometheus::Counter& publish_acks;
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
  prometheus::Gauge& draining;
};

}  // namespace podrelay::metrics
