// One Redis link: the connection loop every Redis role shares (publisher, subscriber,
// Sentinel watcher). It connects through the role, retries with backoff and jitter, then
// runs one reader, one writer that sleeps on a timer used as a condition variable (woken
// only while it sleeps: a timer cancel per publish would cost more than the publish), and a
// health tick, until the connection breaks; then it reconnects. Output queued inside a
// util::WriteBatch (an app read's PUBLISHes) is written when the batch closes, without
// waking the writer, over plain TCP; the writer sends what the socket did not take. The role owns
// what travels on the link: what to write, how to read each reply, when the peer counts as dead.
// Single-threaded; owned by its role, which outlives the coroutines (they hold `this`).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include "redis/redis_connection.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/write_batch.hpp"

namespace podrelay::redis {

class MasterLocator;

class Link final : private util::WriteBatch::Writer {
 public:
  enum class Output { none, held, ready };  // held: something to write, not yet
  enum class Health { idle, wake_writer, dead };

  // What a role adds to the link. Every call runs on the link's executor.
  class Role {
   public:
    // Opens `conn` to the peer of this role. An error is logged and retried after a backoff.
    virtual asio::awaitable<Error> connect(RedisConnection& conn) = 0;
    // Connected, before any read or write (the role may queue its first commands).
    virtual void on_up() = 0;
    // Each reply in order; false drops the connection.
    virtual bool on_reply(redisReply const& reply) = 0;
    // The most bytes the next reply may take (0: no bound); checked while a large reply is
    // still arriving, so a peer that sends one without end is dropped before it costs more.
    virtual std::size_t reply_limit() const { return 0; }
    // A role that reads with a PushReader of its own (the subscriber: message pushes parsed
    // in place) returns it, fresh for each connection; then every reply goes to on_item.
    virtual PushReader* push_reader() { return nullptr; }
    virtual bool on_item(PushReader::Status /*status*/, PushReader::Item& /*item*/) {
      return false;
    }
    // With a PushReader: the items of one read were handled, the next read comes.
    virtual void on_parsed() {}
    // After the connection is gone. An error: log it and back off before reconnecting
    // (the Sentinel watcher); none: reconnect at once (the data connections).
    virtual Error on_down() = 0;
    // One rate-limited line for a failed connect (or an on_down error).
    virtual void log_retry(log::RateLimit& limit, std::string_view reason) = 0;
    virtual Output output() { return Output::none; }
    // Moves what is ready into `buf` (cleared or overwritten by the role).
    virtual void take_output(std::string& /*buf*/) {}
    // Every ping interval while connected: send a PING (wake_writer) or give up (dead,
    // after the role logged why).
    virtual Health on_health_tick() { return Health::idle; }

   protected:
    ~Role() = default;
  };

  struct Options {
    std::string_view name;  // "publisher", "subscriber", "sentinel": names it in log lines
    std::chrono::milliseconds ping_interval{0};  // zero: no health tick
  };

  // `limit` rate-limits the retry lines; it may be shared by all links of one role.
  Link(asio::any_io_executor ex, Role& role, Options options, log::RateLimit& limit);
  Link(Link const&) = delete;  // its coroutines hold `this`
  Link& operator=(Link const&) = delete;

  void start();
  // Drops the connection; the next attempt starts at once (a pending backoff is cut short).
  void reconnect();
  // Stops for good: closes the connection, no further attempt.
  void stop();
  // Something is ready to write: inside a WriteBatch it is written when the batch closes
  // (plain TCP), otherwise the writer coroutine is woken.
  void wake_writer() {
    if (!writer_waiting_) return;
    if (connected_ && conn_.can_write_now() && defer_to_batch()) return;
    writer_waiting_ = false;
    wake_.cancel();
  }

  bool connected() const noexcept { return connected_; }
  bool stopped() const noexcept { return stopped_; }
  // Wake the reader only once `bytes` arrived (RedisConnection::set_read_low_water; 1:
  // eager). Returns whether that mark is in effect now.
  bool set_read_low_water(std::size_t bytes) {
    return connected_ && conn_.set_read_low_water(bytes);
  }

  // "host:port" of the current (or last) connection, for log lines.
  std::string const& peer() const { return conn_.peer(); }
  // The connect step of the data connections: ask `locator` where the master is, open it
  // (unless stopped meanwhile).
  asio::awaitable<Error> connect_to_master(RedisConnection& conn, MasterLocator& locator,
                                           ConnectOptions const& options);

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> reader();
  asio::awaitable<void> writer();
  asio::awaitable<void> health();
  asio::awaitable<void> back_off(std::string_view reason);
  void flush_batch() noexcept override;

  Role& role_;
  Options options_;
  log::RateLimit& limit_;
  RedisConnection conn_;
  asio::steady_timer wake_;
  asio::steady_timer retry_;
  Backoff backoff_;
  std::string write_buf_;
  bool connected_ = false;
  bool stopped_ = false;
  bool writer_waiting_ = false;
  bool unsent_ = false;  // write_buf_ holds the rest of a write_now the socket cut short
};

}  // namespace podrelay::redis
