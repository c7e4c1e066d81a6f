#include "server/session.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <sstream>
#include <vector>

#include "server/relay.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::server {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
constexpr std::size_t read_chunk = 4096;
constexpr std::size_t max_gather = 64;
constexpr std::size_t owned_chunk_limit = 16 * 1024;
constexpr std::chrono::milliseconds linger{1000};

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
    : socket_(std::move(socket)),
      relay_(relay),
      id_(id),
      peer_(std::move(peer)),
      decoder_(relay.config().max_frame_bytes),
      wake_(socket_.get_executor()),
      close_deadline_(socket_.get_executor()),
      limit_timer_(socket_.get_executor()) {}

Session::~Session() = default;

void Session::start() {
  auto self = shared_from_this();
  slot_ = relay_.attach(self);
  asio::co_spawn(socket_.get_executor(), reader(), [self](std::exception_ptr e) {
    if (e) {
      log::error("session reader failed", {{"conn", std::to_string(self->id_)}});
      self->close();
    }
  });
  asio::co_spawn(socket_.get_executor(), writer(), [self](std::exception_ptr e) {
    if (e) {
      log::error("session writer failed", {{"conn", std::to_string(self->id_)}});
      self->close();
    }
  });
  // A connection that never says HELLO must not hold a slot forever.
  auto const timeout = relay_.config().hello_timeout;
  limit_timer_.expires_after(timeout);
  limit_timer_.async_wait([self, timeout](boost::system::error_code ec) {
    if (ec || self->hello_done_ || self->closing_) return;
    auto const ms = std::chrono::duration<double>(timeout).count();
    std::ostringstream text;
    text << "no HELLO within " << ms << " s";
    self->protocol_error(proto::ErrorCode::handshake_required, text.str());
  });
}

asio::awaitable<void> Session::reader() {
  bool stop = false;
  while (!closing_ && !stop) {
    if (decoder_.buffered() == 0) {
      // An idle connection holds no read buffer: wait for readability first.
      decoder_.shrink_if_idle(0);
      auto [wec] = co_await socket_.async_wait(Socket::wait_read, use_tuple);
      if (wec || closing_) break;
    }
    auto const space = decoder_.prepare(read_chunk);
    auto [ec, n] =
        co_await socket_.async_read_some(asio::buffer(space.data(), space.size()), use_tuple);
    if (ec) break;
    decoder_.commit(n);
    for (;;) {
      auto r = decoder_.next();
      if (r.status == proto::Decoder::Status::need_more) break;
      if (r.status == proto::Decoder::Status::error) {
        std::string text;
        switch (r.error) {
          case proto::ErrorCode::frame_too_large:
            text = "frame longer than max_frame_bytes (" +
                   std::to_string(relay_.config().max_frame_bytes) + ")";
            break;
          case proto::ErrorCode::unknown_type: text = "unknown frame type"; break;
          default: text = "malformed frame"; break;
        }
        protocol_error(r.error, text);
        stop = true;
        break;
      }
      ++relay_.metrics().hot.frames[static_cast<std::uint8_t>(proto::type_of(r.frame))];
      if (!handle(r.frame) || closing_) {
        stop = true;
        break;
      }
    }
  }
  if (!closing_) {
    reader_done_ = true;
    half_closed();  // the app sent EOF (or the connection broke)
    co_return;
  }
  // Closing: whatever the client still sends is read and dropped, never answered. Closing
  // with unread bytes would make the kernel reset the connection and destroy replies the
  // client has not read yet, so the connection closes at the client's EOF (or the deadline).
  decoder_.shrink_if_idle(0);
  std::array<char, 4096> sink{};
  while (!closed_) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(sink), use_tuple);
    if (ec) break;
  }
  reader_done_ = true;
  if (writer_done_) close();
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
  if (auto* list = std::get_if<proto::NameList>(&frame)) {
    ++subscription_requests_;  // the reply may come back before the call returns
    switch (list->type) {
      case proto::FrameType::sub:
        relay_.subscribe(*this, core::SubKind::channel, list->request_id, list->names);
        break;
      case proto::FrameType::psub:
        relay_.subscribe(*this, core::SubKind::pattern, list->request_id, list->names);
        break;
      case proto::FrameType::unsub:
        relay_.unsubscribe(*this, core::SubKind::channel, list->request_id, list->names);
        break;
      default:
        relay_.unsubscribe(*this, core::SubKind::pattern, list->request_id, list->names);
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
  if (hello.version != proto::protocol_version) {
    protocol_error(ErrorCode::unsupported_version,
                   "this sidecar speaks protocol version 1, the client asked for " +
                       std::to_string(hello.version));
    return false;
  }
  auto const& token = relay_.config().auth_token;
  if (!token.empty() && !token_matches(hello.auth_token, token)) {
    protocol_error(ErrorCode::auth_failed, "invalid auth token");
    return false;
  }
  hello_done_ = true;
  limit_timer_.cancel();
  client_name_ = std::string(hello.client_name.substr(0, 128));
  log::debug("app connected",
             {{"conn", std::to_string(id_)}, {"client", client_name_}, {"listener", peer_}});
  auto const& cfg = relay_.config();
  append_reply([&](std::string& out) {
    proto::encode_welcome(out, PODRELAY_VERSION, cfg.node_id,
                          static_cast<std::uint32_t>(cfg.max_frame_bytes),
                          static_cast<std::uint32_t>(cfg.max_queue_bytes));
  });
  return true;
}

void Session::publish(proto::Pub const& pub) {
  auto nack = relay_.publish(*this, pub.request_id, pub.channel, pub.payload);
  if (pub.request_id == 0) return;
  if (!nack) {
    acks_.push_back(PendingAck{pub.request_id, false, {}, {}});
    return;
  }
  if (nack->code == proto::ErrorCode::publish_buffer_full) {
    // The one exception to request order: backpressure must reach the app at once, not
    // after the publishes ahead of it time out.
    append_reply(
        [&](std::string& out) { proto::encode_err(out, pub.request_id, nack->code, nack->text); });
    return;
  }
  acks_.push_back(PendingAck{pub.request_id, true, nack->code, std::move(nack->text)});
  answer_acks();
}

void Session::on_publish_outcome(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                                 std::string_view text) {
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
      append_reply(
          [&](std::string& out) { proto::encode_err(out, a.request_id, *a.error, a.text); });
    } else {
      append_reply([&](std::string& out) { proto::encode_ok(out, a.request_id); });
    }
    acks_.pop_front();
  }
  if (closing_) wake_writer();
}

