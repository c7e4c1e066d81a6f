// The pipelined publisher: one Redis connection that carries every PUBLISH of this pod.
// Commands queue in a bounded buffer (core::PublishQueue), each write sends everything
// queued so far (coalescing), and replies are matched to commands in order. While Redis is
// away, publishes wait up to the buffer's byte and time bounds; commands lost with a broken
// connection are reported as outcome unknown, never silently retried. A PING every
// interval proves the connection alive.
//
// Lazy replies: while nobody waits for any reply in flight (fire-and-forget publishes,
// health PINGs), Redis' answers are left in the socket until 4 KiB of them arrived or the
// lazy-read window (--lazy-read-seconds, util/lazy_spell.hpp) passed, instead of waking the
// sidecar for each one: at the rates pods run, that wake-up was half of the publishing
// sidecar's CPU per message. The replies are
// still all read and counted (errors included), at most that much later; an awaited
// command (an ack, a query, a durable publish) switches back to reading at once. Plain TCP
// on Linux only (SO_RCVLOWAT). Single-threaded; lives as long as the relay.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/publish_queue.hpp"
#include "proto/error_code.hpp"
#include "redis/link.hpp"
#include "redis/master_locator.hpp"
#include "redis/redis_connection.hpp"
#include "util/lazy_spell.hpp"

namespace podrelay::redis {

// Who to answer when the outcome of a publish is known.
class PublishOrigin {
 public:
  // `reply` is Redis' answer when there is one (the PUBLISH integer, a PUBSUB reply).
  virtual void on_publish_outcome(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                                  std::string_view text, redisReply const* reply) = 0;
  // The reply to a durable-channel query (a resume's stream metadata or XRANGE page),
  // matched by the `token` the origin chose.
  virtual void on_durable_reply(std::uint64_t /*token*/, std::optional<proto::ErrorCode> /*error*/,
                                std::string_view /*text*/, redisReply const* /*reply*/) {}

 protected:
  ~PublishOrigin() = default;
};

// Shared by the EVAL of a durable publish and the WAIT behind it (--durable-min-replicas):
// the EVAL's outcome waits here until the WAIT answers.
struct DurableAck {
  std::optional<proto::ErrorCode> error;
  std::string text;
  std::string id;
};

struct PublishTag {
  std::weak_ptr<PublishOrigin> origin;  // empty for fire-and-forget
  std::uint32_t request_id = 0;
  bool health_ping = false;  // also: any reply nobody waits for (ASKING)
  bool script_load = false;  // the SCRIPT LOAD sent again after a NOSCRIPT (see set_script)
  bool query = false;        // a PUBSUB query: not a publish, not counted as one
  // Cluster mode only: the encoded command, to send again after a MOVED/ASK redirect
  // (Redis did not execute it, so a retry cannot duplicate it).
  std::shared_ptr<std::string const> command;
  std::uint8_t redirects = 0;
  std::uint16_t slot = 0;
  // Durable channels: a publish (its reply is the entry id), the EVAL whose outcome waits
  // for the WAIT behind it (`wait` set, `durable_wait` false), that WAIT (both set), or a
  // resume's query for the origin (`durable_query`, matched by `token`).
  bool durable = false;
  bool durable_wait = false;
  bool durable_query = false;
  std::uint64_t token = 0;
  std::shared_ptr<DurableAck> wait;
};

class Publisher final : Link::Role {
 public:
  static constexpr std::size_t lazy_read_bytes = 4096;  // replies read in bulk, at most
  class Events {
   public:
    // `link` is the id given to the constructor. Exactly once per accepted publish; `error`
    // empty when Redis accepted it. `latency` is negative when unknown (a lazy reply).
    virtual void on_publish_outcome(std::size_t link, PublishTag const& tag,
                                    std::optional<proto::ErrorCode> error, std::string_view text,
                                    std::chrono::nanoseconds latency, redisReply const* reply) = 0;
    virtual void on_publisher_state(std::size_t link, bool connected) = 0;

   protected:
    ~Events() = default;
  };

