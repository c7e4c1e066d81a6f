// A plain RESP connection to Redis for the direct baseline: SUBSCRIBE on one connection,
// pipelined PUBLISH on another; with `sharded`, SSUBSCRIBE / SPUBLISH (Redis Cluster sharded
// pub/sub, the caller picks the master owning each channel's slot). Encoding and parsing
// reuse the project's hiredis wrappers (redis::append_command, redis::ReplyReader).
// Not thread-safe.
#pragma once

#include "pubsub_client.hpp"
#include "redis/resp.hpp"

namespace bench {

class RedisClient final : public PubSubClient {
 public:
  RedisClient(EventLoop& loop, std::uint16_t port, bool sharded = false);

  void subscribe(std::string_view channel) override;
  void publish(std::string_view channel, std::string_view payload, bool acked, bool defer) override;
  // Sends PING; acks() counts the PONG (used by the idle-connection memory test).
  void ping();
  // Channels whose subscription the server confirmed so far.
  std::size_t confirmed() const noexcept { return confirmed_; }

 private:
  void on_bytes(char const* data, std::size_t n) override;

  podrelay::redis::ReplyReader reader_;
  std::string command_;
  bool sharded_ = false;
  std::size_t confirmed_ = 0;
};

}  // namespace bench
