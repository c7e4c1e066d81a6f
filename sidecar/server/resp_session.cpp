#include "server/resp_session.hpp"

#include <boost/asio/post.hpp>

#include "redis/cluster_slots.hpp"
#include "redis/resp.hpp"
#include "server/relay.hpp"
#include "util/log.hpp"

namespace podrelay::server {
namespace {

namespace asio = boost::asio;
namespace rs = podrelay::resp_server;
using core::SubKind;

core::SubKind core_kind(rs::SubKind kind) {
  return kind == rs::SubKind::pattern ? SubKind::pattern : SubKind::channel;
}

std::int64_t& count_of(rs::CommandMachine::Counts& counts, rs::SubKind kind) {
  switch (kind) {
    case rs::SubKind::channel: return counts.channels;
    case rs::SubKind::pattern: return counts.patterns;
    case rs::SubKind::shard: return counts.shards;
  }
  return counts.channels;
}

// Re-encodes a Redis reply for the app, removing the RESP prefix from channel names.
void relay_reply(std::string& out, redisReply const& r, core::ChannelNames const& names,
                 rs::Protocol protocol) {
  switch (r.type) {
    case REDIS_REPLY_INTEGER: rs::append_integer(out, r.integer); break;
    case REDIS_REPLY_STATUS: rs::append_simple(out, redis::reply_string(r)); break;
    case REDIS_REPLY_ERROR: rs::append_error(out, redis::reply_string(r)); break;
    case REDIS_REPLY_NIL: rs::append_null(out, protocol); break;
    case REDIS_REPLY_STRING: {
      auto const s = redis::reply_string(r);
      auto const app = names.app_channel(s);
      rs::append_bulk(out, app ? *app : s);
      break;
    }
    case REDIS_REPLY_ARRAY:
      rs::append_array_header(out, r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) {
        if (r.element[i] != nullptr) relay_reply(out, *r.element[i], names, protocol);
      }
      break;
    default: rs::append_null(out, protocol); break;
  }
}

}  // namespace

RespSession::RespSession(Socket socket, Relay& relay, std::uint64_t id, std::string peer)
    : Connection(std::move(socket), relay, id, std::move(peer)),
      parser_(rs::Limits::for_max_frame_bytes(relay.config().max_frame_bytes)),
      machine_(relay.resp_config(), static_cast<std::int64_t>(id)) {}

void RespSession::on_started() { machine_.set_addresses(peer_address(), local_address()); }

bool RespSession::on_read(std::size_t n) {
  parser_.commit(n);
  for (;;) {
    parser_.set_authenticated(machine_.authenticated());
    auto const r = parser_.next();
    if (r.status == rs::RequestParser::Status::need_more) return true;
    if (r.status == rs::RequestParser::Status::error) {
      relay_.metrics().protocol_error(proto::ErrorCode::malformed_frame).Increment();
      static log::RateLimit limit;
      log::warn_limited(limit, "closing RESP connection after a protocol error",
                        {{"conn", id()}, {"detail", r.error_text}});
      std::string last;
      rs::append_error(last, "ERR " + std::string(r.error_text));
      fail(std::move(last));
      return false;
    }
    std::string out;
    auto const action = machine_.handle(r.argv, out);
    if (!carry_out(action, out)) return false;
    if (closing_) return false;
  }
}

bool RespSession::carry_out(rs::Action const& action, std::string& out) {
  if (std::holds_alternative<rs::NoAction>(action)) {
    emit(std::move(out));
  } else if (auto const* pub = std::get_if<rs::Publish>(&action)) {
    auto const id = wait_for();
    if (auto nack = relay_.publish(*this, id, relay_.resp_names(), pub->channel, pub->payload)) {
      pending_.pop_back();
      emit(error_reply(nack->code, nack->text));
    }
  } else if (auto const* sub = std::get_if<rs::Subscribe>(&action)) {
    subscribe(sub->kind, sub->names, out);
  } else if (auto const* unsub = std::get_if<rs::Unsubscribe>(&action)) {
    unsubscribe(unsub->kind, unsub->names, out);
  } else if (auto const* q = std::get_if<rs::PubsubQuery>(&action)) {
    query(q->argv);
  } else if (std::holds_alternative<rs::Reset>(action)) {
    reset();
    emit(std::move(out));
  } else {  // Close: QUIT, or HTTP sent to the port
    emit(std::move(out));
    return false;  // read no more; replies owed are written, then the connection closes
  }
  return true;
}

std::uint32_t RespSession::wait_for(bool query) {
  auto const id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;
  pending_.push_back(Pending{id, false, false, query, {}});
  return id;
}

void RespSession::emit(std::string bytes) {
  if (pending_.empty()) {
    if (!bytes.empty()) append_reply([&](std::string& o) { o += bytes; });
    return;
  }
  pending_.push_back(Pending{0, true, false, false, std::move(bytes)});
}

void RespSession::flush() {
  while (!pending_.empty() && pending_.front().ready) {
    auto& p = pending_.front();
    if (!p.discard && !p.bytes.empty()) append_reply([&](std::string& o) { o += p.bytes; });
    pending_.pop_front();
  }
  if (eof_ && pending_.empty() && !detached_) {
    asio::post(executor(), [self = std::static_pointer_cast<RespSession>(shared_from_this())] {
      self->detach();
    });
  }
  if (closing_) wake_writer();
}

std::string RespSession::error_reply(proto::ErrorCode code, std::string_view text) const {
  std::string out;
  rs::append_error(out, "ERR podrelay " + std::to_string(static_cast<int>(code)) + " " +
                            std::string(proto::error_name(code)) + ": " + std::string(text));
  return out;
}

void RespSession::sync_counts() {
  auto const channels = relay_.held_names(*this, SubKind::channel).size();
  auto const patterns = relay_.held_names(*this, SubKind::pattern).size();
  machine_.set_subscriptions(
      {static_cast<std::int64_t>(channels - std::min(channels, shard_names_.size())),
       static_cast<std::int64_t>(patterns), static_cast<std::int64_t>(shard_names_.size())});
}

void RespSession::subscribe(rs::SubKind kind, std::span<std::string_view const> names,
                            std::string& out) {
  auto const& map = relay_.resp_names();
  auto const ck = core_kind(kind);
  auto held_list = relay_.held_names(*this, ck);
  std::unordered_set<std::string> held(held_list.begin(), held_list.end());
  auto counts = machine_.subscriptions();
  // Redis confirms each name with the count after it; a name held already counts once.
  for (auto const name : names) {
    auto const rname = ck == SubKind::channel ? map.redis_channel(name) : map.redis_pattern(name);
    if (held.insert(rname).second) {
      count_of(counts, kind) += 1;
      if (kind == rs::SubKind::shard) shard_names_.emplace(name);
    }
    rs::append_subscribed(
        out, machine_.protocol(), kind, name,
        rs::subscription_count(kind, counts.channels, counts.patterns, counts.shards));
  }
  auto const id = wait_for();
  pending_.back().bytes = std::move(out);
  machine_.set_subscriptions(counts);
  relay_.subscribe(*this, map, ck, id, names);
}

void RespSession::unsubscribe(rs::SubKind kind, std::span<std::string_view const> names,
                              std::string& out) {
  auto const& map = relay_.resp_names();
  auto const ck = core_kind(kind);
  auto held_list = relay_.held_names(*this, ck);
  std::vector<std::string> all;  // app names, when none were given
  if (names.empty()) {
    for (auto const& rname : held_list) {
      auto const app = ck == SubKind::channel ? map.app_channel(rname) : map.app_pattern(rname);
      if (!app) continue;
      bool const shard = shard_names_.contains(std::string(*app));
      if (ck == SubKind::channel && shard != (kind == rs::SubKind::shard)) continue;
      all.emplace_back(*app);
    }
  }
  std::vector<std::string_view> list(names.begin(), names.end());
  if (names.empty()) list.assign(all.begin(), all.end());
  std::unordered_set<std::string> held(held_list.begin(), held_list.end());
  auto counts = machine_.subscriptions();
  if (list.empty()) {
    rs::append_unsubscribed(
        out, machine_.protocol(), kind, std::nullopt,
        rs::subscription_count(kind, counts.channels, counts.patterns, counts.shards));
  }
  for (auto const name : list) {
    auto const rname = ck == SubKind::channel ? map.redis_channel(name) : map.redis_pattern(name);
    if (held.erase(rname) > 0) {
      count_of(counts, kind) -= 1;
      if (kind == rs::SubKind::shard) shard_names_.erase(std::string(name));
    }
    rs::append_unsubscribed(
        out, machine_.protocol(), kind, name,
        rs::subscription_count(kind, counts.channels, counts.patterns, counts.shards));
  }
  machine_.set_subscriptions(counts);
  if (list.empty()) {
    emit(std::move(out));
    return;
  }
  auto const id = wait_for();
  pending_.back().bytes = std::move(out);
  relay_.unsubscribe(*this, map, ck, id, list);
}

void RespSession::reset() {
  auto const& map = relay_.resp_names();
  for (auto const ck : {SubKind::channel, SubKind::pattern}) {
    auto const id = wait_for();
    pending_.back().discard = true;
    std::vector<std::string_view> none;
    relay_.unsubscribe(*this, map, ck, id, none);
  }
  shard_names_.clear();
  machine_.set_subscriptions({});
}

void RespSession::query(std::span<std::string_view const> argv) {
  // PUBSUB <sub> [args]: names get the RESP prefix; on Redis Cluster podrelay's
  // subscriptions are sharded, so channel queries ask the shard channels of the owner.
  auto const& map = relay_.resp_names();
  bool const cluster = relay_.cluster_mode();
  std::vector<std::string> args(argv.begin(), argv.end());
  std::string route;
  if (args.size() >= 2) {
    auto const sub = args[1];
    bool const channels = rs::iequals(sub, "CHANNELS") || rs::iequals(sub, "SHARDCHANNELS");
    bool const numsub = rs::iequals(sub, "NUMSUB") || rs::iequals(sub, "SHARDNUMSUB");
    if (cluster && rs::iequals(sub, "CHANNELS")) args[1] = "SHARDCHANNELS";
    if (cluster && rs::iequals(sub, "NUMSUB")) args[1] = "SHARDNUMSUB";
    // On a single Redis or Sentinel podrelay holds shard channels as plain ones, so their
    // counts are the plain ones (createShardedAdapter's serverCount() uses SHARDNUMSUB).
    if (!cluster && rs::iequals(sub, "SHARDCHANNELS")) args[1] = "CHANNELS";
    if (!cluster && rs::iequals(sub, "SHARDNUMSUB")) args[1] = "NUMSUB";
    if (channels) {
      if (args.size() >= 3) {
        args[2] = map.redis_pattern(args[2]);
      } else if (!map.prefix().empty()) {
        args.push_back(map.redis_pattern("*"));
      }
    } else if (numsub) {
      for (std::size_t i = 2; i < args.size(); ++i) args[i] = map.redis_channel(args[i]);
      if (cluster && args.size() >= 3) route = args[2];
    }
  }
  std::vector<std::string_view> views(args.begin(), args.end());
  std::string command;
  redis::append_command(command, views);
  auto const id = wait_for(true);
  if (auto nack = relay_.query(*this, id, command, route)) {
    pending_.pop_back();
    emit(error_reply(nack->code, nack->text));
  }
}

void RespSession::on_publish_outcome(std::uint32_t request_id,
                                     std::optional<proto::ErrorCode> error, std::string_view text,
                                     redisReply const* reply) {
  for (auto& p : pending_) {
    if (p.id != request_id || p.ready) continue;
    p.ready = true;
    if (p.query && reply != nullptr) {
      relay_reply(p.bytes, *reply, relay_.resp_names(), machine_.protocol());
    } else if (error && *error != proto::ErrorCode::redis_error) {
      p.bytes = error_reply(*error, text);
    } else if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) {
      rs::append_error(p.bytes, redis::reply_string(*reply));
    } else if (reply != nullptr && reply->type == REDIS_REPLY_INTEGER) {
      rs::append_integer(p.bytes, reply->integer);  // Redis' own count of receivers
    } else if (!error) {
      rs::append_integer(p.bytes, 0);  // a durable channel: appended to its stream, no count
    } else {
      p.bytes = error_reply(error.value_or(proto::ErrorCode::redis_error), text);
    }
    break;
  }
  flush();
}

void RespSession::on_subscription_reply(std::uint32_t request_id,
                                        std::optional<proto::ErrorCode> error,
                                        std::string_view text) {
  for (auto& p : pending_) {
    if (p.id != request_id || p.ready) continue;
    p.ready = true;
    if (error) {
      p.bytes = error_reply(*error, text);
      sync_counts();  // nothing of the request was applied
    }
    break;
  }
  flush();
}

void RespSession::on_half_closed() {
  eof_ = true;
  if (pending_.empty()) detach();
}

bool RespSession::deliver(core::Delivery& message) {
  if (!accepting_messages()) return false;
  bool sharded = false;
  if (message.redis_pattern().empty() && !shard_names_.empty()) {
    auto const app = relay_.resp_names().app_channel(message.redis_channel());
    sharded = app && shard_names_.contains(std::string(*app));
  }
  auto const& frame = message.resp(machine_.protocol(), sharded);
  if (!frame) return false;
  append_shared(frame);
  return true;
}

}  // namespace podrelay::server
