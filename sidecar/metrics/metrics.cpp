#include "metrics/metrics.hpp"

#include <prometheus/text_serializer.h>

#include "core/resume.hpp"
#include "metrics/process_metrics.hpp"

namespace podrelay::metrics {
namespace {

// The reasons a publish can fail for (README "Metrics": every one exists from the start).
constexpr proto::ErrorCode publish_failure_codes[] = {
    proto::ErrorCode::publish_buffer_full,
    proto::ErrorCode::publish_timeout,
    proto::ErrorCode::outcome_unknown,
    proto::ErrorCode::redis_error,
    proto::ErrorCode::draining,
    proto::ErrorCode::not_replicated,
};

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Family<prometheus::Counter>& counters(prometheus::Registry& r, std::string const& name,
                                                  std::string const& help) {
  return BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Gauge>& gauges(prometheus::Registry& r, std::string const& name,
                                              std::string const& help) {
  return BuildGauge().Name(name).Help(help).Register(r);
}
prometheus::Counter& counter(prometheus::Registry& r, std::string const& name,
                             std::string const& help, prometheus::Labels const& labels = {}) {
  return counters(r, name, help).Add(labels);
}
prometheus::Gauge& gauge(prometheus::Registry& r, std::string const& name, std::string const& help,
                         prometheus::Labels const& labels = {}) {
  return gauges(r, name, help).Add(labels);
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      frames_received_(counters(*registry_, "podrelay_frames_received_total",
                                "Frames received from apps, by type.")),
      protocol_errors_(counters(*registry_, "podrelay_protocol_errors_total",
                                "Protocol errors answered to apps, by error code name.")),
      publish_nacks_(counters(*registry_, "podrelay_publish_nacks_total",
                              "Publishes answered with ERR, by reason.")),
      messages_dropped_(counters(*registry_, "podrelay_messages_dropped_total",
                                 "Fire-and-forget publishes that could not be published, by "
                                 "reason.")),
      connections_refused_(counters(*registry_, "podrelay_app_connections_refused_total",
                                    "App connections refused, by reason.")),
      local_subscriptions_(gauges(*registry_, "podrelay_local_subscriptions",
                                  "App subscriptions on this sidecar (connection x name).")),
      redis_subscriptions_(
          gauges(*registry_, "podrelay_redis_subscriptions",
                 "Subscriptions this sidecar holds on Redis (one per distinct name).")),
      redis_connected_(gauges(*registry_, "podrelay_redis_connected",
                              "1 when the Redis connection of this role is up.")),
      redis_reconnects_(counters(*registry_, "podrelay_redis_reconnects_total",
                                 "Redis connections re-established after a loss.")),
      shard_connected_(gauges(*registry_, "podrelay_redis_shard_connected",
                              "Redis Cluster: 1 when this pod's connection of the role to the "
                              "shard's master is up.")),
      app_connections(gauge(*registry_, "podrelay_app_connections", "App connections open now.")),
      app_connections_accepted(counter(*registry_, "podrelay_app_connections_accepted_total",
                                       "App connections accepted.")),
      messages_published(counter(*registry_, "podrelay_messages_published_total",
                                 "App publishes that Redis accepted.")),
      messages_received(counter(*registry_, "podrelay_messages_received_total",
                                "Messages received from Redis for local subscribers.")),
      messages_delivered(counter(*registry_, "podrelay_messages_delivered_total",
                                 "MSG frames queued to app connections (one per receiver).")),
      messages_unrouted(counter(*registry_, "podrelay_messages_unrouted_total",
                                "Messages from Redis that arrived after their last local "
                                "subscriber left.")),
      publish_acks(counter(*registry_, "podrelay_publish_acks_total",
                           "OK answers sent for publishes that asked for an ack.")),
      echoes_withheld(counter(*registry_, "podrelay_echoes_withheld_total",
                              "Messages a PUBX sender did not get back (protocol version 3).")),
      local_channel_subscriptions(local_subscriptions_.Add({{"kind", "channel"}})),
      local_pattern_subscriptions(local_subscriptions_.Add({{"kind", "pattern"}})),
      redis_channel_subscriptions(redis_subscriptions_.Add({{"kind", "channel"}})),
      redis_pattern_subscriptions(redis_subscriptions_.Add({{"kind", "pattern"}})),
      outbound_queue_bytes(gauge(*registry_, "podrelay_outbound_queue_bytes",
                                 "Bytes queued to app connections, all connections together.")),
      publish_buffer_bytes(
          gauge(*registry_, "podrelay_publish_buffer_bytes",
                "Bytes of publishes waiting for Redis (unwritten or unanswered).")),
      redis_publisher_connected(redis_connected_.Add({{"role", "publisher"}})),
      redis_subscriber_connected(redis_connected_.Add({{"role", "subscriber"}})),
      redis_publisher_reconnects(redis_reconnects_.Add({{"role", "publisher"}})),
      redis_subscriber_reconnects(redis_reconnects_.Add({{"role", "subscriber"}})),
      redis_publish_latency(BuildHistogram()
                                .Name("podrelay_redis_publish_latency_seconds")
                                .Help("Time from writing a PUBLISH to Redis until its reply.")
                                .Register(*registry_)
                                .Add({}, prometheus::Histogram::BucketBoundaries(
                                             latency_bounds.begin(), latency_bounds.end()))),
      slow_consumer_disconnects(counter(*registry_, "podrelay_slow_consumer_disconnects_total",
                                        "App connections closed for not reading fast enough.")),
      draining(gauge(*registry_, "podrelay_draining", "1 while the sidecar drains after SIGTERM.")),
      durable_recoveries_(BuildCounter()
                              .Name("podrelay_durable_recoveries_total")
                              .Help("Resumed durable subscriptions (RSUB), by outcome.")
                              .Register(*registry_)),
      durable_published(counter(*registry_, "podrelay_durable_published_total",
                                "Publishes on durable channels that Redis appended.")),
      durable_received(counter(*registry_, "podrelay_durable_received_total",
                               "Entries of durable channels the stream reader read.")),
      durable_delivered(counter(*registry_, "podrelay_durable_delivered_total",
                                "Live durable messages queued to apps (one per receiver).")),
      durable_replayed(counter(*registry_, "podrelay_durable_replayed_total",
                               "Durable messages replayed to resumed subscriptions.")),
      durable_reader_reconnects(redis_reconnects_.Add({{"role", "stream-reader"}})),
      durable_streams_lost(counter(*registry_, "podrelay_durable_streams_lost_total",
                                   "Durable streams found, after a reconnect, without entries "
                                   "this pod had not read (their subscribers were cut off).")),
      durable_streams(gauge(*registry_, "podrelay_durable_streams",
                            "Durable channels the stream reader reads now.")),
      redis_stream_reader_connected(redis_connected_.Add({{"role", "stream-reader"}})) {
  BuildGauge()
      .Name("podrelay_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", PODRELAY_VERSION}})
      .Set(1);
  // Every label value the README lists exists from the start at 0: a series that is born at
  // 1 reads as no change to rate() and increase(), so an alert would miss the first event.
  using proto::ErrorCode;
  for (auto const code : publish_failure_codes) {
    publish_nack(code);
    if (code != ErrorCode::not_replicated) message_dropped(code);  // only acked ones wait
  }
  message_dropped(ErrorCode::frame_too_large);
  connection_refused(ErrorCode::too_many_connections);
  connection_refused(ErrorCode::draining);
  for (auto v = static_cast<std::uint16_t>(ErrorCode::malformed_frame);
       v <= static_cast<std::uint16_t>(ErrorCode::unexpected_frame); ++v) {
    protocol_error(static_cast<ErrorCode>(v));
  }
  for (auto const type :
       {proto::FrameType::hello, proto::FrameType::pub, proto::FrameType::pubx,
        proto::FrameType::sub, proto::FrameType::unsub, proto::FrameType::psub,
        proto::FrameType::punsub, proto::FrameType::rsub, proto::FrameType::ping}) {
    frames_received_.Add({{"type", std::string(proto::frame_type_name(type))}});
  }
  using Outcome = core::Resume::Outcome;
  for (auto const outcome : {Outcome::fresh, Outcome::recovered, Outcome::epoch_changed,
                             Outcome::trimmed, Outcome::stream_gone, Outcome::unknown_id}) {
    durable_recovery(core::outcome_name(outcome));
  }
  durable_recovery("failed");  // a resume that Redis could not serve (session_resume.cpp)
}

std::string_view Metrics::reason_label(proto::ErrorCode code) {
  using proto::ErrorCode;
  switch (code) {
    case ErrorCode::publish_buffer_full: return "buffer_full";
    case ErrorCode::publish_timeout: return "timeout";
    case ErrorCode::outcome_unknown: return "outcome_unknown";
    case ErrorCode::redis_error: return "redis_error";
    case ErrorCode::not_replicated: return "not_replicated";
    case ErrorCode::draining:
    case ErrorCode::shutting_down: return "draining";
    case ErrorCode::slow_consumer: return "slow_consumer";
    case ErrorCode::too_many_connections: return "too_many_connections";
    case ErrorCode::frame_too_large: return "frame_too_large";
    default: return "other";
  }
}

prometheus::Counter& Metrics::protocol_error(proto::ErrorCode code) {
  return protocol_errors_.Add({{"code", std::string(proto::error_name(code))}});
}
prometheus::Counter& Metrics::publish_nack(proto::ErrorCode code) {
  return publish_nacks_.Add({{"reason", std::string(reason_label(code))}});
}
prometheus::Counter& Metrics::message_dropped(proto::ErrorCode code) {
  return messages_dropped_.Add({{"reason", std::string(reason_label(code))}});
}
prometheus::Counter& Metrics::connection_refused(proto::ErrorCode code) {
  return connections_refused_.Add({{"reason", std::string(reason_label(code))}});
}

Metrics::PublishFailures Metrics::publish_failures() {
  PublishFailures f;
  for (auto const code : publish_failure_codes) {
    f.nacked += publish_nack(code).Value();
    if (code != proto::ErrorCode::not_replicated) f.dropped += message_dropped(code).Value();
  }
  return f;
}

void Metrics::Hot::observe_latency(double seconds) noexcept {
  std::size_t i = 0;
  while (i < latency_bounds.size() && seconds > latency_bounds[i]) ++i;
  ++latency_buckets[i];
  latency_sum += seconds;
}

void Metrics::fold_hot() {
  auto const add = [](prometheus::Counter& c, std::uint64_t now, std::uint64_t& before) {
    if (now > before) c.Increment(static_cast<double>(now - before));
    before = now;
  };
  add(messages_published, hot.published, exported_.published);
  add(messages_received, hot.received, exported_.received);
  add(messages_delivered, hot.delivered, exported_.delivered);
  add(publish_acks, hot.acks, exported_.acks);
  add(echoes_withheld, hot.echoes_withheld, exported_.echoes_withheld);
  for (std::size_t t = 0; t < hot.frames.size(); ++t) {
    if (hot.frames[t] == exported_.frames[t]) continue;
    auto const type = static_cast<proto::FrameType>(t);
    auto& c = frames_received_.Add({{"type", std::string(proto::frame_type_name(type))}});
    add(c, hot.frames[t], exported_.frames[t]);
  }
  std::vector<double> increments(hot.latency_buckets.size());
  bool any = false;
  for (std::size_t i = 0; i < increments.size(); ++i) {
    increments[i] = static_cast<double>(hot.latency_buckets[i] - exported_.latency_buckets[i]);
    any = any || increments[i] > 0;
  }
  if (any) {
    redis_publish_latency.ObserveMultiple(increments, hot.latency_sum - exported_.latency_sum);
    exported_.latency_buckets = hot.latency_buckets;
    exported_.latency_sum = hot.latency_sum;
  }
}

prometheus::Counter& Metrics::durable_recovery(std::string_view outcome) {
  return durable_recoveries_.Add({{"outcome", std::string(outcome)}});
}

prometheus::Gauge& Metrics::shard_connected(std::string const& shard, std::string_view role) {
  return shard_connected_.Add({{"shard", shard}, {"role", std::string(role)}});
}

void Metrics::remove_shard(std::string const& shard) {
  for (auto const* role : {"publisher", "subscriber"}) {
    shard_connected_.Remove(&shard_connected_.Add({{"shard", shard}, {"role", role}}));
  }
}

std::string Metrics::serialize() {
  fold_hot();
  std::string out = prometheus::TextSerializer().Serialize(registry_->Collect());
  append_process_metrics(out);
  return out;
}

}  // namespace podrelay::metrics
