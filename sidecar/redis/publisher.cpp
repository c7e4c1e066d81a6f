#include "redis/publisher.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "redis/handshake.hpp"
#include "redis/stream_commands.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::redis {
namespace {

using Clock = std::chrono::steady_clock;

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

log::RateLimit& retry_limit() {
  static log::RateLimit limit(std::chrono::seconds(5));  // one for every publisher link
  return limit;
}

// Durable publishes still work without the script loaded (EVAL), so this is a warning.
void warn_script_refused(std::string_view peer, std::string_view reason) {
  static log::RateLimit limit(std::chrono::seconds(60));
  log::warn_limited(limit, "redis refused SCRIPT LOAD; durable publishes carry the whole script",
                    {{"role", "publisher"}, {"redis", peer}, {"reason", reason}});
}

}  // namespace

Publisher::Publisher(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
                     Events& events, std::size_t link)
    : cfg_(cfg),
      locator_(locator),
      events_(events),
      id_(link),
      queue_(cfg.publish_buffer_bytes, cfg.publish_buffer_timeout),
      expiry_timer_(ex),
      lazy_timer_(ex),
      link_(ex, *this, {"publisher", cfg.redis_ping_interval}, retry_limit()) {
  append_command(ping_, {"PING"});
}

void Publisher::reconnect() { link_.reconnect(); }

void Publisher::start() {
  options_ = locator_.master_options();
  options_.client_name = "podrelay-pub-" + cfg_.node_id;
  options_.load_script = script_;  // every connect's handshake loads it (set_script)
  link_.start();
  asio::co_spawn(expiry_timer_.get_executor(), expiry(), asio::detached);
}

bool Publisher::publish(std::string_view prefix, std::string_view channel, std::string_view payload,
                        PublishTag tag) {
  auto const verb = sharded_ ? std::string_view("SPUBLISH") : std::string_view("PUBLISH");
  bool queued = false;
  bool const wait = awaited(tag);
  if (sharded_) {
    // Kept for a retry after MOVED/ASK, so encoded once into its own buffer.
    scratch_.clear();
    append_publish(scratch_, verb, prefix, channel, payload);
    tag.command = std::make_shared<std::string const>(scratch_);
    queued = queue_.push(scratch_, std::move(tag), Clock::now(), wait);
  } else {
    auto const size = publish_size(verb, prefix.size() + channel.size(), payload.size());
    queued = queue_.push_with(
        size, std::move(tag), Clock::now(),
        [&](std::string& buf) { append_publish(buf, verb, prefix, channel, payload); }, wait);
  }
  if (queued && link_.connected()) link_.wake_writer();
  return queued;
}

bool Publisher::publish_encoded(std::string const& command, PublishTag tag, bool asking) {
  if (queue_.bytes() + command.size() + 32 > queue_.max_bytes()) return false;
  auto const now = Clock::now();
  if (asking) {
    std::string cmd;
    append_command(cmd, {"ASKING"});
    PublishTag skip;
    skip.health_ping = true;
    queue_.push(cmd, std::move(skip), now);
  }
  bool const wait = awaited(tag);
  queue_.push(command, std::move(tag), now, wait);
  if (link_.connected()) link_.wake_writer();
  return true;
}

asio::awaitable<Error> Publisher::connect(RedisConnection& conn) {
  auto e = co_await link_.connect_to_master(conn, locator_, options_);
  if (e || script_.empty()) co_return e;
  script_reloading_ = false;
  script_sha_ = conn.script_sha();
  if (script_sha_.empty()) warn_script_refused(conn.peer(), conn.script_refusal());
  co_return e;
}

void Publisher::on_up() {
  last_reply_ = Clock::now();
  // What waited in the buffer is held back while this pod's subscriber connection is still
  // re-subscribing, so the pod's own subscribers receive it too; bounded by the ping
  // timeout so a subscriber that cannot come back holds nothing for long.
  holding_ = static_cast<bool>(hold_);
  hold_until_ = Clock::now() + cfg_.redis_ping_timeout;
  events_.on_publisher_state(id_, true);
}

Error Publisher::on_down() {
  fail_items(queue_.on_disconnect(), proto::ErrorCode::outcome_unknown,
             "the connection to Redis broke before it answered; the message may or may not "
             "have been published");
  events_.on_publisher_state(id_, false);
  return {};
}

void Publisher::log_retry(log::RateLimit& limit, std::string_view reason) {
  log::warn_limited(limit, "redis unreachable, retrying",
                    {{"role", "publisher"}, {"reason", reason}});
}

std::size_t Publisher::reply_limit() const {
  // A query (PUBSUB for a RESP client) or a stream page (at most max_page_entries entries,
  // each a payload of at most a frame) may be large; every other command gets an integer,
  // an entry id, OK or a one-line error back. Nothing bigger is a reply to what was asked.
  auto const* next = queue_.oldest_in_flight();
  if (next == nullptr || !(next->query || next->durable_query)) {
    return RedisConnection::max_small_reply;
  }
  return max_entries_reply(max_page_entries, cfg_.max_frame_bytes);
}

