#include "redis/publisher.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::redis {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

}  // namespace

Publisher::Publisher(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
                     Events& events, std::size_t link)
    : cfg_(cfg),
      locator_(locator),
      events_(events),
      link_(link),
      conn_(ex),
      queue_(cfg.publish_buffer_bytes, cfg.publish_buffer_timeout),
      wake_(ex),
      expiry_timer_(ex),
      retry_(ex) {}

void Publisher::reconnect() {
  conn_.close();
  wake_.cancel();
  retry_.cancel();  // a pending backoff must not delay the move to the new master
}

void Publisher::start() {
  auto ex = wake_.get_executor();
  asio::co_spawn(ex, run(), asio::detached);
  asio::co_spawn(ex, expiry(), asio::detached);
}

bool Publisher::publish(std::string_view prefix, std::string_view channel, std::string_view payload,
                        PublishTag tag) {
  auto const verb = sharded_ ? std::string_view("SPUBLISH") : std::string_view("PUBLISH");
  bool queued = false;
  if (sharded_) {
    // Kept for a retry after MOVED/ASK, so encoded once into its own buffer.
    scratch_.clear();
    append_publish(scratch_, verb, prefix, channel, payload);
    tag.command = std::make_shared<std::string const>(scratch_);
    queued = queue_.push(scratch_, std::move(tag), Clock::now());
  } else {
    auto const size = publish_size(verb, prefix.size() + channel.size(), payload.size());
    queued = queue_.push_with(size, std::move(tag), Clock::now(), [&](std::string& buf) {
      append_publish(buf, verb, prefix, channel, payload);
    });
  }
  if (queued && connected_) wake_writer();
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
  queue_.push(command, std::move(tag), now);
  if (connected_) wake_writer();
  return true;
}

asio::awaitable<void> Publisher::run() {
  static log::RateLimit limit(std::chrono::seconds(5));
  ConnectOptions opts = locator_.master_options();
  opts.client_name = "podrelay-pub-" + cfg_.node_id;
  while (!stopped_) {
    if (!co_await connect_with_retry(conn_, locator_, opts, backoff_, retry_, "publisher", stopped_,
                                     limit)) {
      break;
    }
    connected_ = true;
    last_reply_ = Clock::now();
    events_.on_publisher_state(link_, true);
    co_await (reader() || writer() || health());
    connected_ = false;
    conn_.close();
    fail_items(queue_.on_disconnect(), proto::ErrorCode::outcome_unknown,
               "the connection to Redis broke before it answered; the message may or may not "
               "have been published");
    events_.on_publisher_state(link_, false);
  }
}

asio::awaitable<void> Publisher::reader() {
  co_await conn_.read_replies("publisher", stopped_, [this](redisReply const& reply) {
    auto const now = Clock::now();
    last_reply_ = now;
    core::PublishQueue<PublishTag>::Item item;
    if (!queue_.on_reply(item)) {
      log::error("redis sent a reply nobody asked for; reconnecting", {{"role", "publisher"}});
      return false;
    }
    if (item.tag.health_ping) return true;
    auto const latency = now - item.written;
    if (reply.type == REDIS_REPLY_ERROR) {
      events_.on_publish_outcome(link_, item.tag, proto::ErrorCode::redis_error,
                                 reply_string(reply), latency, &reply);
    } else {
      events_.on_publish_outcome(link_, item.tag, std::nullopt, {}, latency, &reply);
    }
    return true;
  });
}

asio::awaitable<void> Publisher::writer() {
  // Right after (re)connecting, what waited in the buffer is held back while this pod's
  // subscriber connection is still re-subscribing, so the pod's own subscribers receive it
  // too; bounded by the ping timeout so a subscriber that cannot come back holds nothing
  // for long.
  auto const hold_until = Clock::now() + cfg_.redis_ping_timeout;
  bool holding = static_cast<bool>(hold_);
  asio::steady_timer pause(co_await asio::this_coro::executor);
  while (conn_.is_open()) {
    if (holding && queue_.has_unwritten()) {
      holding = hold_() && Clock::now() < hold_until;
      if (holding) {
        pause.expires_after(std::chrono::milliseconds(2));
        co_await pause.async_wait(use_tuple);
        continue;
      }
    }
    if (!queue_.has_unwritten()) {
      wake_.expires_at(Clock::time_point::max());
      writer_waiting_ = true;
      co_await wake_.async_wait(use_tuple);
      writer_waiting_ = false;
      continue;
    }
    queue_.take_unwritten(write_buf_, Clock::now());
    if (auto const ec = co_await conn_.write(write_buf_)) {
      conn_.close();
      co_return;
    }
  }
}

asio::awaitable<void> Publisher::health() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::string ping;
  append_command(ping, {"PING"});
  while (conn_.is_open()) {
    timer.expires_after(cfg_.redis_ping_interval);
    co_await timer.async_wait(use_tuple);
    if (!conn_.is_open()) co_return;
    auto const silent = Clock::now() - last_reply_;
    if (queue_.in_flight_count() > 0 && silent > cfg_.redis_ping_timeout) {
      log::warn(
          "redis stopped answering; dropping the connection",
          {{"role", "publisher"},
           {"silent_for", ms_text(std::chrono::duration_cast<std::chrono::milliseconds>(silent))}});
      conn_.close();
      wake_writer();
      co_return;
    }
    PublishTag tag;
    tag.health_ping = true;
    if (queue_.push(ping, std::move(tag), Clock::now())) wake_writer();
  }
}

asio::awaitable<void> Publisher::expiry() {
  while (!stopped_) {
    auto const now = Clock::now();
    auto const next = queue_.next_expiry();
    expiry_timer_.expires_at(std::min(next, now + std::chrono::milliseconds(250)));
    co_await expiry_timer_.async_wait(use_tuple);
    if (stopped_) break;
    fail_items(queue_.expire(Clock::now()), proto::ErrorCode::publish_timeout,
               "Redis stayed unreachable longer than --publish-buffer-timeout");
  }
}

void Publisher::fail_items(std::vector<core::PublishQueue<PublishTag>::Item> items,
                           proto::ErrorCode code, std::string_view text) {
  for (auto const& item : items) {
    if (item.tag.health_ping) continue;
    events_.on_publish_outcome(link_, item.tag, code, text, std::chrono::nanoseconds{0}, nullptr);
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
  std::erase_if(unwritten, [](auto const& item) { return item.tag.health_ping; });
  stop();
  return unwritten;
}

void Publisher::stop() {
  if (stopped_) return;
  stopped_ = true;
  conn_.close();
  wake_.cancel();
  expiry_timer_.cancel();
  retry_.cancel();
  fail_items(queue_.on_disconnect(), proto::ErrorCode::outcome_unknown,
             "the sidecar shut down before Redis answered");
  fail_items(queue_.drain_all(), proto::ErrorCode::draining,
             "the sidecar shut down before the message could be sent to Redis");
}

}  // namespace podrelay::redis
