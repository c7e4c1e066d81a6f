// One app connection on the framed protocol: a reader coroutine decodes frames and hands
// requests to the relay; a writer coroutine sends the outbound queue (replies and shared
// MSG frames) with gathered writes. Replies leave in request order: PUB answers among
// themselves, SUB-family answers among themselves (the subscriptions core orders those).
// The queue is bounded: a connection that stays over --max-queue-bytes (or over the soft
// limit for longer than its window) is told GOAWAY SLOW_CONSUMER and closed, so it never
// holds anyone else back. Owned by shared_ptr (its coroutines hold a reference); used only
// from the io_context thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "core/receiver.hpp"
#include "proto/frame.hpp"
#include "redis/publisher.hpp"
#include "server/connection_slots.hpp"

namespace podrelay::server {

class Relay;

class Session final : public std::enable_shared_from_this<Session>,
                      public core::Receiver,
                      public redis::PublishOrigin {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;

  Session(Socket socket, Relay& relay, std::uint64_t id, std::string peer);
  ~Session();

  void start();

  // core::Receiver: queue a shared MSG frame; the answer to a SUB-family request.
  bool deliver(core::Delivery& message) override;
  void on_subscription_reply(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                             std::string_view text) override;
  // redis::PublishOrigin: the answer to an acked PUB.
  void on_publish_outcome(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                          std::string_view text) override;

  // Sends GOAWAY and closes once queued replies are written (bounded by a deadline).
  // With `wait_for_acks`, publishes still waiting for Redis are answered first (drain).
  void goaway(proto::ErrorCode code, std::string_view text, bool wait_for_acks = false);
  void close();

  std::size_t queued_bytes() const noexcept { return queued_bytes_; }
  std::uint64_t id() const noexcept { return id_; }

 private:
  // An acked PUB, answered in request order once its outcome is known.
  struct PendingAck {
    std::uint32_t request_id = 0;
    bool ready = false;
    std::optional<proto::ErrorCode> error;
    std::string text;
  };
  struct Chunk {
    core::SharedFrame shared;  // fan-out frames, shared by every receiver
    std::string owned;         // this connection's replies, coalesced
    std::size_t size() const { return shared ? shared->size() : owned.size(); }
    char const* data() const { return shared ? shared->data() : owned.data(); }
  };

  boost::asio::awaitable<void> reader();
  boost::asio::awaitable<void> writer();
  // Returns false when the connection must close.
  bool handle(proto::Frame& frame);
  bool handshake(proto::Hello const& hello);
  void publish(proto::Pub const& pub);
  void protocol_error(proto::ErrorCode code, std::string_view text);
  void half_closed();
  void answer_acks();
  bool owes_replies() const noexcept { return !acks_.empty() || subscription_requests_ > 0; }
  std::string& owned_tail();
  // Encodes one reply frame (`encode(out)` appends it) into the outbound queue.
  template <class Encode>
  void append_reply(Encode&& encode) {
    if (closed_) return;
    auto& out = owned_tail();
    auto const before = out.size();
    encode(out);
    queued(out.size() - before);
  }
  void queued(std::size_t n);
  void check_soft_limit();
  void wake_writer();
  void slow_consumer(std::string reason);
  void close_after(std::chrono::steady_clock::duration grace);

  Socket socket_;
  Relay& relay_;
  std::uint64_t id_;
  std::string peer_;
  std::string client_name_;
  ConnectionSlots::Slot slot_;
  proto::Decoder decoder_;
  std::deque<Chunk> queue_;
  std::deque<PendingAck> acks_;
  std::size_t subscription_requests_ = 0;  // SUB-family requests not answered yet
  std::size_t writing_ = 0;                // chunks at the front of queue_ being written now
  std::size_t queued_bytes_ = 0;
  boost::asio::steady_timer wake_;
  boost::asio::steady_timer close_deadline_;
  boost::asio::steady_timer limit_timer_;  // the handshake deadline, then the soft-limit window
  bool hello_done_ = false;
  bool closing_ = false;  // GOAWAY, protocol error or EOF: finishing
  bool wait_for_replies_ = false;
  bool closed_ = false;
  bool over_limit_posted_ = false;
  bool writer_waiting_ = false;
  bool reader_done_ = false;
  bool eof_ = false;  // the app half-closed
  bool writer_done_ = false;
  std::chrono::steady_clock::time_point over_soft_since_{};  // epoch: not over the soft limit
};

}  // namespace podrelay::server
