#include "server/relay.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <random>

#include "server/connection.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::server {
namespace {

namespace asio = boost::asio;
using core::SubKind;
using proto::ErrorCode;
using Clock = std::chrono::steady_clock;
constexpr std::uint8_t max_redirects = 5;
constexpr std::chrono::seconds cluster_refresh_interval{5};

core::DurableChannels::Options durable_options(config::Config const& cfg) {
  core::DurableChannels::Options o;
  o.patterns = cfg.durable;
  o.max_len = cfg.durable_max_len;
  o.ttl = std::chrono::duration_cast<decltype(o.ttl)>(cfg.durable_ttl);
  o.min_replicas = cfg.durable_min_replicas;
  return o;
}

}  // namespace

Relay::Relay(asio::any_io_executor ex, config::Config const& cfg, metrics::Metrics& metrics)
    : ex_(ex),
      cfg_(cfg),
      metrics_(metrics),
      names_(cfg.channel_prefix),
      resp_names_(cfg.resp_channel_prefix),
      durable_(cfg.channel_prefix, durable_options(cfg)),
      subscriptions_({cfg.max_subscriptions, cfg.redis.mode != config::RedisUrl::Mode::cluster,
                      cfg.max_subscription_bytes},
                     [this](std::string_view redis_name) {
                       if (reader_ && durable_.durable_app_channel(redis_name)) {
                         return durable_shard_id;
                       }
                       return route(redis_name).id;
                     }),
      connections_(ex, cfg.max_connections) {
  std::random_device entropy;
  epoch_counter_ = (std::uint64_t{entropy()} << 32) ^ entropy();
  if (!cfg.auth_token.empty()) resp_config_.auth_token = cfg.auth_token;
  resp_config_.podrelay_version = PODRELAY_VERSION;
  resp_config_.patterns_allowed = cfg.redis.mode != config::RedisUrl::Mode::cluster;
  if (cfg.redis.mode == config::RedisUrl::Mode::cluster) {
    // The first seed serves until the slot map is known; MOVED replies correct it.
    auto& seed = shard_at(cfg.redis.endpoints.front());
    topology_ = std::make_unique<redis::ClusterTopology>(
        ex, cfg.redis.endpoints, seed.locator.master_options(), cluster_refresh_interval,
        [this](redis::SlotMap const& map) { on_topology(map); });
    topology_->set_degraded_check([this] {
      for (auto* s : active_shards()) {
        if (!s->publisher.connected() || !s->subscriber.connected()) return true;
      }
      return false;
    });
    if (durable_.enabled()) start_polls(ex);
  } else {
    auto const id = shards_.size();
    shards_.push_back(std::make_unique<Shard>(ex, cfg, Shard::Events{*this, *this}, id,
                                              std::nullopt,
                                              [this, id] { return !subscriptions_.settled(id); }));
    if (durable_.enabled()) {
      reader_ =
          std::make_unique<redis::StreamReader>(ex, cfg, shards_.front()->locator, durable_, *this);
      shards_.front()->also_on_failover([this] { reader_->reconnect(); });
    }
  }
}

void Relay::start() {
  for (auto& s : shards_) s->start();
  if (reader_) reader_->start();
  if (topology_) topology_->start();
}

Shard& Relay::shard_at(config::Endpoint const& node) {
  for (auto& s : shards_) {
    if (s->node && *s->node == node && !s->retired()) return *s;
  }
  auto const id = shards_.size();
  shards_.push_back(std::make_unique<Shard>(ex_, cfg_, Shard::Events{*this, *this}, id, node,
                                            [this, id] { return !subscriptions_.settled(id); }));
  auto& shard = *shards_.back();
  // Shards made before start() are started by it; later ones (new masters) at once.
  if (listening_ || topology_) shard.start();
  return shard;
}

Shard& Relay::route(std::string_view redis_name) {
  if (!cluster()) return *shards_.front();
  if (auto owner = slots_.owner(redis::key_slot(redis_name))) return shard_at(*owner);
  return shard_at(cfg_.redis.endpoints.front());
}

std::vector<Shard*> Relay::active_shards() const {
  std::vector<Shard*> out;
  for (auto const& s : shards_) {
    if (s->retired()) continue;
    if (cluster()) {
      auto const masters = slots_.masters();
      if (std::find(masters.begin(), masters.end(), *s->node) == masters.end()) continue;
    }
    out.push_back(s.get());
  }
  return out;
}

