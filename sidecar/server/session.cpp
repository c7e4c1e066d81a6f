#include "server/session.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <sstream>
#include <vector>

#include "server/relay.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::server {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Compares digests so neither the token's content nor its length leaks through timing.
bool token_matches(std::string_view given, std::string const& expected) {
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<unsigned char const*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<unsigned char const*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

log::RateLimit& protocol_error_log() {
  static log::RateLimit limit;
  return limit;
}

}  // namespace

Session::Session(Socket socket, Relay& relay, std::uint64_t id, std::string peer)
    : Connection(std::move(socket), relay, id, std::move(peer)),
      decoder_(relay.config().max_frame_bytes),
      hello_timer_(executor()) {}

void Session::on_started() {
  // A connection that never says HELLO must not hold a slot forever.
  auto const timeout = relay_.config().hello_timeout;
  hello_timer_.expires_after(timeout);
  // A weak reference: a closed connection must not live on until its HELLO deadline.
  hello_timer_.async_wait([weak = std::weak_ptr<Connection>(shared_from_this()),
                           timeout](boost::system::error_code ec) {
    auto self = std::static_pointer_cast<Session>(weak.lock());
    if (ec || !self || self->hello_done_ || self->closing_) return;
    std::ostringstream text;
    text << "no HELLO within " << std::chrono::duration<double>(timeout).count() << " s";
    self->protocol_error(proto::ErrorCode::handshake_required, text.str());
  });
}

void Session::read_done() { decoder_ = proto::Decoder(relay_.config().max_frame_bytes); }

bool Session::on_read(std::size_t n) {
  decoder_.commit(n);
  for (;;) {
    auto r = decoder_.next();
    if (r.status == proto::Decoder::Status::need_more) return true;
    if (r.status == proto::Decoder::Status::error) {
      std::string text;
      switch (r.error) {
        case proto::ErrorCode::frame_too_large:
          text = "frame longer than max_frame_bytes (" +
                 std::to_string(relay_.config().max_frame_bytes) + ")";
          break;
        case proto::ErrorCode::unknown_type:
          text = version_ < 2   ? "unknown frame type (RSUB and the other version 2 frames need "
                                  "HELLO version 2, PUBX needs version 3)"
                 : version_ < 3 ? "unknown frame type (PUBX needs HELLO version 3)"
                                : "unknown frame type";
          break;
        default: text = "malformed frame"; break;
      }
      protocol_error(r.error, text);
      return false;
    }
    ++relay_.metrics().hot.frames[static_cast<std::uint8_t>(proto::type_of(r.frame))];
    if (!handle(r.frame) || closing_) return false;
  }
}

bool Session::handle(proto::Frame& frame) {
  using proto::ErrorCode;
  if (!hello_done_) {
    if (auto* hello = std::get_if<proto::Hello>(&frame)) return handshake(*hello);
    protocol_error(ErrorCode::handshake_required, "the first frame must be HELLO");
    return false;
  }
  if (auto* pub = std::get_if<proto::Pub>(&frame)) {
    publish(*pub);
    return true;
  }
  if (auto* rsub = std::get_if<proto::Rsub>(&frame)) {
    resume_subscribe(*rsub);
    return true;
  }
  if (auto* list = std::get_if<proto::NameList>(&frame)) {
    ++subscription_requests_;  // the reply may come back before the call returns
    core_requests_.push_back({CoreRequest::Kind::app, {}});
    if (list->type == proto::FrameType::unsub) forget_resumes(list->names);
    if (list->type == proto::FrameType::sub && !cut_.empty()) keep_subscribed(list->names);
    auto const& names = relay_.framed_names();
    switch (list->type) {
      case proto::FrameType::sub:
        relay_.subscribe(*this, names, core::SubKind::channel, list->request_id, list->names);
        break;
      case proto::FrameType::psub:
        relay_.subscribe(*this, names, core::SubKind::pattern, list->request_id, list->names);
        break;
      case proto::FrameType::unsub:
        relay_.unsubscribe(*this, names, core::SubKind::channel, list->request_id, list->names);
        break;
      default:
        relay_.unsubscribe(*this, names, core::SubKind::pattern, list->request_id, list->names);
        break;
    }
    return true;
  }
  if (auto* ping = std::get_if<proto::Ping>(&frame)) {
    append_reply([&](std::string& out) { proto::encode_pong(out, ping->request_id); });
    return true;
  }
  if (std::holds_alternative<proto::Hello>(frame)) {
    protocol_error(ErrorCode::unexpected_frame, "HELLO was already received");
  } else {
    protocol_error(ErrorCode::unexpected_frame, "frame type is sidecar-to-client only");
  }
  return false;
}

