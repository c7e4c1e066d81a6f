// The subscriber connection: one Redis connection in pub/sub mode carrying this pod's
// SUBSCRIBE / PSUBSCRIBE commands and the messages they bring. It only moves bytes and
// attributes replies: each confirmation or error is matched, in order, to the command it
// answers (an error refuses a whole command, and names none of its channels), while
// unsolicited ones (Redis Cluster's sunsubscribe after a slot moved) pass through as
// confirmations. What to (re)subscribe is decided by the subscriptions core, which it
// informs of every (re)connect and loss. A PING every interval proves the connection
// alive, unless replies keep arriving (its PONG waits behind them).
//
// Quiet echoes: the relay may say that the next N bytes to arrive are echoes of this pod's
// own PUBX messages that no local receiver gets (core/echo_filter.hpp). Then the socket's
// low-water mark (SO_RCVLOWAT) is set just above them: those echoes do not wake the sidecar,
// anything beyond them does (another pod's message, a confirmation), and they are read with
// the next wake-up, at the latest when the spell's timer (--lazy-read-seconds) ends it. While
// a command is in flight the mark stays at 1, so no confirmation or PONG waits. Plain TCP
// only. Single-threaded; lives as long as the relay.
#pragma once

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/sub_kind.hpp"
#include "redis/link.hpp"
#include "redis/master_locator.hpp"
#include "redis/push_reader.hpp"
#include "redis/redis_connection.hpp"
#include "util/lazy_spell.hpp"

namespace podrelay::redis {

class Subscriber final : Link::Role {
 public:
  class Events {
   public:
    // `link` is the id given to the constructor. Called on connect before any read; the
    // handler re-sends its subscriptions.
    virtual void on_subscriber_state(std::size_t link, bool connected) = 0;
    virtual void on_message(std::size_t link, PubSubEvent const& event) = 0;  // (p)message
    // A (p)message whose payload (`payload_bytes`) exceeds max_reply_bytes(): skipped
    // unbuffered; `event` has its names and no payload.
    virtual void on_message_dropped(std::size_t link, PubSubEvent const& event,
                                    std::size_t payload_bytes) = 0;
    virtual void on_confirmed(std::size_t link, core::SubKind kind, std::string_view name,
                              bool subscribed) = 0;
    // Redis answered one of our commands with an error (`text`): none of it took effect.
    virtual void on_refused(std::size_t link, core::SubKind kind, bool subscribe,
                            std::vector<std::string> const& names, std::string_view text) = 0;
    // The quiet spell's time is up: what it left unread is read now; the handler makes its
    // pending echoes loud and calls leave_unread(0).
    virtual void on_quiet_spell_over(std::size_t link) = 0;

   protected:
    ~Events() = default;
  };

  Subscriber(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
             Events& events, std::size_t link);
  // Drops the connection so the next one goes to the current master (after a failover).
  void reconnect();

  void start();
  void stop();
  // Queues (P)SUBSCRIBE or (P)UNSUBSCRIBE of `names` (Redis names). Dropped while
  // disconnected: the tracker re-derives everything on connect.
  void send(core::SubKind kind, bool subscribe, std::vector<std::string> const& names);
  bool connected() const noexcept { return link_.connected(); }
  // The next `bytes` to arrive wake nobody (quiet echoes); 0 ends it. The first call of a
  // spell starts its timer.
  void leave_unread(std::size_t bytes);
  bool can_leave_unread() const noexcept { return options_.tls == nullptr; }  // plain TCP
  // SSUBSCRIBE / SUNSUBSCRIBE (Redis Cluster sharded pub/sub), one command per slot.
  void set_sharded(bool sharded) { sharded_ = sharded; }
  // The largest payload the link buffers: one no receiver could queue (above the frame
  // limit and the per-connection hard queue limit) is dropped and counted instead.
  static std::size_t max_reply_bytes(config::Config const& cfg) noexcept {
    return std::max(cfg.max_frame_bytes, cfg.max_queue_bytes);
  }

 private:
  // Link::Role: what the subscriber adds to the shared connection loop.
  asio::awaitable<Error> connect(RedisConnection& conn) override;
  void on_up() override;
  bool on_reply(redisReply const& reply) override;
  PushReader* push_reader() override { return &*pushes_; }
  bool on_item(PushReader::Status status, PushReader::Item& item) override;
  void on_parsed() override;
  Error on_down() override;
  void log_retry(log::RateLimit& limit, std::string_view reason) override;
  Link::Output output() override;
  void take_output(std::string& buf) override;
  Link::Health on_health_tick() override;

  // A command written and not fully answered yet; a PING has no names.
  struct InFlight {
    bool ping = false;
    core::SubKind kind = core::SubKind::channel;
    bool subscribe = true;
    std::vector<std::string> names;
    std::size_t confirmed = 0;
  };
  void queue_command(core::SubKind kind, bool subscribe, std::span<std::string_view const> args);
  void on_event(PubSubEvent const& ev);
  // The low-water mark the quiet bytes and the commands in flight allow.
  void apply_low_water();

  config::Config const& cfg_;
  MasterLocator& locator_;
  Events& events_;
  std::size_t id_;
  ConnectOptions options_;
  std::deque<InFlight> in_flight_;
  std::string out_;
  std::string ping_;
  std::deque<std::chrono::steady_clock::time_point> pings_in_flight_;
  bool sharded_ = false;
  bool heard_ = false;                // a reply arrived since the last health tick
  std::optional<PushReader> pushes_;  // replaced on every connect
  std::size_t quiet_ = 0;             // bytes on their way that need wake nobody
  bool parsing_ = false;              // inside a read's items: the mark is set after them
  util::LazySpellTimer quiet_timer_;  // ends a quiet spell
  Link link_;                         // last: its coroutines use the members above
};

}  // namespace podrelay::redis
