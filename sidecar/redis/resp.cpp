#include "redis/resp.hpp"

#include <charconv>
#include <cstdlib>
#include <new>
#include <vector>

namespace podrelay::redis {

namespace {

// The reader's own object functions are wrapped to enforce max_array_elements.
redisReplyObjectFunctions const* default_functions() {
  static redisReplyObjectFunctions const fns = [] {
    redisReader* r = redisReaderCreate();
    if (r == nullptr) throw std::bad_alloc();
    auto copy = *r->fn;
    redisReaderFree(r);
    return copy;
  }();
  return &fns;
}

void* create_bounded_array(redisReadTask const* task, int elements) {
  if (elements > max_array_elements) return nullptr;  // the reader reports an error
  return default_functions()->createArray(task, elements);
}

redisReplyObjectFunctions* bounded_functions() {
  static redisReplyObjectFunctions fns = [] {
    auto copy = *default_functions();
    copy.createArray = create_bounded_array;
    return copy;
  }();
  return &fns;
}

}  // namespace

ReplyReader::ReplyReader() : reader_(redisReaderCreateWithFunctions(bounded_functions())) {
  if (!reader_) throw std::bad_alloc();
}

void ReplyReader::feed(char const* data, std::size_t n) {
  if (redisReaderFeed(reader_.get(), data, n) != REDIS_OK) throw std::bad_alloc();
}

ReplyReader::Status ReplyReader::next(ReplyPtr& reply) {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) return Status::error;
  if (raw == nullptr) return Status::need_more;
  reply.reset(static_cast<redisReply*>(raw));
  return Status::reply;
}

std::string_view ReplyReader::error_text() const noexcept { return reader_->errstr; }

std::string_view ReplyReader::unread() const noexcept {
  auto const* r = reader_.get();
  if (r->buf == nullptr || r->len <= r->pos) return {};
  return {r->buf + r->pos, r->len - r->pos};
}

void append_command(std::string& out, std::span<std::string_view const> args) {
  // hiredis wants parallel arrays of pointers and lengths.
  std::vector<char const*> argv;
  std::vector<std::size_t> argvlen;
  argv.reserve(args.size());
  argvlen.reserve(args.size());
  for (auto const a : args) {
    argv.push_back(a.data());
    argvlen.push_back(a.size());
  }
  char* cmd = nullptr;
  int const len =
      redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), argvlen.data());
  if (len < 0 || cmd == nullptr) throw std::bad_alloc();
  std::unique_ptr<char, void (*)(char*)> owned(cmd, redisFreeCommand);
  out.append(cmd, static_cast<std::size_t>(len));
}

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  append_command(out, std::span<std::string_view const>(args.begin(), args.size()));
}

namespace {

std::size_t decimal_digits(std::size_t n) noexcept {
  std::size_t d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

void append_bulk_header(std::string& out, std::size_t n) {
  char buf[24];
  buf[0] = '$';
  auto const [end, ec] = std::to_chars(buf + 1, buf + sizeof buf - 2, n);
  (void)ec;
  end[0] = '\r';
  end[1] = '\n';
  out.append(buf, static_cast<std::size_t>(end + 2 - buf));
}

}  // namespace

std::size_t publish_size(std::string_view verb, std::size_t channel_bytes,
                         std::size_t payload_bytes) noexcept {
  auto const bulk = [](std::size_t n) { return 1 + decimal_digits(n) + 2 + n + 2; };
  return 4 + bulk(verb.size()) + bulk(channel_bytes) + bulk(payload_bytes);
}

void append_publish(std::string& out, std::string_view verb, std::string_view prefix,
                    std::string_view channel, std::string_view payload) {
  out.reserve(out.size() + publish_size(verb, prefix.size() + channel.size(), payload.size()));
  out.append("*3\r\n", 4);
  append_bulk_header(out, verb.size());
  out.append(verb).append("\r\n", 2);
  append_bulk_header(out, prefix.size() + channel.size());
  out.append(prefix).append(channel).append("\r\n", 2);
  append_bulk_header(out, payload.size());
  out.append(payload).append("\r\n", 2);
}

PubSubEvent classify_pubsub(redisReply const& reply) noexcept {
  using Kind = PubSubEvent::Kind;
  PubSubEvent ev;
  if (reply.type == REDIS_REPLY_ERROR) {
    ev.kind = Kind::error;
    ev.payload = reply_string(reply);
    return ev;
  }
  if (reply.type == REDIS_REPLY_STATUS && reply_string(reply) == "PONG") {
    ev.kind = Kind::pong;
    return ev;
  }
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 2) return ev;
  for (std::size_t i = 0; i < reply.elements; ++i) {
    if (reply.element[i] == nullptr) return ev;
  }
  auto const& head = *reply.element[0];
  if (head.type != REDIS_REPLY_STRING) return ev;
  auto const type = reply_string(head);
  auto const str_at = [&](std::size_t i, std::string_view& out) {
    if (i >= reply.elements || reply.element[i]->type != REDIS_REPLY_STRING) return false;
    out = reply_string(*reply.element[i]);
    return true;
  };
  // Sharded pub/sub (Redis Cluster) uses the "s" variants with the same shapes.
  if ((type == "message" || type == "smessage") && reply.elements == 3) {
    if (str_at(1, ev.name) && str_at(2, ev.payload)) {
      ev.channel = ev.name;
      ev.kind = Kind::message;
    }
  } else if (type == "pmessage" && reply.elements == 4) {
    if (str_at(1, ev.name) && str_at(2, ev.channel) && str_at(3, ev.payload)) {
      ev.kind = Kind::pmessage;
    }
  } else if (type == "pong") {
    ev.kind = Kind::pong;
  } else if (reply.elements == 3) {
    if (!str_at(1, ev.name)) return ev;
    // Sharded pub/sub (Redis Cluster) confirms with "ssubscribe" / "sunsubscribe".
    if (type == "subscribe" || type == "ssubscribe")
      ev.kind = Kind::subscribed;
    else if (type == "unsubscribe" || type == "sunsubscribe")
      ev.kind = Kind::unsubscribed;
    else if (type == "psubscribe")
      ev.kind = Kind::psubscribed;
    else if (type == "punsubscribe")
      ev.kind = Kind::punsubscribed;
  }
  return ev;
}

std::string describe(PubSubEvent const& ev) {
  std::string out = std::to_string(static_cast<int>(ev.kind));
  for (auto const part : {ev.name, ev.channel, ev.payload}) out.append(1, '|').append(part);
  return out;
}

}  // namespace podrelay::redis
