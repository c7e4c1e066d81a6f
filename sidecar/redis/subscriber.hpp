// The subscriber connection: one Redis connection in pub/sub mode carrying this pod's
// SUBSCRIBE / PSUBSCRIBE commands and the messages they bring. It only moves bytes and
// classifies replies; what to (re)subscribe is decided by the relay's SubscriptionTracker,
// which it informs of every (re)connect and loss. A PING every interval proves the
// connection alive. Single-threaded; lives as long as the relay.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/hub.hpp"
#include "redis/master_locator.hpp"
#include "redis/redis_connection.hpp"

namespace podrelay::redis {

class Subscriber {
 public:
  class Events {
   public:
    // Called on connect before any read; the handler re-sends its subscriptions.
    virtual void on_subscriber_state(bool connected) = 0;
    virtual void on_pubsub_event(PubSubEvent const& event) = 0;

   protected:
    ~Events() = default;
  };

  Subscriber(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
             Events& events);
  // Drops the connection so the next one goes to the current master (after a failover).
  void reconnect();

  void start();
  void stop();
  // Queues (P)SUBSCRIBE or (P)UNSUBSCRIBE of `names` (Redis names). Dropped while
  // disconnected: the tracker re-derives everything on connect.
  void send(core::SubKind kind, bool subscribe, std::vector<std::string> const& names);
  bool connected() const noexcept { return connected_; }
  // SSUBSCRIBE / SUNSUBSCRIBE (Redis Cluster sharded pub/sub), one command per slot.
  void set_sharded(bool sharded) { sharded_ = sharded; }

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> reader();
  asio::awaitable<void> writer();
  asio::awaitable<void> health();
  void wake_writer() {
    if (writer_waiting_) {
      writer_waiting_ = false;
      wake_.cancel();
    }
  }

  config::Config const& cfg_;
  MasterLocator& locator_;
  Events& events_;
  RedisConnection conn_;
  asio::steady_timer wake_;
  asio::steady_timer retry_;
  Backoff backoff_;
  std::string out_;
  std::string write_buf_;
  std::deque<std::chrono::steady_clock::time_point> pings_in_flight_;
  bool connected_ = false;
  bool stopped_ = false;
  bool writer_waiting_ = false;
  bool sharded_ = false;
};

}  // namespace podrelay::redis
