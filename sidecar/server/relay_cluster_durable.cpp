// Relay's durable channels on Redis Cluster. A blocking XREAD cannot span streams of
// different slots there, and one reader connection per stream would not scale, so:
// a durable publish also SPUBLISHes the new id on the channel's wake channel (same slot as
// its stream, in the same script); a local subscription to a durable channel is held as a
// subscription to that wake channel (on the shard's subscriber link, like any shard
// channel, so it follows failovers and slot moves with the rest); and each wake-up reads
// the stream from this pod's last id with XRANGE on the owning shard's publisher link.
// core::StreamPolls keeps the last id per channel and decides what to read; no connection
// is added. A wake-up lost while a link was down cannot lose an entry: every
// (re)confirmed wake subscription reads from the last id. Same class and contract as
// relay.cpp.
#include "redis/stream_commands.hpp"
#include "server/relay.hpp"
#include "util/log.hpp"

namespace podrelay::server {
namespace {

using core::SubKind;
constexpr std::size_t poll_page = 512;  // entries per XRANGE
static_assert(poll_page <= redis::max_page_entries);
constexpr std::chrono::milliseconds poll_retry_after{200};

}  // namespace

// The replies of the polls come back here (a PublishOrigin, held by the relay).
struct Relay::PollOrigin final : redis::PublishOrigin {
  explicit PollOrigin(Relay& r) : relay(r) {}
  void on_publish_outcome(std::uint32_t, std::optional<proto::ErrorCode>, std::string_view,
                          redisReply const*) override {}
  void on_durable_reply(std::uint64_t token, std::optional<proto::ErrorCode> error,
                        std::string_view text, redisReply const* reply) override {
    relay.on_poll_reply(token, error, text, reply);
  }
  Relay& relay;
};

void Relay::start_polls(boost::asio::any_io_executor ex) {
  poll_origin_ = std::make_shared<PollOrigin>(*this);
  poll_retry_ = std::make_unique<boost::asio::steady_timer>(ex);
}

std::string Relay::subscription_name(core::ChannelNames const& map,
                                     std::string_view app_name) const {
  auto rname = map.redis_channel(app_name);
  if (!cluster_durable()) return rname;
  if (auto const app = durable_.durable_app_channel(rname)) return durable_.wake_channel(*app);
  return rname;
}

std::optional<std::string> Relay::reserved_channel(core::ChannelNames const& map,
                                                   std::string_view app_name) const {
  if (!cluster_durable()) return std::nullopt;
  auto const rname = map.redis_channel(app_name);  // app_of_wake's answer views into it
  auto const durable = durable_.app_of_wake(rname);
  if (!durable) return std::nullopt;
  return "channel '" + std::string(app_name.substr(0, 200)) +
         "' is reserved: on Redis Cluster it carries the wake-ups of durable channel '" +
         std::string(durable->substr(0, 200)) + "'";
}

bool Relay::on_wake(redis::PubSubEvent const& ev) {
  auto const app = durable_.app_of_wake(ev.name);
  if (!app) return false;
  polls_.on_wake(names_.redis_channel(*app));
  pump_polls();
  return true;
}

bool Relay::on_wake_confirmed(std::size_t link, std::string_view name, bool subscribed) {
  auto const app = durable_.app_of_wake(name);
  if (!app) return false;
  auto const channel = names_.redis_channel(*app);
  if (!subscribed) {
    // The last local subscriber left (forget where we stood), or the slot moved away and
    // the subscription follows it (keep it: the new owner's stream continues from there).
    if (subscriptions_.receiver_count(SubKind::channel, name) == 0) {
      polls_.forget(channel);
      poll_confirms_.erase(channel);
    }
    return false;
  }
  if (polls_.on_wake_confirmed(channel, durable_.stream_key(*app))) {
    pump_polls();
    return false;  // known position: confirmed now, and a catch-up read is on its way
  }
  poll_confirms_.insert_or_assign(channel, link);
  pump_polls();
  return true;
}

void Relay::pump_polls() {
  auto const send = [&](core::StreamPolls::Ticket ticket, bool fetch) {
    auto const* key = polls_.stream_key(ticket.channel);
    if (!key) return;
    std::string command;
    if (fetch) {
      redis::append_last_entry(command, *key);
    } else {
      redis::append_xrange_after(command, *key, polls_.position(ticket.channel).to_string(),
                                 poll_page);
    }
    redis::PublishTag tag;
    tag.origin = std::weak_ptr<redis::PublishOrigin>(poll_origin_);
    tag.durable_query = true;
    tag.token = next_poll_token_++;
    auto const token = tag.token;
    if (!route(*key).publisher.publish_encoded(command, std::move(tag), false)) {
      polls_.failed(ticket);  // the publish buffer is full: later
      return;
    }
    polls_in_flight_.emplace(token, Poll{std::move(ticket), fetch});
  };
  for (auto& t : polls_.take_fetches()) send(std::move(t), true);
  for (auto& t : polls_.take_reads()) send(std::move(t), false);
  if (polls_.retry_due() && !poll_retry_armed_ && !draining_) {
    poll_retry_armed_ = true;
    poll_retry_->expires_after(poll_retry_after);
    poll_retry_->async_wait([this](boost::system::error_code ec) {
      poll_retry_armed_ = false;
      if (ec) return;
      polls_.retry();
      pump_polls();
    });
  }
}

void Relay::on_poll_reply(std::uint64_t token, std::optional<proto::ErrorCode> error,
                          std::string_view text, redisReply const* reply) {
  auto const it = polls_in_flight_.find(token);
  if (it == polls_in_flight_.end()) return;
  auto const poll = std::move(it->second);
  polls_in_flight_.erase(it);
  if (error || !reply || reply->type == REDIS_REPLY_ERROR) {
    auto const why = reply ? redis::reply_string(*reply) : text;
    if (redis::parse_redirect(why)) {
      topology_->refresh_soon();  // the slot moved: read again from its new owner
    } else {
      static log::RateLimit limit;
      log::warn_limited(limit, "reading a durable stream failed; retrying",
                        {{"channel", poll.ticket.channel}, {"error", why}});
    }
    polls_.failed(poll.ticket);
    return pump_polls();
  }
  if (poll.fetch) {
    if (polls_.set_position(poll.ticket, redis::last_entry_id(*reply))) {
      auto const c = poll_confirms_.find(poll.ticket.channel);
      if (c != poll_confirms_.end()) {
        auto const link = c->second;
        poll_confirms_.erase(c);
        auto const app = names_.app_channel(poll.ticket.channel);
        apply(subscriptions_.on_confirmed(link, SubKind::channel,
                                          durable_.wake_channel(app ? *app : ""), true));
      }
    }
    return pump_polls();
  }
  auto const app = names_.app_channel(poll.ticket.channel);
  auto const hub_name = durable_.wake_channel(app ? *app : "");
  auto const entries =
      redis::for_each_entry(*reply, [&](std::string_view id, std::string_view payload) {
        auto const parsed = core::StreamId::parse(id);
        if (!parsed || !polls_.advance(poll.ticket, *parsed)) return;
        deliver_stream_entry(poll.ticket.channel, hub_name, id, *parsed, payload);
      });
  polls_.read_done(poll.ticket, entries, poll_page);
  pump_polls();
}

}  // namespace podrelay::server
