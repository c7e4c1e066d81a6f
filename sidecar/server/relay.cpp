#include "server/relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/session.hpp"
#include "util/log.hpp"

namespace podrelay::server {
namespace {

namespace asio = boost::asio;
using core::SubKind;
using proto::ErrorCode;
using Clock = std::chrono::steady_clock;

}  // namespace

Relay::Relay(asio::any_io_executor ex, config::Config const& cfg, metrics::Metrics& metrics)
    : ex_(ex),
      cfg_(cfg),
      metrics_(metrics),
      names_(cfg.channel_prefix),
      locator_(ex, cfg),
      publisher_(ex, cfg, locator_, *this),
      subscriber_(ex, cfg, locator_, *this),
      published_(&metrics.messages_published),
      received_(&metrics.messages_received),
      delivered_(&metrics.messages_delivered) {}

void Relay::start() {
  publisher_.start();
  subscriber_.start();
  // After a failover both connections move to the new master; acked publishes in flight
  // on the old one are answered OUTCOME_UNKNOWN, subscriptions are re-made.
  locator_.start_watch([this] {
    publisher_.reconnect();
    subscriber_.reconnect();
  });
}

bool Relay::admit_session() { return !draining_ && open_sockets_ < cfg_.max_connections; }

void Relay::add_session(std::shared_ptr<Session> const& session) {
  sessions_.emplace(session.get(), session);
  metrics_.app_connections_accepted.Increment();
}

void Relay::remove_session(Session& session) {
  if (sessions_.erase(&session) == 0) return;
  std::vector<std::string> channels;
  std::vector<std::string> patterns;
  for (auto const& name : session.names(SubKind::channel)) {
    release(session, SubKind::channel, name, channels);
  }
  for (auto const& name : session.names(SubKind::pattern)) {
    release(session, SubKind::pattern, name, patterns);
  }
  session.names(SubKind::channel).clear();
  session.names(SubKind::pattern).clear();
  subscriber_.send(SubKind::channel, false, channels);
  subscriber_.send(SubKind::pattern, false, patterns);
}

void Relay::publish(Session& session, std::uint32_t request_id, std::string_view channel,
                    std::string_view payload) {
  if (draining_) {
    if (request_id != 0) {
      metrics_.publish_nack(ErrorCode::draining).Increment();
      session.send_err(request_id, ErrorCode::draining, "the sidecar is shutting down");
    } else {
      metrics_.message_dropped(ErrorCode::draining).Increment();
    }
    return;
  }
  redis::PublishTag tag;
  if (request_id != 0) {
    tag.origin = std::weak_ptr<redis::PublishOrigin>(session.shared_from_this());
    tag.request_id = request_id;
  }
  if (!publisher_.publish(names_.redis_channel(channel), payload, std::move(tag))) {
    static log::RateLimit limit;
    std::size_t suppressed = 0;
    if (limit.allow(suppressed)) {
      log::warn("publish buffer full, refusing publishes",
                {{"buffer_bytes", std::to_string(cfg_.publish_buffer_bytes)},
                 {"redis_connected", publisher_.connected() ? "true" : "false"},
                 {"suppressed", std::to_string(suppressed)}});
    }
    if (request_id != 0) {
      metrics_.publish_nack(ErrorCode::publish_buffer_full).Increment();
      session.send_err(request_id, ErrorCode::publish_buffer_full,
                       "publish buffer full (--publish-buffer-bytes " +
                           std::to_string(cfg_.publish_buffer_bytes) + ")");
    } else {
      metrics_.message_dropped(ErrorCode::publish_buffer_full).Increment();
    }
    return;
  }
  if (request_id != 0) session.add_pending_ack();
}

void Relay::on_publish_outcome(redis::PublishTag const& tag, std::optional<ErrorCode> error,
                               std::string_view text, std::chrono::nanoseconds latency) {
  if (!error) {
    published_->Increment();
    metrics_.redis_publish_latency.Observe(std::chrono::duration<double>(latency).count());
  }
  if (tag.request_id == 0) {
    if (error) metrics_.message_dropped(*error).Increment();
    return;
  }
  if (error) {
    metrics_.publish_nack(*error).Increment();
  } else {
    metrics_.publish_acks.Increment();
  }
  if (auto origin = tag.origin.lock()) origin->on_publish_outcome(tag.request_id, error, text);
}

void Relay::subscribe(Session& session, SubKind kind, std::uint32_t request_id,
                      std::span<std::string_view const> names) {
  session.expect_control_reply(request_id);
  if (draining_) {
    session.control_reply(request_id, ErrorCode::draining, "the sidecar is shutting down");
    return;
  }
  if (names.empty()) {
    session.control_reply(request_id, ErrorCode::invalid_argument, "empty list of names");
    return;
  }
  for (auto const n : names) {
    if (kind == SubKind::pattern && n.empty()) {
      session.control_reply(request_id, ErrorCode::invalid_argument, "empty pattern");
      return;
    }
  }
  if (session.subscription_count() + names.size() > cfg_.max_subscriptions) {
    session.control_reply(request_id, ErrorCode::too_many_subscriptions,
                          "more than --max-subscriptions (" +
                              std::to_string(cfg_.max_subscriptions) + ") on one connection");
    return;
  }
  auto& mine = session.names(kind);
  auto const waiter = next_waiter_++;
  PendingSubscribe pending{std::weak_ptr<Session>(session.shared_from_this()), request_id, 0};
  std::vector<std::string> to_send;
  for (auto const name : names) {
    if (!mine.emplace(name).second) continue;
    bool const first = hub_.subscribe(kind, name, &session);
    auto redis_name =
        kind == SubKind::channel ? names_.redis_channel(name) : names_.redis_pattern(name);
    if (first && tracker_.want(kind, redis_name)) to_send.push_back(redis_name);
    if (!tracker_.active(kind, redis_name)) {
      tracker_.add_waiter(kind, redis_name, waiter);
      ++pending.remaining;
    }
  }
  subscriber_.send(kind, true, to_send);
  if (pending.remaining == 0) {
    session.control_reply(request_id);
  } else {
    pending_.emplace(waiter, std::move(pending));
  }
}

void Relay::unsubscribe(Session& session, SubKind kind, std::uint32_t request_id,
                        std::span<std::string_view const> names) {
  session.expect_control_reply(request_id);
  auto& mine = session.names(kind);
  std::vector<std::string> to_send;
  if (names.empty()) {
    for (auto const& name : mine) release(session, kind, name, to_send);
    mine.clear();
  } else {
    for (auto const name : names) {
      auto const it = mine.find(std::string(name));
      if (it == mine.end()) continue;
      release(session, kind, *it, to_send);
      mine.erase(it);
    }
  }
  subscriber_.send(kind, false, to_send);
  session.control_reply(request_id);
}

void Relay::release(Session& session, SubKind kind, std::string const& name,
                    std::vector<std::string>& unsubscribe_now) {
  if (!hub_.unsubscribe(kind, name, &session)) return;
  auto redis_name =
      kind == SubKind::channel ? names_.redis_channel(name) : names_.redis_pattern(name);
  auto unwanted = tracker_.unwant(kind, redis_name);
  if (unwanted.send_unsubscribe) unsubscribe_now.push_back(std::move(redis_name));
  release_waiters(unwanted.released);
}

void Relay::release_waiters(std::vector<core::SubscriptionTracker::WaiterId> const& ids) {
  for (auto const id : ids) {
    auto const it = pending_.find(id);
    if (it == pending_.end()) continue;
    if (--it->second.remaining > 0) continue;
    if (auto session = it->second.session.lock()) session->control_reply(it->second.request_id);
    pending_.erase(it);
  }
}

void Relay::on_publisher_state(bool connected) {
  metrics_.redis_publisher_connected.Set(connected ? 1 : 0);
  if (connected) {
    if (publisher_seen_up_) metrics_.redis_publisher_reconnects.Increment();
    publisher_seen_up_ = true;
    log::info("redis connected", {{"role", "publisher"}, {"redis", redis::redact(cfg_.redis)}});
  } else {
    log::warn("redis disconnected", {{"role", "publisher"}});
  }
}

void Relay::on_subscriber_state(bool connected) {
  metrics_.redis_subscriber_connected.Set(connected ? 1 : 0);
  if (!connected) {
    tracker_.on_disconnected();
    log::warn("redis disconnected", {{"role", "subscriber"}});
    return;
  }
  if (subscriber_seen_up_) metrics_.redis_subscriber_reconnects.Increment();
  subscriber_seen_up_ = true;
  std::vector<std::string> channels;
  std::vector<std::string> patterns;
  for (auto& cmd : tracker_.on_connected()) {
    (cmd.kind == SubKind::channel ? channels : patterns).push_back(std::move(cmd.name));
  }
  log::info("redis connected",
            {{"role", "subscriber"},
             {"redis", redis::redact(cfg_.redis)},
             {"resubscribing", std::to_string(channels.size() + patterns.size())}});
  subscriber_.send(SubKind::channel, true, channels);
  subscriber_.send(SubKind::pattern, true, patterns);
}

void Relay::on_pubsub_event(redis::PubSubEvent const& ev) {
  using Kind = redis::PubSubEvent::Kind;
  switch (ev.kind) {
    case Kind::message: {
      auto const channel = names_.app_channel(ev.name);
      if (channel) fan_out(SubKind::channel, *channel, *channel, {}, ev.payload);
      break;
    }
    case Kind::pmessage: {
      auto const pattern = names_.app_pattern(ev.name);
      auto const channel = names_.app_channel(ev.channel);
      if (pattern && channel) fan_out(SubKind::pattern, *pattern, *channel, *pattern, ev.payload);
      break;
    }
    case Kind::subscribed:
      release_waiters(tracker_.on_confirmed(SubKind::channel, ev.name, true));
      break;
    case Kind::psubscribed:
      release_waiters(tracker_.on_confirmed(SubKind::pattern, ev.name, true));
      break;
    case Kind::unsubscribed:
      release_waiters(tracker_.on_confirmed(SubKind::channel, ev.name, false));
      break;
    case Kind::punsubscribed:
      release_waiters(tracker_.on_confirmed(SubKind::pattern, ev.name, false));
      break;
    case Kind::error: {
      static log::RateLimit limit;
      std::size_t suppressed = 0;
      if (limit.allow(suppressed)) {
        log::error("redis refused a subscriber command",
                   {{"error", ev.payload}, {"suppressed", std::to_string(suppressed)}});
      }
      break;
    }
    case Kind::pong:
    case Kind::unexpected: break;
  }
}

void Relay::fan_out(SubKind kind, std::string_view key, std::string_view channel,
                    std::string_view pattern, std::string_view payload) {
  received_->Increment();
  if (hub_.subscriber_count(kind, key) == 0 || !proto::fits_str(channel)) {
    metrics_.messages_unrouted.Increment();
    return;
  }
  auto frame = std::make_shared<std::string>();
  frame->reserve(proto::msg_frame_size(channel.size(), pattern.size(), payload.size()));
  proto::encode_msg(*frame, channel, pattern, payload);
  core::SharedFrame const shared = std::move(frame);
  delivered_->Increment(static_cast<double>(hub_.deliver(kind, key, shared)));
}

std::string Relay::not_ready_reason() const {
  if (draining_) return "draining: the sidecar is shutting down";
  if (!listening_) return "not listening yet";
  if (!publisher_.connected()) return "redis publisher connection is down";
  if (!subscriber_.connected()) return "redis subscriber connection is down";
  return {};
}

void Relay::update_gauges() {
  metrics_.app_connections.Set(static_cast<double>(open_sockets_));
  metrics_.local_channel_subscriptions.Set(
      static_cast<double>(hub_.subscription_count(SubKind::channel)));
  metrics_.local_pattern_subscriptions.Set(
      static_cast<double>(hub_.subscription_count(SubKind::pattern)));
  metrics_.redis_channel_subscriptions.Set(
      static_cast<double>(tracker_.confirmed_count(SubKind::channel)));
  metrics_.redis_pattern_subscriptions.Set(
      static_cast<double>(tracker_.confirmed_count(SubKind::pattern)));
  std::size_t queued = 0;
  for (auto const& [ptr, weak] : sessions_) queued += ptr->queued_bytes();
  metrics_.outbound_queue_bytes.Set(static_cast<double>(queued));
  metrics_.publish_buffer_bytes.Set(static_cast<double>(publisher_.buffered_bytes()));
}

asio::awaitable<void> Relay::drain() {
  draining_ = true;
  metrics_.draining.Set(1);
  auto const deadline = Clock::now() + cfg_.drain_timeout;
  log::info("draining", {{"connections", std::to_string(open_sockets_)},
                         {"drain_timeout_ms", std::to_string(cfg_.drain_timeout.count())}});
  std::vector<std::shared_ptr<Session>> live;
  for (auto const& [ptr, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto const& s : live) {
    s->goaway(ErrorCode::shutting_down, "the sidecar is shutting down; reconnect", true);
  }
  co_await publisher_.flush(deadline);
  // Let sessions write the last acks and close.
  asio::steady_timer timer(ex_);
  while (open_sockets_ > 0 && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  // Whatever Redis did not answer in time is answered now (OUTCOME_UNKNOWN or DRAINING);
  // the sessions get a moment to write those last replies before they are closed.
  publisher_.stop();
  subscriber_.stop();
  locator_.stop();
  auto const last_words = Clock::now() + std::chrono::seconds(1);
  while (open_sockets_ > 0 && Clock::now() < last_words) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  for (auto const& s : live) s->close();
  log::info("drained", {{"unflushed_connections", std::to_string(open_sockets_)}});
}

}  // namespace podrelay::server