void Session::on_subscription_reply(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                                    std::string_view text) {
  if (subscription_requests_ > 0) --subscription_requests_;
  if (error) {
    append_reply([&](std::string& out) { proto::encode_err(out, request_id, *error, text); });
  } else {
    append_reply([&](std::string& out) { proto::encode_ok(out, request_id); });
  }
  if (eof_ && subscription_requests_ == 0) {
    // Half-closed and the last SUB-family answer given: leave (after the relay's current
    // batch of replies).
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->relay_.detach(*self); });
  }
  if (closing_) wake_writer();
}

void Session::protocol_error(proto::ErrorCode code, std::string_view text) {
  relay_.metrics().protocol_error(code).Increment();
  log::warn_limited(
      protocol_error_log(), "closing app connection after a protocol error",
      {{"conn", std::to_string(id_)}, {"code", proto::error_name(code)}, {"detail", text}});
  if (closing_) return;
  append_reply([&](std::string& out) { proto::encode_err(out, 0, code, text); });
  closing_ = true;
  relay_.detach(*this);
  subscription_requests_ = 0;  // detached: those answers will not come
  close_after(std::chrono::seconds(2));
  wake_writer();
}

void Session::half_closed() {
  // A half-closed client still reads: it gets the answer to every request read before the
  // EOF (for at most 5 s: a client that is gone entirely must not hold its slot long), and
  // no more messages; then the connection closes.
  closing_ = true;
  wait_for_replies_ = true;
  eof_ = true;
  // Its subscriptions go now, unless a SUB-family answer is still owed: then right after it.
  if (subscription_requests_ == 0) relay_.detach(*this);
  close_after(std::chrono::seconds(5));
  wake_writer();
}

bool Session::deliver(core::Delivery& message) {
  if (closing_ || over_limit_posted_) return false;
  auto const& frame = message.framed();
  if (!frame) return false;
  queue_.push_back(Chunk{frame, {}});
  queued(frame->size());
  return true;
}

std::string& Session::owned_tail() {
  if (queue_.size() > writing_ && !queue_.back().shared &&
      queue_.back().owned.size() < owned_chunk_limit) {
    return queue_.back().owned;
  }
  queue_.push_back(Chunk{});
  return queue_.back().owned;
}

void Session::queued(std::size_t n) {
  queued_bytes_ += n;
  wake_writer();
  if (over_limit_posted_ || closing_) return;
  auto const& cfg = relay_.config();
  if (queued_bytes_ > cfg.max_queue_bytes) {
    slow_consumer("outbound queue exceeded max_queue_bytes (" +
                  std::to_string(cfg.max_queue_bytes) + "); read faster or subscribe to less");
    return;
  }
  if (queued_bytes_ > cfg.soft_queue_bytes && over_soft_since_ == Clock::time_point{}) {
    // Over the soft limit: tolerated for a window, as Redis' client-output-buffer-limit
    // does; a timer enforces it even if nothing more is queued.
    over_soft_since_ = Clock::now();
    check_soft_limit();
  }
}

