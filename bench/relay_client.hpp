// A podrelay app connection for the bench: sends HELLO on connect, SUB, PUB (fire and
// forget or acked), and decodes the sidecar's frames with the project's own codec
// (proto::Decoder). Not thread-safe.
#pragma once

#include <span>
#include <string>

#include "proto/frame.hpp"
#include "pubsub_client.hpp"

namespace bench {

class RelayClient final : public PubSubClient {
 public:
  RelayClient(EventLoop& loop, Address const& address, std::string_view client_name = "bench");

  void subscribe(std::string_view channel) override;
  // One SUB frame for all `channels`; subscribed() turns true on its OK.
  void subscribe_all(std::span<std::string const> channels);
  void publish(std::string_view channel, std::string_view payload, bool acked, bool defer) override;
  // Frees the decoder's buffer when no partial frame is held (idle connections).
  void trim() { decoder_.shrink_if_idle(0); }

 private:
  void on_bytes(char const* data, std::size_t n) override;
  std::uint32_t next_request_id();

  podrelay::proto::Decoder decoder_;
  std::string frame_;
  std::uint32_t next_id_ = 1;
  std::uint32_t sub_request_id_ = 0;
};

}  // namespace bench