std::string Relay::where(Shard const& shard) const {
  return shard.node ? shard.node->to_string() : config::redact(cfg_.redis);
}

void Relay::apply(core::Subscriptions::Effects const& fx) {
  for (auto const& c : fx.commands) {
    if (reader_ && c.shard == durable_shard_id) {
      reader_->send(c.subscribe, c.names);
    } else {
      shards_.at(c.shard)->subscriber.send(c.kind, c.subscribe, c.names);
    }
  }
  for (auto const& r : fx.replies) r.receiver->on_subscription_reply(r.request_id, r.error, r.text);
}

ConnectionSlots::Slot Relay::attach(std::shared_ptr<Connection> const& session) {
  sessions_.emplace(session.get(), session);
  subscriptions_.attach(*session);
  metrics_.app_connections_accepted.Increment();
  return connections_.take();
}

void Relay::detach(Connection& session) {
  if (sessions_.erase(&session) == 0) return;
  if (!echoes_.empty()) {
    echoes_.forget(&session);
    update_quiet();
  }
  apply(subscriptions_.detach(session));
}

std::optional<Relay::Nack> Relay::publish(Connection& session, std::uint32_t request_id,
                                          core::ChannelNames const& names, std::string_view channel,
                                          std::string_view payload, bool except_sender) {
  auto const refuse = [&](ErrorCode code, std::string text) -> std::optional<Nack> {
    if (request_id == 0) {
      metrics_.message_dropped(code).Increment();
      return std::nullopt;
    }
    metrics_.publish_nack(code).Increment();
    return Nack{code, std::move(text)};
  };
  if (draining_) return refuse(ErrorCode::draining, "the sidecar is shutting down");
  redis::PublishTag tag;
  if (request_id != 0) {
    tag.origin = std::weak_ptr<redis::PublishOrigin>(session.shared_from_this());
    tag.request_id = request_id;
  }
  if (auto why = reserved_channel(names, channel)) {
    return refuse(ErrorCode::invalid_argument, std::move(*why));
  }
  if (reader_ || cluster_durable()) {
    auto const rname = names.redis_channel(channel);
    if (auto const app = durable_.durable_app_channel(rname)) {
      // Every delivery of a durable message carries its stream id: one whose SMSG could not
      // be framed would be appended and acked, and then reach nobody.
      constexpr std::size_t longest_id = 41;  // "<u64>-<u64>"
      auto const overhead =
          proto::smsg_frame_size(app->size(), longest_id, 0) - proto::header_bytes;
      if (overhead + payload.size() > cfg_.max_frame_bytes) {
        auto const room = cfg_.max_frame_bytes > overhead ? cfg_.max_frame_bytes - overhead : 0;
        return refuse(ErrorCode::invalid_argument,
                      "payload of " + std::to_string(payload.size()) +
                          " bytes too large for a durable channel: its SMSG would exceed "
                          "max_frame_bytes " +
                          std::to_string(cfg_.max_frame_bytes) + " (at most " +
                          std::to_string(room) + " bytes on this channel)");
      }
      if (auto nack = publish_durable(std::move(tag), *app, payload)) {
        return refuse(nack->code, std::move(nack->text));
      }
      return std::nullopt;
    }
  }
  // Single Redis: no per-message string for the prefixed name; the encoder joins them.
  Shard* shard = shards_.front().get();
  if (cluster()) {
    auto const rname = names.redis_channel(channel);
    tag.slot = redis::key_slot(rname);
    shard = &route(rname);
  }
  if (shard->publisher.publish(names.prefix(), channel, payload, std::move(tag))) {
    if (except_sender) {
      // Remembered only when the sender would get the echo: otherwise none is withheld.
      auto const rname = names.redis_channel(channel);
      if (subscriptions_.has(SubKind::channel, rname, session) &&
          echoes_.expect(rname, payload, &session, quiet_echo_bytes(rname, payload))) {
        update_quiet();
      }
    }
    return std::nullopt;
  }
  static log::RateLimit limit;
  log::warn_limited(limit, "publish buffer full, refusing publishes",
                    {{"buffer_bytes", cfg_.publish_buffer_bytes}});
  return refuse(ErrorCode::publish_buffer_full, "publish buffer full (--publish-buffer-bytes " +
                                                    std::to_string(cfg_.publish_buffer_bytes) +
                                                    ")");
}