void Session::check_soft_limit() {
  if (over_limit_posted_ || closing_ || over_soft_since_ == Clock::time_point{}) return;
  auto const& cfg = relay_.config();
  auto const over_for = Clock::now() - over_soft_since_;
  if (over_for >= cfg.soft_queue_window) {
    slow_consumer("outbound queue stayed above soft_queue_bytes (" +
                  std::to_string(cfg.soft_queue_bytes) + ") for longer than " +
                  std::to_string(cfg.soft_queue_window.count()) + " ms; read faster");
    return;
  }
  limit_timer_.expires_after(cfg.soft_queue_window - over_for);
  limit_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->check_soft_limit();
  });
}

void Session::slow_consumer(std::string reason) {
  // Usually called from inside a fan-out: the hub is iterating, so the disconnect waits for
  // the next turn of the event loop. Until then nothing more is queued here.
  over_limit_posted_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this(), reason = std::move(reason)] {
    self->relay_.metrics().slow_consumer_disconnects.Increment();
    static log::RateLimit limit;
    log::warn_limited(limit, "disconnecting slow consumer",
                      {{"conn", std::to_string(self->id_)},
                       {"client", self->client_name_},
                       {"queued_bytes", std::to_string(self->queued_bytes_)},
                       {"reason", reason}});
    self->goaway(proto::ErrorCode::slow_consumer, reason);
  });
}

void Session::wake_writer() {
  // Cancelling a timer costs a trip through the timer queue; a fan-out to thousands of
  // sessions must only pay it for writers that are actually asleep.
  if (writer_waiting_) {
    writer_waiting_ = false;
    wake_.cancel();
  }
}

void Session::close_after(std::chrono::steady_clock::duration grace) {
  close_deadline_.expires_after(grace);
  close_deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->close();
  });
}

void Session::goaway(proto::ErrorCode code, std::string_view text, bool wait_for_acks) {
  if (closing_) return;
  closing_ = true;
  wait_for_replies_ = wait_for_acks;
  relay_.detach(*this);
  subscription_requests_ = 0;  // detached: those answers will not come
  if (!wait_for_acks) {
    // Whatever is not on the wire yet will not be read in time anyway.
    while (queue_.size() > writing_) {
      queued_bytes_ -= queue_.back().size();
      queue_.pop_back();
    }
  }
  auto& out = owned_tail();
  auto const before = out.size();
  proto::encode_goaway(out, code, text);
  queued_bytes_ += out.size() - before;
  close_after(wait_for_acks ? relay_.config().drain_timeout + std::chrono::seconds(1)
                            : std::chrono::milliseconds(2000));
  wake_writer();
}

asio::awaitable<void> Session::writer() {
  std::vector<asio::const_buffer> bufs;
  bufs.reserve(max_gather);
  while (!closed_) {
    if (queue_.empty()) {
      if (closing_ && (!wait_for_replies_ || !owes_replies())) break;
      wake_.expires_at(Clock::time_point::max());
      writer_waiting_ = true;
      co_await wake_.async_wait(use_tuple);
      writer_waiting_ = false;
      continue;
    }
    bufs.clear();
    std::size_t bytes = 0;
    writing_ = std::min(queue_.size(), max_gather);
    for (std::size_t i = 0; i < writing_; ++i) {
      bufs.emplace_back(queue_[i].data(), queue_[i].size());
      bytes += queue_[i].size();
    }
    auto [ec, n] = co_await asio::async_write(socket_, bufs, use_tuple);
    (void)n;
    for (std::size_t i = 0; i < writing_; ++i) queue_.pop_front();
    writing_ = 0;
    queued_bytes_ -= bytes;
    if (queued_bytes_ <= relay_.config().soft_queue_bytes) over_soft_since_ = {};
    if (ec) {
      close();
      co_return;
    }
  }
  if (closed_) co_return;
  writer_done_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_send, ignored);
  if (reader_done_) {
    close();
    co_return;
  }
  // The reader closes at the client's EOF; a client that keeps the connection open gets a
  // short linger to read our FIN first.
  close_after(linger);
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  closing_ = true;
  relay_.detach(*this);
  slot_.reset();
  boost::system::error_code ignored;
  socket_.close(ignored);
  wake_.cancel();
  close_deadline_.cancel();
  limit_timer_.cancel();
}

}  // namespace podrelay::server
