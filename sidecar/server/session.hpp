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
#include <unordered_map>

#include "core/resume.hpp"
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
  // The replies to a resume's queries (stream metadata, XRANGE pages).
  void on_durable_reply(std::uint64_t token, std::optional<proto::ErrorCode> error,
                        std::string_view text, redisReply const* reply) override;

 private:
  // An acked PUB, answered in request order once its outcome is known.
  struct PendingAck {
    std::uint32_t request_id = 0;
    bool ready = false;
    std::optional<proto::ErrorCode> error;
    std::string text;  // the error's text, or the id of a durable publish
  };
  // A resumed durable subscription (RSUB), by app channel; kept once live to skip ids
  // already delivered.
  struct Resuming {
    std::uint32_t request_id = 0;
    core::Resume resume;
    bool answered = false;
  };
  static constexpr std::size_t replay_page = 256;

  void on_started() override;
  std::span<char> read_space(std::size_t at_least) override { return decoder_.prepare(at_least); }
  std::size_t read_buffered() const noexcept override { return decoder_.buffered(); }
  void read_idle(std::size_t keep) override { decoder_.shrink_if_idle(keep); }
  void read_done() override;
  bool on_read(std::size_t n) override;
  bool owes_replies() const noexcept override {
    return !acks_.empty() || (!detached_ && subscription_requests_ > 0);
  }
  void on_half_closed() override;
  // Every ERR and GOAWAY this session sends goes through these: the text is cut to what a
  // frame holds (proto's encoders are exact and cut nothing; the cut is the server's).
  void append_goaway(std::string& out, proto::ErrorCode code, std::string_view text) override {
    proto::encode_goaway(out, code, proto::cut_message(text));
  }
  static void append_err(std::string& out, std::uint32_t request_id, proto::ErrorCode code,
                         std::string_view text) {
    proto::encode_err(out, request_id, code, proto::cut_message(text));
  }
  void reply_err(std::uint32_t request_id, proto::ErrorCode code, std::string_view text) {
    append_reply([&](std::string& out) { append_err(out, request_id, code, text); });
  }

  // Returns false when the connection must close.
  bool handle(proto::Frame& frame);
  bool handshake(proto::Hello const& hello);
  void publish(proto::Pub const& pub);
  void protocol_error(proto::ErrorCode code, std::string_view text);
  void answer_acks();
  void resume_subscribe(proto::Rsub const& rsub);
  void resume_subscribed(std::string const& channel, std::optional<proto::ErrorCode> error,
                         std::string_view text);
  void resume_query(std::string const& channel, bool info);
  void resume_page(std::string const& channel, Resuming& r, redisReply const& reply);
  // The next replay page, asked for once the app has read most of the last ones.
  void resume_next_page(std::string const& channel);
  void on_queue_below_mark() override;
  // An RSUB that cannot complete: answered ERR; when `unsubscribe`, the subscription its
  // first step made is ended too (left in place, it would deliver past a gap in the replay).
  void resume_failed(std::string const& channel, proto::ErrorCode code, std::string_view text,
                     bool unsubscribe = true);
  void resume_done(Resuming& r);
  // A SUB-family answer was given: a half-closed app leaves after the last one.
  void subscription_answered();
  // Ends the subscription of a failed resume's channel, unless the app subscribed it again.
  void end_cut(std::string const& channel);
  void keep_subscribed(std::span<std::string_view const> channels);
  void forget_resumes(std::span<std::string_view const> channels);

  proto::Decoder decoder_;
  util::Fifo<PendingAck> acks_;
  std::size_t subscription_requests_ = 0;  // SUB-family requests not answered yet
  // For each SUB-family request the core still owes an answer, in order.
  struct CoreRequest {
    enum class Kind {
      app,     // the app's SUB, PSUB, UNSUB or PUNSUB: answered to the app
      resume,  // an RSUB's subscription: its answer goes on to the resume of `channel`
      silent,  // the UNSUB that ends a failed RSUB's subscription: nobody is answered
    };
    Kind kind = Kind::app;
    std::string channel;
  };
  util::Fifo<CoreRequest> core_requests_;
  std::unordered_map<std::string, Resuming> resumes_;
  // Replays waiting for the outbound queue to go down before their next page.
  std::vector<std::string> replays_waiting_;
  // Channels of failed resumes whose subscription ends on the next turn of the event loop
  // (not inside the core's batch of replies, where its answer would jump the queue);
  // their messages are not delivered meanwhile. A SUB or RSUB of one takes it back.
  std::vector<std::string> cut_;
  // Queries in flight: token -> (channel, is the metadata query).
  std::unordered_map<std::uint64_t, std::pair<std::string, bool>> queries_;
  std::uint64_t next_token_ = 1;
  std::uint16_t version_ = proto::protocol_version;
  boost::asio::steady_timer hello_timer_;
  bool hello_done_ = false;
  bool eof_ = false;  // the app half-closed
};

}  // namespace podrelay::server