std::size_t Relay::quiet_echo_bytes(std::string const& redis_channel,
                                    std::string_view payload) const {
  // A single Redis only (one subscriber link); the sender must be the channel's one local
  // receiver, and Redis must have confirmed the subscription, or the echo may never come.
  if (cluster() || cfg_.lazy_read_window.count() == 0) return 0;
  // The publish must be on its way: one held in the buffer while Redis is away would hold
  // the mark up for a whole spell.
  auto const& shard = *shards_.front();
  if (!shard.subscriber.can_leave_unread() || !shard.publisher.connected()) return 0;
  if (subscriptions_.receiver_count(SubKind::channel, redis_channel) != 1) return 0;
  if (!subscriptions_.active(0, SubKind::channel, redis_channel)) return 0;
  return redis::message_push_size(redis_channel.size(), payload.size());
}

void Relay::update_quiet() {
  if (!cluster()) shards_.front()->subscriber.leave_unread(echoes_.quiet_bytes());
}

void Relay::on_quiet_spell_over(std::size_t) {
  echoes_.end_quiet_spell();
  update_quiet();
}

bool Relay::redirect(redis::PublishTag const& tag, std::string_view error_text) {
  // On Redis Cluster a MOVED/ASK answer means the command was not executed, so sending it
  // to the node named cannot publish twice.
  if (!cluster() || !tag.command || tag.redirects >= max_redirects) return false;
  auto const r = redis::parse_redirect(error_text);
  if (!r) return false;
  topology_->refresh_soon();
  auto next = tag;
  ++next.redirects;
  return shard_at(r->target).publisher.publish_encoded(*tag.command, std::move(next), r->ask);
}

void Relay::on_publish_outcome(std::size_t, redis::PublishTag const& tag,
                               std::optional<ErrorCode> error, std::string_view text,
                               std::chrono::nanoseconds latency, redisReply const* reply) {
  if (tag.query) {
    if (auto origin = tag.origin.lock()) {
      origin->on_publish_outcome(tag.request_id, error, text, reply);
    }
    return;
  }
  if (tag.durable_query) {
    if (auto origin = tag.origin.lock()) origin->on_durable_reply(tag.token, error, text, reply);
    return;
  }
  std::string durable_text;
  if (tag.durable) {
    durable_text = std::string(text);
    if (!durable_outcome(tag, error, durable_text, reply)) return;
    text = durable_text;
    reply = nullptr;  // the id travels in `text`
    if (!error) metrics_.durable_published.Increment();
  }
  if (error == ErrorCode::redis_error) {
    if (redirect(tag, text)) return;
    // An ACL denial, OOM, a READONLY replica: the app gets the text in its ERR, the
    // operator only sees a counter otherwise (and never for a fire-and-forget publish).
    static log::RateLimit limit;
    log::warn_limited(
        limit, "Redis refused a publish",
        {{"redis_error", std::string(text)}, {"acked", tag.request_id != 0 ? "true" : "false"}});
  }
  if (!error) {
    ++metrics_.hot.published;
    // Unknown for a reply read lazily (redis/publisher.hpp): not a round trip.
    if (latency.count() >= 0) {
      metrics_.hot.observe_latency(std::chrono::duration<double>(latency).count());
    }
  }
  if (tag.request_id == 0) {
    if (error) metrics_.message_dropped(*error).Increment();
    return;
  }
  if (error) {
    metrics_.publish_nack(*error).Increment();
  } else {
    ++metrics_.hot.acks;
  }
  if (auto origin = tag.origin.lock()) {
    origin->on_publish_outcome(tag.request_id, error, text, reply);
  }
}

void Relay::subscribe(Connection& session, core::ChannelNames const& map, SubKind kind,
                      std::uint32_t request_id, std::span<std::string_view const> names) {
  if (draining_) {
    apply(subscriptions_.reject(session, request_id, ErrorCode::draining,
                                "the sidecar is shutting down"));
    return;
  }
  std::vector<std::string> redis_names;
  redis_names.reserve(names.size());
  for (auto const n : names) {
    if (kind == SubKind::pattern && n.empty() && !cluster()) {
      apply(
          subscriptions_.reject(session, request_id, ErrorCode::invalid_argument, "empty pattern"));
      return;
    }
    if (kind == SubKind::channel) {
      if (auto why = reserved_channel(map, n)) {
        apply(subscriptions_.reject(session, request_id, ErrorCode::invalid_argument, *why));
        return;
      }
    }
    redis_names.push_back(kind == SubKind::channel ? subscription_name(map, n)
                                                   : map.redis_pattern(n));
  }
  apply(subscriptions_.subscribe(session, kind, request_id, redis_names));
}

