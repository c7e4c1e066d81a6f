// Relay's durable-channel wiring: publishes appended to streams, the stream reader's events,
// and the queries a resuming session makes. Same class and contract as relay.cpp; kept apart
// so the pub/sub wiring there stays readable.
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "redis/stream_commands.hpp"
#include "server/connection.hpp"
#include "server/relay.hpp"
#include "util/log.hpp"

namespace podrelay::server {
namespace {

using core::SubKind;
using proto::ErrorCode;
// How long a durable publish with --durable-min-replicas waits for its replicas.
constexpr std::chrono::milliseconds replica_wait{1000};

// splitmix64: distinct, unpredictable-enough tokens from a counter (an epoch only has to
// differ from the one before; it is not a secret).
std::string epoch_token(std::uint64_t& counter) {
  std::uint64_t z = (counter += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, z >>= 4) out[static_cast<std::size_t>(i)] = digits[z & 0xf];
  return out;
}

// KEYS: epoch. ARGV: the epoch expected, its replacement (kept when someone replaced it).
constexpr std::string_view rotate_epoch_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end return 1";

// A pod refreshes a channel's TTL at most every ttl/4 (core::DurableChannels), so the TTL
// set is ttl + ttl/4: a stream lives at least --durable-ttl after its last publish.
std::chrono::seconds ttl_after_refresh(std::chrono::seconds ttl) { return ttl + ttl / 4; }

}  // namespace

std::optional<Relay::Nack> Relay::publish_durable(redis::PublishTag tag, std::string_view app,
                                                  std::string_view payload) {
  auto const key = durable_.stream_key(app);
  auto& publisher = route(key).publisher;
  auto const epoch_key = durable_.epoch_key(app);
  auto const wake = cluster() ? durable_.wake_channel(app) : std::string();
  auto const epoch = new_epoch();
  auto const& opt = durable_.options();
  std::string command;
  redis::append_durable_publish(command,
                                {key, epoch_key, opt.max_len, payload, epoch,
                                 durable_.ttl_refresh_due(app, core::DurableChannels::Clock::now()),
                                 ttl_after_refresh(opt.ttl), wake, publisher.script_sha()});
  tag.durable = true;
  bool queued = false;
  if (opt.min_replicas == 0) {
    if (cluster()) {
      // A MOVED/ASK answer (the slot moved) sends it again to the node named; a moving
      // EVAL with its WAIT is not redirected: it is answered REDIS_ERROR with the redirect.
      tag.slot = redis::key_slot(key);
      tag.command = std::make_shared<std::string const>(command);
    }
    queued = publisher.publish_encoded(command, std::move(tag), false);
  } else {
    // The EVAL and its WAIT travel together: the EVAL's outcome waits in `wait` until the
    // WAIT says how many replicas have it.
    std::string wait_command;
    redis::append_command(wait_command, {"WAIT", std::to_string(opt.min_replicas),
                                         std::to_string(replica_wait.count())});
    if (publisher.buffered_bytes() + command.size() + wait_command.size() + 64 <=
        cfg_.publish_buffer_bytes) {
      auto wait = std::make_shared<redis::DurableAck>();
      redis::PublishTag eval;
      eval.durable = true;
      eval.wait = wait;
      tag.durable_wait = true;
      tag.wait = std::move(wait);
      queued = publisher.publish_encoded(command, std::move(eval), false) &&
               publisher.publish_encoded(wait_command, std::move(tag), false);
    }
  }
  if (queued) return std::nullopt;
  return Nack{ErrorCode::publish_buffer_full, "publish buffer full (--publish-buffer-bytes " +
                                                  std::to_string(cfg_.publish_buffer_bytes) + ")"};
}

bool Relay::durable_outcome(redis::PublishTag const& tag, std::optional<ErrorCode>& error,
                            std::string& text, redisReply const* reply) {
  auto const id = [&] {
    return reply && reply->type == REDIS_REPLY_STRING ? std::string(redis::reply_string(*reply))
                                                      : std::string();
  };
  if (tag.wait && !tag.durable_wait) {  // the EVAL: its WAIT answers for both
    tag.wait->error = error;
    tag.wait->text = error ? text : id();
    return false;
  }
  if (!tag.durable_wait) {
    if (!error) text = id();
    return true;
  }
  auto const& ack = *tag.wait;
  if (ack.error) {
    error = ack.error;
    text = ack.text;
  } else if (!error && reply && reply->type == REDIS_REPLY_INTEGER &&
             reply->integer < static_cast<long long>(durable_.options().min_replicas)) {
    error = ErrorCode::not_replicated;
    text = "appended as " + ack.text + " on the master, but only " +
           std::to_string(reply->integer) + " of --durable-min-replicas " +
           std::to_string(durable_.options().min_replicas) + " replicas had it within " +
           std::to_string(replica_wait.count()) + " ms; a failover may lose it";
  } else if (!error) {
    text = ack.text;
  }
  return true;
}

std::string Relay::new_epoch() { return epoch_token(epoch_counter_); }

std::optional<Relay::Nack> Relay::durable_query(Connection& connection, std::uint64_t token,
                                                std::string const& command,
                                                std::string_view stream_key) {
  if (draining_) return Nack{ErrorCode::draining, "the sidecar is shutting down"};
  redis::PublishTag tag;
  tag.origin = std::weak_ptr<redis::PublishOrigin>(connection.shared_from_this());
  tag.durable_query = true;
  tag.token = token;
  if (route(stream_key).publisher.publish_encoded(command, std::move(tag), false)) {
    return std::nullopt;
  }
  return Nack{ErrorCode::publish_buffer_full, "publish buffer full (--publish-buffer-bytes " +
                                                  std::to_string(cfg_.publish_buffer_bytes) + ")"};
}

void Relay::on_reader_state(bool connected) {
  metrics_.redis_stream_reader_connected.Set(connected ? 1 : 0);
  if (!connected) {
    subscriptions_.on_disconnected(durable_shard_id);
    log::warn("redis disconnected", {{"role", "stream-reader"}, {"redis", where(*shards_[0])}});
    return;
  }
  if (reader_seen_up_) metrics_.durable_reader_reconnects.Increment();
  reader_seen_up_ = true;
  auto const fx = subscriptions_.on_connected(durable_shard_id);
  std::vector<std::string> wanted;
  for (auto const& c : fx.commands) {
    if (c.shard == durable_shard_id && c.subscribe) {
      wanted.insert(wanted.end(), c.names.begin(), c.names.end());
    }
  }
  // Channels that lost their last subscriber while the link was down are forgotten; the
  // others keep their last id, so reading resumes exactly where it stopped.
  reader_->retain_only(wanted);
  log::info("redis connected",
            {{"role", "stream-reader"}, {"redis", where(*shards_[0])}, {"streams", wanted.size()}});
  apply(fx);
}

void Relay::on_reader_confirmed(std::vector<std::string> const& channels, bool subscribed) {
  for (auto const& name : channels) {
    apply(subscriptions_.on_confirmed(durable_shard_id, SubKind::channel, name, subscribed));
  }
}

void Relay::on_stream_entry(std::string const& channel, std::string_view id, core::StreamId parsed,
                            std::string_view payload) {
  deliver_stream_entry(channel, channel, id, parsed, payload);
}

void Relay::deliver_stream_entry(std::string const& channel, std::string_view hub_name,
                                 std::string_view id, core::StreamId parsed,
                                 std::string_view payload) {
  metrics_.durable_received.Increment();
  core::Delivery message(names_, resp_names_, cfg_.max_frame_bytes, channel, "", payload);
  message.set_stream_id(id, parsed);
  auto const delivered = subscriptions_.deliver(SubKind::channel, hub_name, message);
  metrics_.hot.delivered += delivered;
  metrics_.durable_delivered.Increment(static_cast<double>(delivered));
  if (message.too_large()) {
    metrics_.message_dropped(ErrorCode::frame_too_large).Increment();
  } else if (subscriptions_.receiver_count(SubKind::channel, hub_name) == 0) {
    metrics_.messages_unrouted.Increment();
  }
}

void Relay::on_stream_lost(std::string const& channel, core::StreamCursor::Continuity how,
                           std::string const& old_epoch, std::string const& epoch) {
  using Continuity = core::StreamCursor::Continuity;
  metrics_.durable_streams_lost.Increment();
  auto const app = durable_.durable_app_channel(channel);
  auto const name = app ? std::string(*app) : channel;
  auto const why = how == Continuity::rolled_back ? "rolled back"
                   : how == Continuity::trimmed   ? "trimmed"
                                                  : "recreated";
  log::warn("durable stream lost entries this pod had not read; cutting off its subscribers",
            {{"channel", name}, {"why", why}, {"epoch_before", old_epoch}, {"epoch", epoch}});
  if (how == Continuity::rolled_back && !epoch.empty()) {
    // Same epoch, and the entry this pod read last is gone (Redis came back from an older
    // snapshot): a new epoch, so that apps resuming anywhere are told (recovered=0), unless
    // a publish or another pod replaced it already.
    std::string command;
    redis::append_command(
        command, {"EVAL", rotate_epoch_script, "1", durable_.epoch_key(name), epoch, new_epoch()});
    redis::PublishTag tag;
    tag.health_ping = true;  // nobody waits for the reply
    route(durable_.stream_key(name)).publisher.publish_encoded(command, std::move(tag), false);
  }
  // Its live subscribers would go on past the hole without a word: cut them off (outside
  // the reader's callback); they reconnect, and their RSUB answers recovered=0.
  std::vector<std::shared_ptr<Connection>> cut;
  for (auto* r : subscriptions_.receivers(SubKind::channel, channel)) {
    if (auto* c = dynamic_cast<Connection*>(r)) cut.push_back(c->shared_from_this());
  }
  if (cut.empty()) return;
  auto const cause =
      how == Continuity::trimmed
          ? "(trimmed to --durable-max-len, or deleted, while this pod's reader was away)"
          : "(Redis restarted without them, or from an older snapshot)";
  boost::asio::post(ex_, [cut = std::move(cut), name, cause] {
    for (auto const& c : cut) {
      c->goaway(ErrorCode::stream_lost, "the durable stream of '" + name.substr(0, 200) +
                                            "' lost entries this pod had not delivered " + cause +
                                            "; reconnect and RSUB it: recovered=0 says so");
    }
  });
}

void Relay::on_reader_unblock(std::int64_t client_id) {
  std::string command;
  redis::append_command(command, {"CLIENT", "UNBLOCK", std::to_string(client_id)});
  redis::PublishTag tag;
  tag.health_ping = true;  // nobody waits for the reply
  shards_.front()->publisher.publish_encoded(command, std::move(tag), false);
}

}  // namespace podrelay::server
