// One app connection: a reader coroutine decodes frames and hands requests to the relay; a
// writer coroutine sends the outbound queue (replies and shared MSG frames) with gathered
// writes. The queue is bounded: a connection that stays over --max-queue-bytes is told
// GOAWAY SLOW_CONSUMER and closed, so it never holds anyone else back.
// Owned by shared_ptr (its coroutines hold a reference); used only from the io_context
// thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>

#include "core/hub.hpp"
#include "proto/frame.hpp"
#include "redis/publisher.hpp"

namespace podrelay::server {

class Relay;

class Session final : public std::enable_shared_from_this<Session>,
                      public core::Subscriber,
                      public redis::PublishOrigin {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;

  Session(Socket socket, Relay& relay, std::uint64_t id, std::string peer);
  ~Session();

  void start();

  // core::Subscriber: queue a shared MSG frame.
  void deliver(core::SharedFrame const& frame) override;
  // redis::PublishOrigin: the answer to an acked PUB.
  void on_publish_outcome(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                          std::string_view text) override;

  void send_ok(std::uint32_t request_id);
  // Replies to SUB/UNSUB/PSUB/PUNSUB leave in request order even when an earlier request
  // waits for Redis and a later one does not: announce each request, then complete it.
  void expect_control_reply(std::uint32_t request_id);
  void control_reply(std::uint32_t request_id, std::optional<proto::ErrorCode> error = {},
                     std::string_view text = {});
  void send_err(std::uint32_t request_id, proto::ErrorCode code, std::string_view text);
  // Sends GOAWAY and closes once queued replies are written (bounded by a deadline).
  // With `wait_for_acks`, publishes still waiting for Redis are answered first (drain).
  void goaway(proto::ErrorCode code, std::string_view text, bool wait_for_acks = false);
  void close();

  // Subscriptions of this connection, by app-facing name.
  std::unordered_set<std::string>& names(core::SubKind kind) {
    return kind == core::SubKind::channel ? channels_ : patterns_;
  }
  std::size_t subscription_count() const { return channels_.size() + patterns_.size(); }
  void add_pending_ack() { ++pending_acks_; }
  std::size_t queued_bytes() const noexcept { return queued_bytes_; }
  std::uint64_t id() const noexcept { return id_; }
  bool closing() const noexcept { return closing_; }

 private:
  struct ControlReply {
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
  void protocol_error(proto::ErrorCode code, std::string_view text);
  std::string& owned_tail();
  // Encodes one reply frame (`encode(out)` appends it) into the outbound queue.
  template <class Encode>
  void append_reply(Encode&& encode) {
    auto& out = owned_tail();
    auto const before = out.size();
    encode(out);
    queued(out.size() - before);
  }
  void queued(std::size_t n);
  void wake_writer();
  void slow_consumer(std::string reason);

  Socket socket_;
  Relay& relay_;
  std::uint64_t id_;
  std::string peer_;
  std::string client_name_;
  proto::Decoder decoder_;
  std::deque<Chunk> queue_;
  std::deque<ControlReply> control_;
  std::size_t writing_ = 0;  // chunks at the front of queue_ being written now
  std::size_t queued_bytes_ = 0;
  std::size_t pending_acks_ = 0;
  boost::asio::steady_timer wake_;
  boost::asio::steady_timer close_deadline_;
  std::unordered_set<std::string> channels_;
  std::unordered_set<std::string> patterns_;
  bool hello_done_ = false;
  bool closing_ = false;  // GOAWAY or protocol error sent; finishing
  bool wait_for_acks_ = false;
  bool closed_ = false;
  bool over_limit_posted_ = false;
  bool writer_waiting_ = false;
  std::chrono::steady_clock::time_point over_soft_since_{};  // epoch: not over the soft limit
};

}  // namespace podrelay::server