void Relay::unsubscribe(Connection& session, core::ChannelNames const& map, SubKind kind,
                        std::uint32_t request_id, std::span<std::string_view const> names) {
  std::vector<std::string> redis_names;
  redis_names.reserve(names.size());
  for (auto const n : names) {
    redis_names.push_back(kind == SubKind::channel ? subscription_name(map, n)
                                                   : map.redis_pattern(n));
  }
  apply(subscriptions_.unsubscribe(session, kind, request_id, redis_names));
}

std::vector<std::string> Relay::held_names(Connection const& connection, SubKind kind) const {
  auto names = subscriptions_.names(connection, kind);
  if (cluster_durable() && kind == SubKind::channel) {
    for (auto& n : names) {
      if (auto const app = durable_.app_of_wake(n)) n = names_.redis_channel(*app);
    }
  }
  return names;
}

std::optional<Relay::Nack> Relay::query(Connection& connection, std::uint32_t request_id,
                                        std::string const& command, std::string_view route_name) {
  if (draining_) return Nack{ErrorCode::draining, "the sidecar is shutting down"};
  redis::PublishTag tag;
  tag.origin = std::weak_ptr<redis::PublishOrigin>(connection.shared_from_this());
  tag.request_id = request_id;
  tag.query = true;
  auto& shard = route_name.empty() ? *shards_.front() : route(route_name);
  if (shard.publisher.publish_encoded(command, std::move(tag), false)) return std::nullopt;
  return Nack{ErrorCode::publish_buffer_full, "publish buffer full (--publish-buffer-bytes " +
                                                  std::to_string(cfg_.publish_buffer_bytes) + ")"};
}

void Relay::update_connected_gauges() {
  bool pub = true;
  bool sub = true;
  for (auto* s : active_shards()) {
    pub = pub && s->publisher.connected();
    sub = sub && s->subscriber.connected();
    if (s->node) {
      auto const shard = s->node->to_string();
      metrics_.shard_connected(shard, "publisher").Set(s->publisher.connected() ? 1 : 0);
      metrics_.shard_connected(shard, "subscriber").Set(s->subscriber.connected() ? 1 : 0);
    }
  }
  metrics_.redis_publisher_connected.Set(pub ? 1 : 0);
  metrics_.redis_subscriber_connected.Set(sub ? 1 : 0);
}

void Relay::on_publisher_state(std::size_t link, bool connected) {
  update_connected_gauges();
  auto& shard = *shards_.at(link);
  if (connected) {
    if (publisher_seen_up_) metrics_.redis_publisher_reconnects.Increment();
    publisher_seen_up_ = true;
    log::info("redis connected", {{"role", "publisher"}, {"redis", where(shard)}});
  } else {
    log::warn("redis disconnected", {{"role", "publisher"}, {"redis", where(shard)}});
    if (topology_ && !shard.retired()) topology_->refresh_soon();
  }
}

void Relay::on_subscriber_state(std::size_t link, bool connected) {
  update_connected_gauges();
  auto& shard = *shards_.at(link);
  echoes_.clear();  // no echo still on its way can come through a new connection
  update_quiet();
  if (!connected) {
    subscriptions_.on_disconnected(link);
    log::warn("redis disconnected", {{"role", "subscriber"}, {"redis", where(shard)}});
    if (topology_ && !shard.retired()) topology_->refresh_soon();
    return;
  }
  if (subscriber_seen_up_) metrics_.redis_subscriber_reconnects.Increment();
  subscriber_seen_up_ = true;
  auto const fx = subscriptions_.on_connected(link);
  std::size_t names = 0;
  for (auto const& c : fx.commands) names += c.names.size();
  log::info("redis connected",
            {{"role", "subscriber"}, {"redis", where(shard)}, {"resubscribing", names}});
  apply(fx);
}

