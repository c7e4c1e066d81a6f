// One app connection on the framed protocol (proto/PROTOCOL.md): decodes frames, hands
// requests to the relay and encodes the answers. Replies leave in request order: PUB
// answers among themselves (but PUBLISH_BUFFER_FULL at once), SUB-family answers among
// themselves (the subscriptions core orders those); PONG at once. The transport (queue,
// limits, close) is the Connection's. Used only from the io_context thread.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "proto/frame.hpp"
#include "server/connection.hpp"
#include "util/fifo.hpp"

namespace podrelay::server {

class Session final : public Connection {
 public:
  Session(Socket socket, Relay& relay, std::uint64_t id, std::string peer);

  // core::Receiver: queue a shared MSG frame; the answer to a SUB-family request.
  bool deliver(core::Delivery& message) override;
  void on_subscription_reply(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                             std::string_view text) override;
  // redis::PublishOrigin: the answer to an acked PUB.
  void on_publish_outcome(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                          std::string_view text, redisReply const* reply) override;

 private:
  // An acked PUB, answered in request order once its outcome is known.
  struct PendingAck {
    std::uint32_t request_id = 0;
    bool ready = false;
    std::optional<proto::ErrorCode> error;
    std::string text;
  };

  void on_started() override;
  std::span<char> read_space(std::size_t at_least) override { return decoder_.prepare(at_least); }
  std::size_t read_buffered() const noexcept override { return decoder_.buffered(); }
  void read_idle() override { decoder_.shrink_if_idle(0); }
  void read_done() override;
  bool on_read(std::size_t n) override;
  bool owes_replies() const noexcept override {
    return !acks_.empty() || (!detached_ && subscription_requests_ > 0);
  }
  void on_half_closed() override;
  void append_goaway(std::string& out, proto::ErrorCode code, std::string_view text) override {
    proto::encode_goaway(out, code, text);
  }

  // Returns false when the connection must close.
  bool handle(proto::Frame& frame);
  bool handshake(proto::Hello const& hello);
  void publish(proto::Pub const& pub);
  void protocol_error(proto::ErrorCode code, std::string_view text);
  void answer_acks();

  proto::Decoder decoder_;
  util::Fifo<PendingAck> acks_;
  std::size_t subscription_requests_ = 0;  // SUB-family requests not answered yet
  boost::asio::steady_timer hello_timer_;
  bool hello_done_ = false;
  bool eof_ = false;  // the app half-closed
};

}  // namespace podrelay::server
