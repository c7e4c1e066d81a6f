#include "redis/resp.hpp"

#include <cassert>
#include <charconv>
#include <cstdlib>
#include <cstring>
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
  fed_since_reply_ += n;
}

void ReplyReader::returned_reply() noexcept {
  // What is left unparsed belongs to the replies after this one.
  auto const* r = reader_.get();
  fed_since_reply_ = r->buf == nullptr || r->len <= r->pos ? 0 : r->len - r->pos;
}

ReplyReader::Status ReplyReader::next(ReplyPtr& reply) {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) return Status::error;
  if (raw == nullptr) return Status::need_more;
  reply.reset(static_cast<redisReply*>(raw));
  returned_reply();
  return Status::reply;
}

std::size_t parse_integer_reply(std::string_view bytes, long long& value) noexcept {
  constexpr std::size_t max_digits = 18;  // never overflows a long long
  if (bytes.size() < 4 || bytes[0] != ':') return 0;
  std::size_t i = 1;
  bool const negative = bytes[i] == '-';
  if (negative) ++i;
  std::size_t const first = i;
  long long v = 0;
  auto const digit = [&](std::size_t at) {
    return at < bytes.size() && bytes[at] >= '0' && bytes[at] <= '9';
  };
  for (; i - first < max_digits && digit(i); ++i) v = v * 10 + (bytes[i] - '0');
  std::size_t const digits = i - first;
  if (digits == 0 || digit(i)) return 0;  // none, or more than max_digits
  // hiredis (string2ll) rejects a leading zero and "-0": left to it, so it says so.
  if (bytes[first] == '0' && (digits > 1 || negative)) return 0;
  if (bytes.size() < i + 2 || bytes[i] != '\r' || bytes[i + 1] != '\n') return 0;
  value = negative ? -v : v;
  return i + 2;
}

ReplyReader::Status ReplyReader::next_view(redisReply const*& reply) {
  auto* const r = reader_.get();
  // Only where hiredis holds no part of a reply: its stack is empty, or set up for a reply
  // of which it has not read even the type byte (how a call that found no bytes leaves it).
  bool const between_replies = r->ridx == -1 || (r->ridx == 0 && r->rstack[0].type < 0);
  if (r->err == 0 && between_replies && r->buf != nullptr && r->pos < r->len) {
    if (auto const n = parse_integer_reply({r->buf + r->pos, r->len - r->pos}, integer_.integer)) {
      r->pos += n;
      fed_since_reply_ = r->len - r->pos;
      integer_.type = REDIS_REPLY_INTEGER;
      reply = &integer_;
      return Status::reply;
    }
  }
  // Also where hiredis trims what was consumed from its buffer: every read's replies end
  // with a call that finds no more.
  auto const st = next(lent_);
  reply = st == Status::reply ? lent_.get() : nullptr;
  return st;
}

std::string_view ReplyReader::error_text() const noexcept { return reader_->errstr; }

std::string_view ReplyReader::unread() const noexcept {
  auto const* r = reader_.get();
  if (r->buf == nullptr || r->len <= r->pos) return {};
  return {r->buf + r->pos, r->len - r->pos};
}

std::size_t ReplyReader::buffered() const noexcept { return reader_->len; }

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

char* put(char* p, std::string_view bytes) noexcept {
  if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}

char* put_bulk_header(char* p, std::size_t n) noexcept {
  *p++ = '$';
  p = std::to_chars(p, p + 20, n).ptr;  // 20 digits hold any size_t
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

}  // namespace

std::size_t publish_size(std::string_view verb, std::size_t channel_bytes,
                         std::size_t payload_bytes) noexcept {
  auto const bulk = [](std::size_t n) { return 1 + decimal_digits(n) + 2 + n + 2; };
  return 4 + bulk(verb.size()) + bulk(channel_bytes) + bulk(payload_bytes);
}

void append_publish(std::string& out, std::string_view verb, std::string_view prefix,
                    std::string_view channel, std::string_view payload) {
  // One resize and plain copies: eleven appends, each checking capacity, cost more than the
  // zero fill of the bytes they overwrite (callgrind, BENCHMARKS.md).
  auto const at = out.size();
  out.resize(at + publish_size(verb, prefix.size() + channel.size(), payload.size()));
  char* p = out.data() + at;
  p = put(p, "*3\r\n");
  p = put_bulk_header(p, verb.size());
  p = put(put(p, verb), "\r\n");
  p = put_bulk_header(p, prefix.size() + channel.size());
  p = put(put(put(p, prefix), channel), "\r\n");
  p = put_bulk_header(p, payload.size());
  p = put(put(p, payload), "\r\n");
  assert(p == out.data() + out.size());
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