void Relay::on_message(std::size_t, redis::PubSubEvent const& ev) {
  if (cluster_durable() && on_wake(ev)) return;
  ++metrics_.hot.received;
  bool const pattern = ev.kind == redis::PubSubEvent::Kind::pmessage;
  auto const kind = pattern ? SubKind::pattern : SubKind::channel;
  core::Delivery message(names_, resp_names_, cfg_.max_frame_bytes, ev.channel,
                         pattern ? ev.name : "", ev.payload);
  if (!pattern && !echoes_.empty()) {
    // Withheld from its PUBX sender on its channel subscription only: a pattern
    // subscription gets it like any message (PROTOCOL.md, version 3).
    if (auto const* sender = echoes_.take(ev.channel, ev.payload)) {
      message.set_except(sender);
      ++metrics_.hot.echoes_withheld;
    }
    update_quiet();  // applied once this read's messages are handled
  }
  auto const delivered = subscriptions_.deliver(kind, ev.name, message);
  metrics_.hot.delivered += delivered;
  if (message.too_large()) {
    // The sidecar never sends a frame above the limit it announced in WELCOME.
    metrics_.message_dropped(ErrorCode::frame_too_large).Increment();
    static log::RateLimit limit;
    log::warn_limited(limit, "message from Redis too large for the app's frame limit; dropped",
                      {{"channel", ev.channel},
                       {"payload_bytes", ev.payload.size()},
                       {"max_frame_bytes", cfg_.max_frame_bytes}});
  } else if (delivered == 0 && message.except() == nullptr) {
    metrics_.messages_unrouted.Increment();
  }
}

void Relay::on_message_dropped(std::size_t, redis::PubSubEvent const& ev,
                               std::size_t payload_bytes) {
  ++metrics_.hot.received;
  // No receiver could take it: above the frame limit and every connection's hard queue limit.
  metrics_.message_dropped(ErrorCode::frame_too_large).Increment();
  static log::RateLimit limit;
  log::warn_limited(limit, "message from Redis too large to buffer; skipped",
                    {{"channel", ev.channel},
                     {"payload_bytes", payload_bytes},
                     {"max_reply_bytes", redis::Subscriber::max_reply_bytes(cfg_)}});
}

void Relay::on_confirmed(std::size_t link, SubKind kind, std::string_view name, bool subscribed) {
  // A durable channel's wake subscription is confirmed to its waiters once its position is
  // known (so the OK of a SUB still means "every later entry reaches you").
  if (cluster_durable() && kind == SubKind::channel && on_wake_confirmed(link, name, subscribed)) {
    return;
  }
  if (!subscribed && kind == SubKind::channel && !echoes_.empty()) {
    echoes_.drop(name);  // no echo of it can come
    update_quiet();
  }
  apply(subscriptions_.on_confirmed(link, kind, name, subscribed));
  // Redis Cluster drops sharded subscriptions of a slot that moved away.
  if (!subscribed && topology_ && kind == SubKind::channel &&
      subscriptions_.orphaned(link, kind, std::string(name))) {
    topology_->refresh_soon();
  }
}

void Relay::on_refused(std::size_t link, SubKind kind, bool subscribe,
                       std::vector<std::string> const& names, std::string_view text) {
  if (topology_ && redis::parse_redirect(text)) {
    // A SSUBSCRIBE reached a node that no longer owns the slot: nothing happened; the
    // refreshed topology places the names again.
    subscriptions_.on_not_executed(link, kind, names, subscribe);
    topology_->refresh_soon();
    return;
  }
  static log::RateLimit limit;
  log::error_limited(limit, "redis refused a subscriber command",
                     {{"error", text},
                      {"names", names.size()},
                      {"first", names.empty() ? std::string_view() : names.front()}});
  if (subscribe) {
    apply(subscriptions_.on_refused(link, kind, names, text));
  } else {
    subscriptions_.on_not_executed(link, kind, names, subscribe);
  }
}

void Relay::on_topology(redis::SlotMap const& map) {
  bool const first = slots_.empty();
  slots_ = map;
  if (first || !map.covers_all_slots()) {
    log::info("redis cluster topology",
              {{"masters", map.masters().size()},
               {"all_slots_covered", map.covers_all_slots() ? "true" : "false"}});
  }
  for (auto const& m : map.masters()) shard_at(m);
  // Channels whose slot now lives elsewhere follow it; those Redis dropped are re-made.
  apply(subscriptions_.on_topology_changed());
  retire_shards(map);
  update_connected_gauges();
}