bool Session::handshake(proto::Hello const& hello) {
  using proto::ErrorCode;
  if (hello.version < proto::protocol_version || hello.version > proto::max_protocol_version) {
    protocol_error(ErrorCode::unsupported_version,
                   "this sidecar speaks protocol versions 1 to 3, the client asked for " +
                       std::to_string(hello.version));
    return false;
  }
  version_ = hello.version;
  decoder_.set_version(version_);
  auto const& token = relay_.config().auth_token;
  if (!token.empty() && !token_matches(hello.auth_token, token)) {
    protocol_error(ErrorCode::auth_failed, "invalid auth token");
    return false;
  }
  hello_done_ = true;
  hello_timer_.cancel();
  client_name_ = std::string(hello.client_name.substr(0, 128));
  log::debug("app connected", {{"conn", id()}, {"client", client_name_}, {"listener", peer_}});
  auto const& cfg = relay_.config();
  append_reply([&](std::string& out) {
    proto::encode_welcome(out, PODRELAY_VERSION, cfg.node_id,
                          static_cast<std::uint32_t>(cfg.max_frame_bytes),
                          static_cast<std::uint32_t>(cfg.max_queue_bytes), version_);
  });
  return true;
}

void Session::publish(proto::Pub const& pub) {
  auto nack = relay_.publish(*this, pub.request_id, relay_.framed_names(), pub.channel, pub.payload,
                             pub.except_sender);
  if (pub.request_id == 0) return;
  if (!nack) {
    acks_.push_back(PendingAck{pub.request_id, false, {}, {}});
    return;
  }
  if (nack->code == proto::ErrorCode::publish_buffer_full) {
    // The one exception to request order: backpressure must reach the app at once, not
    // after the publishes ahead of it time out.
    reply_err(pub.request_id, nack->code, nack->text);
    return;
  }
  acks_.push_back(PendingAck{pub.request_id, true, nack->code, std::move(nack->text)});
  answer_acks();
}

void Session::on_publish_outcome(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                                 std::string_view text, redisReply const*) {
  // Shards answer in their own order; the app gets the answers in request order.
  for (auto& a : acks_) {
    if (a.request_id == request_id && !a.ready) {
      a.ready = true;
      a.error = error;
      a.text = std::string(text);
      break;
    }
  }
  answer_acks();
}

void Session::answer_acks() {
  while (!acks_.empty() && acks_.front().ready) {
    auto const& a = acks_.front();
    if (a.error) {
      reply_err(a.request_id, *a.error, a.text);
    } else if (version_ >= 2 && !a.text.empty()) {
      // A durable publish: the answer carries the id Redis assigned.
      append_reply([&](std::string& out) { proto::encode_pubok(out, a.request_id, a.text); });
    } else {
      append_reply([&](std::string& out) { proto::encode_ok(out, a.request_id); });
    }
    acks_.pop_front();
  }
  if (closing_) wake_writer();
}

void Session::on_subscription_reply(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                                    std::string_view text) {
  if (!core_requests_.empty()) {
    auto request = std::move(core_requests_.front());
    core_requests_.pop_front();
    if (request.kind == CoreRequest::Kind::silent) return;
    if (request.kind == CoreRequest::Kind::resume) {
      // An RSUB's subscription: its answer comes once the resume is done.
      resume_subscribed(request.channel, error, text);
      return;
    }
  }
  if (error) {
    reply_err(request_id, *error, text);
  } else {
    append_reply([&](std::string& out) { proto::encode_ok(out, request_id); });
  }
  subscription_answered();
}

void Session::subscription_answered() {
  if (subscription_requests_ > 0) --subscription_requests_;
  if (eof_ && subscription_requests_ == 0) {
    // Half-closed and the last SUB-family answer given: leave (after the relay's current
    // batch of replies).
    asio::post(executor(),
               [self = std::static_pointer_cast<Session>(shared_from_this())] { self->detach(); });
  }
  if (closing_) wake_writer();
}

void Session::protocol_error(proto::ErrorCode code, std::string_view text) {
  relay_.metrics().protocol_error(code).Increment();
  log::warn_limited(protocol_error_log(), "closing app connection after a protocol error",
                    {{"conn", id()}, {"code", proto::error_name(code)}, {"detail", text}});
  std::string frame;
  append_err(frame, 0, code, text);
  fail(std::move(frame));
}

void Session::on_half_closed() {
  // Its subscriptions go now, unless a SUB-family answer is still owed: then right after it.
  eof_ = true;
  if (subscription_requests_ == 0) detach();
}

bool Session::deliver(core::Delivery& message) {
  if (!accepting_messages()) return false;
  if (message.stream_id().empty()) {
    if (message.sole_receiver()) {  // encoded straight into this connection's queue
      if (!message.can_frame()) return false;
      append_reply([&](std::string& out) { message.append_framed(out); });
      return true;
    }
    auto const& frame = message.framed();
    if (!frame) return false;
    append_shared(frame);
    return true;
  }
  if (!cut_.empty() || !resumes_.empty()) {
    if (auto const app = relay_.framed_names().app_channel(message.redis_channel())) {
      // A failed resume's channel, unsubscribed on the next turn: nothing more of it.
      if (std::find(cut_.begin(), cut_.end(), *app) != cut_.end()) return false;
      auto const it = resumes_.find(std::string(*app));
      // Before the switch to live the replay covers it; after, ids it delivered are skipped.
      if (it != resumes_.end() && !it->second.resume.on_live(message.parsed_stream_id())) {
        return false;
      }
    }
  }
  auto const& frame = version_ >= 2 ? message.framed_durable() : message.framed();
  if (!frame) return false;
  append_shared(frame);
  return true;
}

// --- resumed durable subscriptions (RSUB, protocol version 2) ----------------------------

}  // namespace podrelay::server
