#include "redis/stream_reader.hpp"

#include <boost/asio/post.hpp>
#include <utility>

#include "redis/stream_commands.hpp"
#include "util/log.hpp"

namespace podrelay::redis {
namespace {

using Clock = std::chrono::steady_clock;

log::RateLimit& retry_limit() {
  static log::RateLimit limit(std::chrono::seconds(5));
  return limit;
}

}  // namespace

StreamReader::StreamReader(asio::any_io_executor ex, config::Config const& cfg,
                           MasterLocator& locator, core::DurableChannels const& durable,
                           Events& events)
    : cfg_(cfg),
      locator_(locator),
      durable_(durable),
      events_(events),
      ex_(ex),
      link_(ex, *this, {"stream-reader", cfg.redis_ping_interval}, retry_limit()) {}

void StreamReader::start() {
  options_ = locator_.master_options();
  options_.client_name = "podrelay-streams-" + cfg_.node_id;
  link_.start();
}

void StreamReader::stop() { link_.stop(); }

void StreamReader::send(bool subscribe, std::vector<std::string> const& channels) {
  if (!link_.connected() || channels.empty()) return;
  for (auto const& channel : channels) {
    if (subscribe) {
      auto const app = durable_.durable_app_channel(channel);
      if (!app) continue;  // the router sends only durable names here
      if (cursor_.want(channel, durable_.stream_key(*app))) {
        // Kept across a reconnect: confirmed once its recheck is answered.
        if (recheck_ || checking_.contains(channel)) {
          held_confirms_.insert(channel);
        } else {
          confirm_later(channel, true);
        }
      }
    } else {
      // A subscribe still waiting for its start position is confirmed first: the core
      // expects its answer before the unsubscribe's, and the fetch reply will not give it
      // once the channel is no longer wanted (that left the channel pending for good).
      if ((cursor_.wanted(channel) && !cursor_.positioned(channel)) ||
          held_confirms_.erase(channel) > 0) {
        confirm_later(channel, true);
      }
      cursor_.unwant(channel);
      confirm_later(channel, false);
    }
  }
  maybe_unblock();
  link_.wake_writer();
}

void StreamReader::maybe_unblock() {
  // The blocked XREAD does not cover the new set: have it return now rather than at the end
  // of its block (measured alternative: a short block costs a round trip per block per pod
  // even when idle; a second connection per pod doubles the connections).
  if (xread_in_flight_ && !unblock_sent_ && client_id_ != 0 &&
      cursor_.generation() != xread_generation_) {
    unblock_sent_ = true;
    events_.on_reader_unblock(client_id_);
  }
}

void StreamReader::confirm_later(std::string channel, bool subscribed) {
  // Never call back into the subscriptions core from inside its own effects: confirm on
  // the next turn of the event loop, in one batch.
  confirms_.emplace_back(std::move(channel), subscribed);
  if (confirm_posted_) return;
  confirm_posted_ = true;
  asio::post(ex_, [this] {
    confirm_posted_ = false;
    auto all = std::move(confirms_);
    confirms_.clear();
    // In order, one call per run of the same kind.
    std::vector<std::string> run;
    for (std::size_t i = 0; i < all.size(); ++i) {
      run.push_back(std::move(all[i].first));
      if (i + 1 == all.size() || all[i + 1].second != all[i].second) {
        events_.on_reader_confirmed(run, all[i].second);
        run.clear();
      }
    }
  });
}

void StreamReader::queue(Kind kind, std::string channel) {
  in_flight_.push_back(InFlight{kind, std::move(channel), Clock::now()});
}

asio::awaitable<Error> StreamReader::connect(RedisConnection& conn) {
  co_return co_await link_.connect_to_master(conn, locator_, options_);
}

void StreamReader::on_up() {
  out_.clear();
  in_flight_.clear();
  xread_in_flight_ = false;
  unblock_sent_ = false;
  fetches_in_flight_ = 0;
  client_id_ = 0;
  append_command(out_, {"CLIENT", "ID"});
  queue(Kind::client_id, {});
  // Positions kept across the reconnect are only good if Redis kept what they point into
  // (set first: the channels re-sent below wait for it).
  recheck_ = true;  // output() skips it when none were kept
  checking_.clear();
  held_confirms_.clear();
  events_.on_reader_state(true);
}

Error StreamReader::on_down() {
  out_.clear();
  in_flight_.clear();
  xread_in_flight_ = false;
  fetches_in_flight_ = 0;
  client_id_ = 0;
  recheck_ = false;
  checking_.clear();
  held_confirms_.clear();  // the subscriptions core sends them again on connect
  cursor_.on_disconnected();
  events_.on_reader_state(false);
  // A refused command (a key of another type under a durable stream's name, an ACL) would
  // be refused again at once: back off rather than spin.
  if (refused_.empty()) return {};
  return Error(errc::bad_reply, std::exchange(refused_, {}));
}

void StreamReader::log_retry(log::RateLimit& limit, std::string_view reason) {
  log::warn_limited(limit, "redis unreachable, retrying",
                    {{"role", "stream-reader"}, {"reason", reason}});
}

bool StreamReader::on_reply(redisReply const& reply) {
  if (in_flight_.empty()) {
    log::error("redis sent a reply nobody asked for; reconnecting", {{"role", "stream-reader"}});
    return false;
  }
  auto const head = std::move(in_flight_.front());
  in_flight_.pop_front();
  if (reply.type == REDIS_REPLY_ERROR && head.kind != Kind::xread) {
    static log::RateLimit limit;
    log::error_limited(limit, "redis refused a stream reader command; reconnecting",
                       {{"error", reply_string(reply)}});
    refused_ = "redis refused a stream reader command: " + std::string(reply_string(reply));
    return false;
  }
  switch (head.kind) {
    case Kind::client_id: client_id_ = reply.integer; break;
    case Kind::ping: break;
    case Kind::fetch:
    case Kind::check: last_entry_ = last_entry_id(reply); break;
    case Kind::check_held: held_entry_ = last_entry_id(reply); break;
    case Kind::fetch_epoch: {
      --fetches_in_flight_;
      if (cursor_.set_position(head.channel, last_entry_, reply_string(reply))) {
        confirm_later(head.channel, true);
      }
      break;
    }
    case Kind::check_epoch: {
      --fetches_in_flight_;
      auto const before = cursor_.epoch(head.channel);
      auto const continuity =
          cursor_.recheck(head.channel, reply_string(reply), last_entry_, held_entry_);
      if (continuity != core::StreamCursor::Continuity::intact) {
        events_.on_stream_lost(head.channel, continuity, before, cursor_.epoch(head.channel));
      }
      // After any new epoch went to Redis (on the publisher's connection, where a resume's
      // queries go too).
      checking_.erase(head.channel);
      if (held_confirms_.erase(head.channel) > 0) confirm_later(head.channel, true);
      break;
    }
    case Kind::xread:
      xread_in_flight_ = false;
      unblock_sent_ = false;
      if (reply.type == REDIS_REPLY_ERROR) {
        // A key that is not a stream (someone wrote it): say so and read again after a
        // pause rather than spin.
        static log::RateLimit limit;
        log::error_limited(limit, "XREAD failed; retrying", {{"error", reply_string(reply)}});
        refused_ = "XREAD failed: " + std::string(reply_string(reply));
        return false;
      }
      on_xread(reply);
      break;
  }
  link_.wake_writer();
  return true;
}

void StreamReader::on_xread(redisReply const& reply) {
  if (reply.type != REDIS_REPLY_ARRAY) return;  // nil: timed out or unblocked
  for (std::size_t i = 0; i < reply.elements; ++i) {
    auto const* stream = reply.element[i];
    if (!stream || stream->type != REDIS_REPLY_ARRAY || stream->elements < 2) continue;
    auto const* channel = cursor_.channel_of_key(reply_string(*stream->element[0]));
    if (!channel) continue;      // no longer read
    auto const name = *channel;  // the cursor may change under the callbacks
    for_each_entry(*stream->element[1], [&](std::string_view id, std::string_view payload) {
      auto const parsed = core::StreamId::parse(id);
      if (parsed && cursor_.advance(name, *parsed)) {
        events_.on_stream_entry(name, id, *parsed, payload);
      }
    });
  }
}

Link::Output StreamReader::output() {
  if (!out_.empty()) return Link::Output::ready;
  if (xread_in_flight_ || fetches_in_flight_ > 0 || client_id_ == 0) return Link::Output::none;
  // The last entry and the epoch of each channel: to position new ones, and after a
  // reconnect to recheck the ones kept (before any XREAD reads on from them), with the
  // entry at or before the position: is the one read last still there?
  auto const ask = [&](std::vector<std::string> const& channels, Kind last, Kind epoch) {
    for (auto const& channel : channels) {
      auto const app = durable_.durable_app_channel(channel);
      auto const name = app ? *app : channel;
      auto const key = durable_.stream_key(name);
      append_last_entry(out_, key);
      queue(last, channel);
      if (epoch == Kind::check_epoch) {
        append_entry_at_or_before(out_, key, cursor_.position(channel));
        queue(Kind::check_held, channel);
      }
      append_command(out_, {"GET", durable_.epoch_key(name)});
      queue(epoch, channel);
    }
    fetches_in_flight_ = channels.size();
  };
  if (std::exchange(recheck_, false)) {
    auto const kept = cursor_.positioned_channels();
    // Every held confirmation is of one of these (held ones are positioned; an unsubscribe
    // or a disconnect releases them).
    checking_.insert(kept.begin(), kept.end());
    if (!kept.empty()) {
      ask(kept, Kind::check, Kind::check_epoch);
      return Link::Output::ready;
    }
  }
  auto const fetch = cursor_.take_unpositioned();
  if (!fetch.empty()) {
    ask(fetch, Kind::fetch, Kind::fetch_epoch);
    return Link::Output::ready;
  }
  if (cursor_.empty()) return Link::Output::none;
  auto const args = cursor_.xread_args(static_cast<std::size_t>(block.count()), entries_per_stream);
  std::vector<std::string_view> views(args.begin(), args.end());
  append_command(out_, views);
  queue(Kind::xread, {});
  xread_in_flight_ = true;
  xread_streams_ = cursor_.size();  // at least the positioned ones it names
  xread_generation_ = cursor_.generation();
  return Link::Output::ready;
}

void StreamReader::take_output(std::string& buf) {
  buf.clear();
  buf.swap(out_);
}

std::size_t StreamReader::reply_limit() const {
  // The replies come in the order of in_flight_: the next one answers its head.
  if (in_flight_.empty()) return RedisConnection::max_small_reply;
  switch (in_flight_.front().kind) {
    case Kind::xread:
      return max_entries_reply(xread_streams_ * entries_per_stream, cfg_.max_frame_bytes);
    case Kind::fetch:
    case Kind::check:
    case Kind::check_held: return max_entries_reply(1, cfg_.max_frame_bytes);
    case Kind::client_id:
    case Kind::fetch_epoch:
    case Kind::check_epoch:
    case Kind::ping: break;
  }
  return RedisConnection::max_small_reply;  // an integer, an epoch string, PONG
}

Link::Health StreamReader::on_health_tick() {
  auto const now = Clock::now();
  if (!in_flight_.empty()) {
    auto const& head = in_flight_.front();
    auto const allowed =
        cfg_.redis_ping_timeout + (head.kind == Kind::xread ? std::chrono::milliseconds(block)
                                                            : std::chrono::milliseconds(0));
    if (now - head.sent > allowed) {
      log::warn("redis stopped answering; dropping the connection", {{"role", "stream-reader"}});
      return Link::Health::dead;
    }
    return Link::Health::idle;
  }
  append_command(out_, {"PING"});
  queue(Kind::ping, {});
  return Link::Health::wake_writer;
}

}  // namespace podrelay::redis