void Relay::retire_shards(redis::SlotMap const& map) {
  // Shards of nodes that are no longer masters retire; their unwritten publishes go to the
  // current owner of each message's slot.
  auto const masters = map.masters();
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    auto* s = shards_[i].get();
    if (s->retired() || std::find(masters.begin(), masters.end(), *s->node) != masters.end()) {
      continue;
    }
    if (subscriptions_.wanted_count(s->id, SubKind::channel) > 0) continue;  // still moving away
    log::info("redis cluster node retired", {{"node", s->node->to_string()}});
    s->mark_retired();
    metrics_.remove_shard(s->node->to_string());
    auto leftovers = s->publisher.retire();
    s->stop();
    for (auto& item : leftovers) {
      auto owner = map.owner(item.tag.slot);
      bool const moved =
          owner && item.tag.command &&
          shard_at(*owner).publisher.publish_encoded(*item.tag.command, item.tag, false);
      if (!moved) {
        on_publish_outcome(s->id, item.tag, ErrorCode::publish_buffer_full,
                           "the cluster node went away and the message could not be moved", {},
                           nullptr);
      }
    }
  }
}

std::string Relay::not_ready_reason() const {
  if (draining_) return "draining: the sidecar is shutting down";
  if (!listening_) return "not listening yet";
  if (cluster() && !slots_.covers_all_slots()) return "redis cluster slot map incomplete";
  for (auto* s : active_shards()) {
    auto const at = s->node ? " (" + s->node->to_string() + ")" : std::string();
    if (!s->publisher.connected()) return "redis publisher connection is down" + at;
    if (!s->subscriber.connected()) return "redis subscriber connection is down" + at;
  }
  if (reader_ && !reader_->connected()) return "redis stream reader connection is down";
  return {};
}

void Relay::update_gauges() {
  metrics_.app_connections.Set(static_cast<double>(connections_.open()));
  metrics_.local_channel_subscriptions.Set(
      static_cast<double>(subscriptions_.local_subscription_count(SubKind::channel)));
  metrics_.local_pattern_subscriptions.Set(
      static_cast<double>(subscriptions_.local_subscription_count(SubKind::pattern)));
  metrics_.redis_channel_subscriptions.Set(
      static_cast<double>(subscriptions_.confirmed_count(SubKind::channel)));
  metrics_.redis_pattern_subscriptions.Set(
      static_cast<double>(subscriptions_.confirmed_count(SubKind::pattern)));
  std::size_t buffered = 0;
  for (auto const& s : shards_) buffered += s->publisher.buffered_bytes();
  metrics_.publish_buffer_bytes.Set(static_cast<double>(buffered));
  std::size_t queued = 0;
  for (auto const& [ptr, weak] : sessions_) queued += ptr->queued_bytes();
  metrics_.outbound_queue_bytes.Set(static_cast<double>(queued));
  if (reader_) metrics_.durable_streams.Set(static_cast<double>(reader_->channels()));
  if (cluster_durable()) metrics_.durable_streams.Set(static_cast<double>(polls_.size()));
  update_connected_gauges();
}

asio::awaitable<void> Relay::drain() {
  draining_ = true;
  metrics_.draining.Set(1);
  auto const deadline = Clock::now() + cfg_.drain_timeout;
  auto const failed_before = metrics_.publish_failures();
  log::info("draining", {{"connections", connections_.open()},
                         {"drain_timeout_ms", cfg_.drain_timeout.count()}});
  std::vector<std::shared_ptr<Connection>> live;
  for (auto const& [ptr, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto const& s : live) {
    s->goaway(ErrorCode::shutting_down, "the sidecar is shutting down; reconnect", true);
  }
  for (auto const& s : shards_) {
    if (!s->retired()) co_await s->publisher.flush(deadline);
  }
  // Let sessions write the last acks and close.
  asio::steady_timer timer(ex_);
  while (connections_.open() > 0 && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(use_tuple);
  }
  // Whatever Redis did not answer in time is answered now (OUTCOME_UNKNOWN or DRAINING);
  // the sessions get a moment to write those last replies before they are closed.
  if (topology_) topology_->stop();
  if (poll_retry_) poll_retry_->cancel();
  for (auto const& s : shards_) s->stop();
  if (reader_) reader_->stop();
  auto const last_words = Clock::now() + std::chrono::seconds(1);
  while (connections_.open() > 0 && Clock::now() < last_words) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(use_tuple);
  }
  for (auto const& s : live) s->close();
  // The admin port is gone by now: this line is where the drain's own losses show.
  auto const failed = metrics_.publish_failures();
  auto const count = [](double v) { return static_cast<std::uint64_t>(v); };
  log::info("drained", {{"unflushed_connections", connections_.open()},
                        {"fire_and_forget_dropped", count(failed.dropped - failed_before.dropped)},
                        {"acked_nacked", count(failed.nacked - failed_before.nacked)}});
}

}  // namespace podrelay::server
