// The stream reader: one Redis connection per pod that runs XREAD BLOCK over every durable
// channel with local subscribers, in one command, and hands each entry to the relay once.
// What it reads and where it stands is core::StreamCursor (kept across reconnects, so it
// resumes from the last id it delivered after any reconnect or Sentinel failover). To the
// subscriptions core it looks like a subscriber link: it "confirms" a channel once it knows
// the channel's start position (so a SUB's OK means every later entry will be read).
// When the set of channels changes while an XREAD is blocked, it asks the relay to send
// CLIENT UNBLOCK on the publisher connection, so a new channel does not wait for the block
// to time out. After a reconnect, a channel it kept is confirmed only once its recheck is
// answered: a resume then asks Redis after any new epoch the recheck gave the stream.
// Single-threaded; lives as long as the relay.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/durable_channels.hpp"
#include "core/stream_cursor.hpp"
#include "redis/link.hpp"
#include "redis/master_locator.hpp"

namespace podrelay::redis {

class StreamReader final : Link::Role {
 public:
  class Events {
   public:
    // Connected (before any read) or lost; on connect the handler re-sends its channels.
    virtual void on_reader_state(bool connected) = 0;
    // Channels now read (`subscribed`) or no longer read; Redis channel names.
    virtual void on_reader_confirmed(std::vector<std::string> const& channels, bool subscribed) = 0;
    // One entry of `channel` (a Redis channel name), in stream order, exactly once.
    virtual void on_stream_entry(std::string const& channel, std::string_view id,
                                 core::StreamId parsed, std::string_view payload) = 0;
    // Please send CLIENT UNBLOCK <client_id> (the XREAD must be re-issued).
    virtual void on_reader_unblock(std::int64_t client_id) = 0;
    // After a reconnect: Redis no longer holds all of `channel`'s stream that this reader
    // had not read yet (core::StreamCursor::recheck says how: never `intact`); `epoch` is
    // the stream's epoch now (rolled back: the one it kept), `old_epoch` the one read
    // before ("" when none was).
    virtual void on_stream_lost(std::string const& channel, core::StreamCursor::Continuity how,
                                std::string const& old_epoch, std::string const& epoch) = 0;

   protected:
    ~Events() = default;
  };

  static constexpr std::chrono::milliseconds block{1000};
  static constexpr std::size_t entries_per_stream = 512;

  StreamReader(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
               core::DurableChannels const& durable, Events& events);

  void start();
  void stop();
  void reconnect() { link_.reconnect(); }
  // Start (subscribe) or stop reading `channels` (Redis names). Dropped while
  // disconnected: the subscriptions core re-sends everything on connect.
  void send(bool subscribe, std::vector<std::string> const& channels);
  // After a reconnect, before the re-sent channels: forget the others.
  void retain_only(std::vector<std::string> const& channels) { cursor_.retain_only(channels); }
  bool connected() const noexcept { return link_.connected(); }
  // Where the reader stands for a channel: every later entry reaches the hub.
  core::StreamId position(std::string_view channel) const { return cursor_.position(channel); }
  std::size_t channels() const noexcept { return cursor_.size(); }

 private:
  asio::awaitable<Error> connect(RedisConnection& conn) override;
  void on_up() override;
  bool on_reply(redisReply const& reply) override;
  Error on_down() override;
  void log_retry(log::RateLimit& limit, std::string_view reason) override;
  Link::Output output() override;
  void take_output(std::string& buf) override;
  Link::Health on_health_tick() override;
  std::size_t reply_limit() const override;

  // fetch / check: the stream's last entry, (check_held) the entry at or before the
  // position, then (fetch_epoch / check_epoch) its epoch key.
  enum class Kind { client_id, fetch, fetch_epoch, check, check_held, check_epoch, xread, ping };
  struct InFlight {
    Kind kind = Kind::ping;
    std::string channel;  // fetch
    std::chrono::steady_clock::time_point sent{};
  };
  void queue(Kind kind, std::string channel);
  void on_xread(redisReply const& reply);
  void confirm_later(std::string channel, bool subscribed);
  void maybe_unblock();

  config::Config const& cfg_;
  MasterLocator& locator_;
  core::DurableChannels const& durable_;
  Events& events_;
  ConnectOptions options_;
  core::StreamCursor cursor_;
  std::deque<InFlight> in_flight_;
  std::string out_;
  std::int64_t client_id_ = 0;
  bool xread_in_flight_ = false;
  std::size_t xread_streams_ = 0;  // how many streams the XREAD in flight reads
  std::size_t xread_generation_ = 0;
  bool unblock_sent_ = false;
  std::size_t fetches_in_flight_ = 0;            // position fetches and rechecks (pairs of replies)
  core::StreamId last_entry_{};                  // a fetch's or check's first reply, for its last
  core::StreamId held_entry_{};                  // a check's second reply
  bool recheck_ = false;                         // reconnected: recheck the positions kept
  std::set<std::string, std::less<>> checking_;  // rechecks sent, not yet answered
  std::set<std::string, std::less<>> held_confirms_;  // confirmations waiting for them
  // In the order the subscriptions core must see them (an "on" before the "off" after it).
  std::vector<std::pair<std::string, bool>> confirms_;
  bool confirm_posted_ = false;
  std::string refused_;  // Redis refused a command: back off before reconnecting
  asio::any_io_executor ex_;
  Link link_;  // last: its coroutines use the members above
};

}  // namespace podrelay::redis
