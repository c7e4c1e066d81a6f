#include "server/relay.hpp"

#include <malloc.h>

#include <algorithm>
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
constexpr std::uint8_t max_redirects = 5;
constexpr std::chrono::seconds cluster_refresh_interval{5};

std::string endpoint_text(redis::Endpoint const& ep) {
  return ep.host + ":" + std::to_string(ep.port);
}

}  // namespace

Relay::Relay(asio::any_io_executor ex, config::Config const& cfg, metrics::Metrics& metrics)
    : ex_(ex), cfg_(cfg), metrics_(metrics), names_(cfg.channel_prefix), trim_timer_(ex) {
  if (cfg.redis.mode == redis::RedisUrl::Mode::cluster) {
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
  } else {
    shards_.push_back(std::make_unique<Shard>(ex, cfg, *this, std::nullopt));
  }
}

void Relay::start() {
  for (auto& s : shards_) s->start();
  if (topology_) topology_->start();
}

Shard& Relay::shard_at(redis::Endpoint const& node) {
  for (auto& s : shards_) {
    if (s->node && *s->node == node && !s->retired()) return *s;
  }
  shards_.push_back(std::make_unique<Shard>(ex_, cfg_, *this, node));
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

Shard& Relay::holder(SubKind kind, std::string const& redis_name) {
  if (!cluster() || kind == SubKind::pattern) return *shards_.front();
  auto const it = placement_.find(redis_name);
  return it != placement_.end() ? *it->second : route(redis_name);
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

std::string Relay::redis_name(SubKind kind, std::string_view app_name) const {
  return kind == SubKind::channel ? names_.redis_channel(app_name) : names_.redis_pattern(app_name);
}

void Relay::session_opened() noexcept {
  ++open_sockets_;
  peak_sockets_ = std::max(peak_sockets_, open_sockets_);
}

void Relay::session_closed() {
  --open_sockets_;
  // After a burst of connections (a flood, an app rollout) glibc keeps the freed memory in
  // its heap; once the count has halved, give it back to the kernel (a second later, so a
  // mass close finishes first).
  if (trim_armed_ || peak_sockets_ < 256 || open_sockets_ > peak_sockets_ / 2) return;
  trim_armed_ = true;
  trim_timer_.expires_after(std::chrono::seconds(1));
  trim_timer_.async_wait([this](boost::system::error_code ec) {
    trim_armed_ = false;
    if (ec) return;
    ::malloc_trim(0);
    peak_sockets_ = open_sockets_;
  });
}

bool Relay::admit_session() { return !draining_ && open_sockets_ < cfg_.max_connections; }

void Relay::add_session(std::shared_ptr<Session> const& session) {
  sessions_.emplace(session.get(), session);
  metrics_.app_connections_accepted.Increment();
}

void Relay::remove_session(Session& session) {
  if (sessions_.erase(&session) == 0) return;
  Unsubscribes unsubscribe_now;
  for (auto const kind : {SubKind::channel, SubKind::pattern}) {
    for (auto const& name : session.names(kind)) release(session, kind, name, unsubscribe_now);
    session.names(kind).clear();
  }
  send_unsubscribes(unsubscribe_now);
}

void Relay::send_unsubscribes(Unsubscribes const& batches) {
  for (auto const& b : batches) b.shard->subscriber.send(b.kind, false, b.names);
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
  // Single Redis: no per-message string for the prefixed name; the encoder joins them.
  Shard* shard = shards_.front().get();
  if (cluster()) {
    auto const rname = names_.redis_channel(channel);
    tag.slot = redis::key_slot(rname);
    shard = &route(rname);
  }
  if (!shard->publisher.publish(names_.prefix(), channel, payload, std::move(tag))) {
    static log::RateLimit limit;
    std::size_t suppressed = 0;
    if (limit.allow(suppressed)) {
      log::warn("publish buffer full, refusing publishes",
                {{"buffer_bytes", std::to_string(cfg_.publish_buffer_bytes)},
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

bool Relay::redirect(redis::PublishTag const& tag, std::string_view error_text) {
  // On Redis Cluster a MOVED/ASK answer means the command was not executed, so sending it
  // to the node named cannot publish twice.
  if (!cluster() || !tag.command || tag.redirects >= max_redirects) return false;
  auto const r = redis::parse_redirect(error_text);
  if (!r) return false;
  topology_->refresh_soon();
  auto next = tag;
  ++next.redirects;
  auto& target = shard_at(r->target);
  if (!target.publisher.publish_encoded(*tag.command, std::move(next), r->ask)) return false;
  return true;
}

void Relay::on_publish_outcome(Shard&, redis::PublishTag const& tag, std::optional<ErrorCode> error,
                               std::string_view text, std::chrono::nanoseconds latency) {
  if (error == ErrorCode::redis_error && redirect(tag, text)) return;
  if (!error) {
    ++metrics_.hot.published;
    metrics_.hot.observe_latency(std::chrono::duration<double>(latency).count());
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
  if (kind == SubKind::pattern && cluster()) {
    session.control_reply(request_id, ErrorCode::not_supported,
                          "pattern subscriptions are not available on Redis Cluster (sharded "
                          "pub/sub has no PSUBSCRIBE)");
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
  std::vector<std::pair<Shard*, std::vector<std::string>>> to_send;
  for (auto const name : names) {
    if (!mine.emplace(name).second) continue;
    bool const first = hub_.subscribe(kind, name, &session);
    auto rname = redis_name(kind, name);
    auto& shard =
        first ? (kind == SubKind::channel ? route(rname) : *shards_.front()) : holder(kind, rname);
    if (first) {
      if (cluster()) placement_[rname] = &shard;
      if (shard.tracker.want(kind, rname)) {
        auto it = std::find_if(to_send.begin(), to_send.end(),
                               [&](auto const& p) { return p.first == &shard; });
        if (it == to_send.end()) it = to_send.insert(to_send.end(), {&shard, {}});
        it->second.push_back(rname);
      }
    }
    if (!shard.tracker.active(kind, rname)) {
      shard.tracker.add_waiter(kind, rname, waiter);
      ++pending.remaining;
    }
  }
  for (auto& [shard, batch] : to_send) shard->subscriber.send(kind, true, batch);
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
  Unsubscribes unsubscribe_now;
  if (names.empty()) {
    for (auto const& name : mine) release(session, kind, name, unsubscribe_now);
    mine.clear();
  } else {
    for (auto const name : names) {
      auto const it = mine.find(std::string(name));
      if (it == mine.end()) continue;
      release(session, kind, *it, unsubscribe_now);
      mine.erase(it);
    }
  }
  send_unsubscribes(unsubscribe_now);
  session.control_reply(request_id);
}

void Relay::release(Session& session, SubKind kind, std::string const& name,
                    Unsubscribes& unsubscribe_now) {
  if (!hub_.unsubscribe(kind, name, &session)) return;
  auto rname = redis_name(kind, name);
  auto& shard = holder(kind, rname);
  auto unwanted = shard.tracker.unwant(kind, rname);
  if (cluster()) placement_.erase(rname);
  if (unwanted.send_unsubscribe) {
    auto it = std::find_if(unsubscribe_now.begin(), unsubscribe_now.end(),
                           [&](auto const& b) { return b.shard == &shard && b.kind == kind; });
    if (it == unsubscribe_now.end()) {
      it = unsubscribe_now.insert(unsubscribe_now.end(), UnsubscribeBatch{&shard, kind, {}});
    }
    it->names.push_back(std::move(rname));
  }
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

void Relay::update_connected_gauges() {
  bool pub = true;
  bool sub = true;
  for (auto* s : active_shards()) {
    pub = pub && s->publisher.connected();
    sub = sub && s->subscriber.connected();
    if (s->node) {
      auto const shard = endpoint_text(*s->node);
      metrics_.shard_connected(shard, "publisher").Set(s->publisher.connected() ? 1 : 0);
      metrics_.shard_connected(shard, "subscriber").Set(s->subscriber.connected() ? 1 : 0);
    }
  }
  metrics_.redis_publisher_connected.Set(pub ? 1 : 0);
  metrics_.redis_subscriber_connected.Set(sub ? 1 : 0);
}

void Relay::on_publisher_state(Shard& shard, bool connected) {
  update_connected_gauges();
  auto const where = shard.node ? endpoint_text(*shard.node) : redis::redact(cfg_.redis);
  if (connected) {
    if (publisher_seen_up_) metrics_.redis_publisher_reconnects.Increment();
    publisher_seen_up_ = true;
    log::info("redis connected", {{"role", "publisher"}, {"redis", where}});
  } else {
    log::warn("redis disconnected", {{"role", "publisher"}, {"redis", where}});
    if (topology_ && !shard.retired()) topology_->refresh_soon();
  }
}

void Relay::on_subscriber_state(Shard& shard, bool connected) {
  update_connected_gauges();
  auto const where = shard.node ? endpoint_text(*shard.node) : redis::redact(cfg_.redis);
  if (!connected) {
    shard.tracker.on_disconnected();
    log::warn("redis disconnected", {{"role", "subscriber"}, {"redis", where}});
    if (topology_ && !shard.retired()) topology_->refresh_soon();
    return;
  }
  if (subscriber_seen_up_) metrics_.redis_subscriber_reconnects.Increment();
  subscriber_seen_up_ = true;
  std::vector<std::string> channels;
  std::vector<std::string> patterns;
  for (auto& cmd : shard.tracker.on_connected()) {
    (cmd.kind == SubKind::channel ? channels : patterns).push_back(std::move(cmd.name));
  }
  log::info("redis connected",
            {{"role", "subscriber"},
             {"redis", where},
             {"resubscribing", std::to_string(channels.size() + patterns.size())}});
  shard.subscriber.send(SubKind::channel, true, channels);
  shard.subscriber.send(SubKind::pattern, true, patterns);
}

void Relay::on_pubsub_event(Shard& shard, redis::PubSubEvent const& ev) {
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
      release_waiters(shard.tracker.on_confirmed(SubKind::channel, ev.name, true));
      break;
    case Kind::psubscribed:
      release_waiters(shard.tracker.on_confirmed(SubKind::pattern, ev.name, true));
      break;
    case Kind::unsubscribed: {
      release_waiters(shard.tracker.on_confirmed(SubKind::channel, ev.name, false));
      // Redis Cluster drops sharded subscriptions of a slot that moved away.
      if (topology_ && shard.tracker.orphaned(SubKind::channel, std::string(ev.name))) {
        topology_->refresh_soon();
      }
      break;
    }
    case Kind::punsubscribed:
      release_waiters(shard.tracker.on_confirmed(SubKind::pattern, ev.name, false));
      break;
    case Kind::error: {
      if (topology_ && redis::parse_redirect(ev.payload)) {
        topology_->refresh_soon();  // a SSUBSCRIBE reached a node that no longer owns the slot
        break;
      }
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

void Relay::move_channel(std::string const& rname, Shard& from, Shard& to) {
  auto waiters = from.tracker.take_waiters(SubKind::channel, rname);
  if (from.tracker.unwant(SubKind::channel, rname).send_unsubscribe) {
    from.subscriber.send(SubKind::channel, false, {rname});
  }
  if (to.tracker.want(SubKind::channel, rname)) to.subscriber.send(SubKind::channel, true, {rname});
  for (auto const w : waiters) to.tracker.add_waiter(SubKind::channel, rname, w);
  placement_[rname] = &to;
}

void Relay::on_topology(redis::SlotMap const& map) {
  bool const first = slots_.empty();
  slots_ = map;
  if (first || !map.covers_all_slots()) {
    log::info("redis cluster topology",
              {{"masters", std::to_string(map.masters().size())},
               {"all_slots_covered", map.covers_all_slots() ? "true" : "false"}});
  }
  for (auto const& m : map.masters()) shard_at(m);
  // Channels whose slot now lives elsewhere follow it; those Redis dropped are re-made.
  std::vector<std::pair<std::string, Shard*>> moves;
  for (auto const& [rname, shard] : placement_) {
    auto const owner = map.owner(redis::key_slot(rname));
    if (!owner) continue;
    if (!(*owner == *shard->node)) {
      moves.emplace_back(rname, &shard_at(*owner));
    } else if (shard->tracker.orphaned(SubKind::channel, rname) &&
               shard->tracker.want(SubKind::channel, rname)) {
      shard->subscriber.send(SubKind::channel, true, {rname});
    }
  }
  for (auto& [rname, to] : moves) move_channel(rname, *placement_.at(rname), *to);
  // Shards of nodes that are no longer masters retire; their unwritten publishes go to the
  // current owner of each message's slot.
  auto const masters = map.masters();
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    auto* s = shards_[i].get();
    if (s->retired() || std::find(masters.begin(), masters.end(), *s->node) != masters.end()) {
      continue;
    }
    if (s->tracker.wanted_count(SubKind::channel) > 0) continue;  // still moving away
    log::info("redis cluster node retired", {{"node", endpoint_text(*s->node)}});
    s->mark_retired();
    metrics_.remove_shard(endpoint_text(*s->node));
    auto leftovers = s->publisher.retire();
    s->stop();
    for (auto& item : leftovers) {
      auto owner = map.owner(item.tag.slot);
      bool const moved =
          owner && item.tag.command &&
          shard_at(*owner).publisher.publish_encoded(*item.tag.command, item.tag, false);
      if (!moved) {
        on_publish_outcome(*s, item.tag, ErrorCode::publish_buffer_full,
                           "the cluster node went away and the message could not be moved", {});
      }
    }
  }
  update_connected_gauges();
}

void Relay::fan_out(SubKind kind, std::string_view key, std::string_view channel,
                    std::string_view pattern, std::string_view payload) {
  ++metrics_.hot.received;
  if (hub_.subscriber_count(kind, key) == 0 || !proto::fits_str(channel)) {
    metrics_.messages_unrouted.Increment();
    return;
  }
  auto frame = std::make_shared<std::string>();
  frame->reserve(proto::msg_frame_size(channel.size(), pattern.size(), payload.size()));
  proto::encode_msg(*frame, channel, pattern, payload);
  core::SharedFrame const shared = std::move(frame);
  metrics_.hot.delivered += hub_.deliver(kind, key, shared);
}

std::string Relay::not_ready_reason() const {
  if (draining_) return "draining: the sidecar is shutting down";
  if (!listening_) return "not listening yet";
  if (cluster() && !slots_.covers_all_slots()) return "redis cluster slot map incomplete";
  for (auto* s : active_shards()) {
    auto const where = s->node ? " (" + endpoint_text(*s->node) + ")" : std::string();
    if (!s->publisher.connected()) return "redis publisher connection is down" + where;
    if (!s->subscriber.connected()) return "redis subscriber connection is down" + where;
  }
  return {};
}

void Relay::update_gauges() {
  metrics_.app_connections.Set(static_cast<double>(open_sockets_));
  metrics_.local_channel_subscriptions.Set(
      static_cast<double>(hub_.subscription_count(SubKind::channel)));
  metrics_.local_pattern_subscriptions.Set(
      static_cast<double>(hub_.subscription_count(SubKind::pattern)));
  std::size_t channels = 0;
  std::size_t patterns = 0;
  std::size_t buffered = 0;
  for (auto const& s : shards_) {
    channels += s->tracker.confirmed_count(SubKind::channel);
    patterns += s->tracker.confirmed_count(SubKind::pattern);
    buffered += s->publisher.buffered_bytes();
  }
  metrics_.redis_channel_subscriptions.Set(static_cast<double>(channels));
  metrics_.redis_pattern_subscriptions.Set(static_cast<double>(patterns));
  metrics_.publish_buffer_bytes.Set(static_cast<double>(buffered));
  std::size_t queued = 0;
  for (auto const& [ptr, weak] : sessions_) queued += ptr->queued_bytes();
  metrics_.outbound_queue_bytes.Set(static_cast<double>(queued));
  update_connected_gauges();
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
  for (auto const& s : shards_) {
    if (!s->retired()) co_await s->publisher.flush(deadline);
  }
  // Let sessions write the last acks and close.
  asio::steady_timer timer(ex_);
  while (open_sockets_ > 0 && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  // Whatever Redis did not answer in time is answered now (OUTCOME_UNKNOWN or DRAINING);
  // the sessions get a moment to write those last replies before they are closed.
  if (topology_) topology_->stop();
  for (auto const& s : shards_) s->stop();
  auto const last_words = Clock::now() + std::chrono::seconds(1);
  while (open_sockets_ > 0 && Clock::now() < last_words) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  for (auto const& s : live) s->close();
  log::info("drained", {{"unflushed_connections", std::to_string(open_sockets_)}});
}

}  // namespace podrelay::server
