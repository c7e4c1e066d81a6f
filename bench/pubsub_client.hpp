// What a bench scenario needs from a pub/sub connection, whichever path it takes: straight
// to Redis (RedisClient) or through a podrelay sidecar (RelayClient).
// Not thread-safe; owned by the scenario that created it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "connection.hpp"

namespace bench {

// Receives every message payload delivered to a subscriber connection.
class MessageSink {
 public:
  virtual void on_message(std::string_view payload) = 0;

 protected:
  MessageSink() = default;
  MessageSink(MessageSink const&) = default;
  MessageSink& operator=(MessageSink const&) = default;
  ~MessageSink() = default;
};

class PubSubClient : public Connection {
 public:
  using Connection::Connection;

  // Subscribes to one channel; subscribed() turns true when the server confirmed it.
  virtual void subscribe(std::string_view channel) = 0;
  // Publishes one message. `acked`: ask for a reply (podrelay request id != 0; Redis
  // always replies). `defer`: leave it in the output buffer until flush().
  virtual void publish(std::string_view channel, std::string_view payload, bool acked,
                       bool defer) = 0;

  // Handshake done (podrelay WELCOME; Redis: at once).
  bool ready() const noexcept { return ready_; }
  bool subscribed() const noexcept { return subscribed_; }
  std::uint64_t acks() const noexcept { return acks_; }
  std::uint64_t nacks() const noexcept { return nacks_; }
  std::uint64_t messages() const noexcept { return messages_; }
  // Why the server ended the connection (GOAWAY text, error reply), if it did.
  std::string const& server_error() const noexcept { return server_error_; }
  void set_sink(MessageSink* sink) noexcept { sink_ = sink; }

 protected:
  bool ready_ = false;
  bool subscribed_ = false;
  std::uint64_t acks_ = 0;
  std::uint64_t nacks_ = 0;
  std::uint64_t messages_ = 0;
  std::string server_error_;
  MessageSink* sink_ = nullptr;
};

}  // namespace bench
