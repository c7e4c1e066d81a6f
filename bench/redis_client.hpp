// A plain RESP connection to Redis for the direct baseline: SUBSCRIBE on one connection,
// pipelined PUBLISH on another. Encoding and parsing reuse the project's hiredis wrappers
// (redis::append_command, redis::ReplyReader). Not thread-safe.
#pragma once

#include "pubsub_client.hpp"
#include "redis/resp.hpp"

namespace bench {

class RedisClient final : public PubSubClient {
 public:
  RedisClient(EventLoop& loop, std::uint16_t port);

  void subscribe(std::string_view channel) override;
  void publish(std::string_view channel, std::string_view payload, bool acked, bool defer) override;
  // Sends PING; acks() counts the PONG (used by the idle-connection memory test).
  void ping();

 private:
  void on_bytes(char const* data, std::size_t n) override;

  podrelay::redis::ReplyReader reader_;
  std::string command_;
};

}  // namespace bench