  Publisher(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
            Events& events, std::size_t link);
  // Drops the connection so the next one goes to the current master (after a failover).
  void reconnect();

  void start();
  // Queues a PUBLISH of <prefix><channel>. False when the buffer is full (nothing queued;
  // the caller nacks).
  bool publish(std::string_view prefix, std::string_view channel, std::string_view payload,
               PublishTag tag);
  // Queues an already encoded command (a redirected SPUBLISH, a PUBSUB query); `asking`
  // sends ASKING first.
  bool publish_encoded(std::string const& command, PublishTag tag, bool asking);
  // While `hold` answers true right after a (re)connect, buffered publishes wait (at most
  // the ping timeout): the relay holds them until this pod has re-subscribed.
  void set_hold(std::function<bool()> hold) { hold_ = std::move(hold); }
  // "SPUBLISH" on Redis Cluster (sharded pub/sub), "PUBLISH" otherwise.
  void set_sharded(bool sharded) { sharded_ = sharded; }
  // Before start(): every connection loads `script` (SCRIPT LOAD, in the handshake) so that
  // commands can name it by script_sha() (EVALSHA). A NOSCRIPT answer (Redis' cache was
  // flushed meanwhile) fails that command with a reason and loads the script again.
  void set_script(std::string_view script) { script_ = script; }
  // The loaded script's SHA1; empty while it is not known to be in Redis' cache (never
  // loaded, refused by an ACL, or flushed and not yet loaded again): send it whole (EVAL).
  std::string_view script_sha() const noexcept { return script_sha_; }
  // Completes when nothing waits for Redis any more, or at `deadline`.
  asio::awaitable<void> flush(std::chrono::steady_clock::time_point deadline);
  // Stops for good: closes the connection and reports everything pending as failed.
  void stop();
  // Stops for good, like stop(), but hands back the publishes that were never written so
  // they can go to another connection (a Redis Cluster shard that moved).
  std::vector<core::PublishQueue<PublishTag>::Item> retire();

  bool connected() const noexcept { return link_.connected(); }
  std::size_t buffered_bytes() const noexcept { return queue_.bytes(); }

 private:
  // Link::Role: what the publisher adds to the shared connection loop.
  asio::awaitable<Error> connect(RedisConnection& conn) override;
  void on_up() override;
  bool on_reply(redisReply const& reply) override;
  std::size_t reply_limit() const override;
  Error on_down() override;
  void log_retry(log::RateLimit& limit, std::string_view reason) override;
  Link::Output output() override;
  void take_output(std::string& buf) override;
  Link::Health on_health_tick() override;

  asio::awaitable<void> expiry();
  // Before a write: lazy or eager reads for the replies of what is written now.
  bool choose_reply_mode();
  static bool awaited(PublishTag const& tag) noexcept {
    return tag.request_id != 0 || tag.query || tag.durable || tag.durable_wait ||
           tag.durable_query || tag.wait || tag.script_load;
  }
  void fail_items(std::vector<core::PublishQueue<PublishTag>::Item> items, proto::ErrorCode code,
                  std::string_view text);
  // A NOSCRIPT answer: EVAL from now on, and SCRIPT LOAD queued (once) to get back to EVALSHA.
  void reload_script();

  config::Config const& cfg_;
  MasterLocator& locator_;
  Events& events_;
  std::size_t id_;
  ConnectOptions options_;
  core::PublishQueue<PublishTag> queue_;
  asio::steady_timer expiry_timer_;
  util::LazySpellTimer lazy_timer_;  // ends a spell of lazy replies
  std::string scratch_;
  std::string ping_;
  std::string_view script_;  // empty: none (set_script)
  std::string script_sha_;
  bool script_reloading_ = false;
  bool sharded_ = false;
  std::function<bool()> hold_;
  // Right after a (re)connect: buffered publishes wait while `hold_` says so, until then.
  bool holding_ = false;
  std::chrono::steady_clock::time_point hold_until_{};
  std::chrono::steady_clock::time_point last_reply_{};
  Link link_;  // last: its coroutines use the members above
};

}  // namespace podrelay::redis