bool Publisher::on_reply(redisReply const& reply) {
  auto const now = Clock::now();
  last_reply_ = now;
  core::PublishQueue<PublishTag>::Item item;
  if (!queue_.on_reply(item)) {
    log::error("redis sent a reply nobody asked for; reconnecting", {{"role", "publisher"}});
    return false;
  }
  if (item.tag.health_ping) return true;
  if (item.tag.script_load) {
    script_reloading_ = false;
    script_sha_ = loaded_script_sha(reply);
    if (script_sha_.empty()) warn_script_refused(link_.peer(), script_load_refusal(reply));
    return true;
  }
  auto const latency =
      item.lazy ? std::chrono::nanoseconds(-1) : std::chrono::nanoseconds(now - item.written);
  if (reply.type == REDIS_REPLY_ERROR && reply_string(reply).starts_with("NOSCRIPT") &&
      !script_.empty()) {
    reload_script();
    events_.on_publish_outcome(
        id_, item.tag, proto::ErrorCode::redis_error,
        "NOSCRIPT: Redis lost the sidecar's script (SCRIPT FLUSH, or an ACL refused SCRIPT "
        "LOAD) after this command was queued; it was not run, and the sidecar loads the script "
        "again: send it again",
        latency, &reply);
  } else if (reply.type == REDIS_REPLY_ERROR) {
    events_.on_publish_outcome(id_, item.tag, proto::ErrorCode::redis_error, reply_string(reply),
                               latency, &reply);
  } else {
    events_.on_publish_outcome(id_, item.tag, std::nullopt, {}, latency, &reply);
  }
  return true;
}

void Publisher::reload_script() {
  script_sha_.clear();
  if (script_reloading_) return;
  std::string cmd;
  append_command(cmd, {"SCRIPT", "LOAD", script_});
  PublishTag tag;
  tag.script_load = true;
  script_reloading_ = queue_.push(cmd, std::move(tag), Clock::now(), true);
  if (script_reloading_ && link_.connected()) link_.wake_writer();
}

Link::Output Publisher::output() {
  if (holding_ && queue_.has_unwritten()) {
    holding_ = hold_() && Clock::now() < hold_until_;
    if (holding_) return Link::Output::held;
  }
  return queue_.has_unwritten() ? Link::Output::ready : Link::Output::none;
}

void Publisher::take_output(std::string& buf) {
  bool const lazy = choose_reply_mode();
  queue_.take_unwritten(buf, Clock::now(), lazy);
}

bool Publisher::choose_reply_mode() {
  // Lazy only while nobody waits for a reply and the buffer is far from full (replies
  // left unread keep their commands' bytes in it).
  bool const want = cfg_.lazy_read_window.count() > 0 && queue_.awaited() == 0 &&
                    queue_.bytes() <= queue_.max_bytes() / 4;
  if (!want) {
    link_.set_read_low_water(1);
    return false;
  }
  if (!link_.set_read_low_water(lazy_read_bytes)) return false;  // TLS
  // When it ends, whatever arrived meanwhile is read; the next write decides again.
  lazy_timer_.start(cfg_.lazy_read_window, [this] { link_.set_read_low_water(1); });
  return true;
}

Link::Health Publisher::on_health_tick() {
  // Redis owes replies and has said nothing for a ping timeout: it is gone.
  auto const silent = Clock::now() - last_reply_;
  if (queue_.in_flight_count() > 0 && silent > cfg_.redis_ping_timeout) {
    log::warn(
        "redis stopped answering; dropping the connection",
        {{"role", "publisher"},
         {"silent_for", ms_text(std::chrono::duration_cast<std::chrono::milliseconds>(silent))}});
    return Link::Health::dead;
  }
  PublishTag tag;
  tag.health_ping = true;
  return queue_.push(ping_, std::move(tag), Clock::now()) ? Link::Health::wake_writer
                                                          : Link::Health::idle;
}

asio::awaitable<void> Publisher::expiry() {
  while (!link_.stopped()) {
    auto const now = Clock::now();
    auto const next = queue_.next_expiry();
    expiry_timer_.expires_at(std::min(next, now + std::chrono::milliseconds(250)));
    co_await expiry_timer_.async_wait(use_tuple);
    if (link_.stopped()) break;
    fail_items(queue_.expire(Clock::now()), proto::ErrorCode::publish_timeout,
               "Redis stayed unreachable longer than --publish-buffer-timeout");
  }
}

void Publisher::fail_items(std::vector<core::PublishQueue<PublishTag>::Item> items,
                           proto::ErrorCode code, std::string_view text) {
  for (auto const& item : items) {
    if (item.tag.script_load) script_reloading_ = false;
    if (item.tag.health_ping || item.tag.script_load) continue;
    events_.on_publish_outcome(id_, item.tag, code, text, std::chrono::nanoseconds{0}, nullptr);
  }
}

asio::awaitable<void> Publisher::flush(std::chrono::steady_clock::time_point deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (Clock::now() < deadline) {
    if (queue_.empty()) co_return;
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(use_tuple);
  }
}

std::vector<core::PublishQueue<PublishTag>::Item> Publisher::retire() {
  auto unwritten = queue_.take_unwritten_items();
  std::erase_if(unwritten,
                [](auto const& item) { return item.tag.health_ping || item.tag.script_load; });
  stop();
  return unwritten;
}

void Publisher::stop() {
  if (link_.stopped()) return;
  link_.stop();
  expiry_timer_.cancel();
  lazy_timer_.cancel();
  fail_items(queue_.on_disconnect(), proto::ErrorCode::outcome_unknown,
             "the sidecar shut down before Redis answered");
  fail_items(queue_.drain_all(), proto::ErrorCode::draining,
             "the sidecar shut down before the message could be sent to Redis");
}

}  // namespace podrelay::redis
