#include "redis_client.hpp"

namespace bench {
namespace {

namespace redis = podrelay::redis;

void append_bulk(std::string& out, std::string_view arg) {
  out += '$';
  out += std::to_string(arg.size());
  out += "\r\n";
  out.append(arg);
  out += "\r\n";
}

}  // namespace

RedisClient::RedisClient(EventLoop& loop, std::uint16_t port, bool sharded)
    : PubSubClient(loop, port), sharded_(sharded) {
  ready_ = true;
}

void RedisClient::subscribe(std::string_view channel) {
  command_.clear();
  redis::append_command(command_, {sharded_ ? "SSUBSCRIBE" : "SUBSCRIBE", channel});
  send(command_);
}

void RedisClient::publish(std::string_view channel, std::string_view payload, bool /*acked*/,
                          bool defer) {
  // Encoded by hand: redis::append_command formats through hiredis' sprintf-based
  // redisFormatCommandArgv, which profiled as the bench's own bottleneck in the direct
  // throughput runs. The bytes are the same.
  command_.clear();
  command_ += sharded_ ? "*3\r\n$8\r\nSPUBLISH\r\n" : "*3\r\n$7\r\nPUBLISH\r\n";
  append_bulk(command_, channel);
  append_bulk(command_, payload);
  send(command_, defer);
}

void RedisClient::ping() {
  command_.clear();
  redis::append_command(command_, {"PING"});
  send(command_);
}

void RedisClient::on_bytes(char const* data, std::size_t n) {
  reader_.feed(data, n);
  for (;;) {
    redis::ReplyPtr reply;
    auto const st = reader_.next(reply);
    if (st == redis::ReplyReader::Status::need_more) return;
    if (st == redis::ReplyReader::Status::error) {
      fail("RESP protocol error: " + std::string(reader_.error_text()));
      return;
    }
    switch (reply->type) {
      case REDIS_REPLY_INTEGER:  // PUBLISH
      case REDIS_REPLY_STATUS:   // PONG
        ++acks_;
        continue;
      case REDIS_REPLY_ERROR:
        ++nacks_;
        server_error_ = std::string(redis::reply_string(*reply));
        continue;
      default: break;
    }
    // classify_pubsub knows "smessage" but not the "ssubscribe" confirmation: count it here.
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        redis::reply_string(*reply->element[0]) == "ssubscribe") {
      ++confirmed_;
      subscribed_ = true;
      continue;
    }
    auto const ev = redis::classify_pubsub(*reply);
    using Kind = redis::PubSubEvent::Kind;
    if (ev.kind == Kind::message) {
      ++messages_;
      if (sink_ != nullptr) sink_->on_message(ev.payload);
    } else if (ev.kind == Kind::subscribed) {
      ++confirmed_;
      subscribed_ = true;
    }
  }
}

}  // namespace bench
