// RESP handling on top of hiredis: its reader parses replies and its formatter encodes
// commands; everything here works on byte buffers only (no sockets). The pub/sub push
// messages of a subscriber connection are classified into events.
#pragma once

#include <hiredis/hiredis.h>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace podrelay::redis {

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// hiredis 0.14 allocates an array reply's element table as soon as it reads the header, so
// "*555555553\r\n" from a broken or hostile server would ask for gigabytes (found by
// fuzz/fuzz_redis_reply). Newer hiredis has a maxelements limit; here larger arrays fail as
// a protocol error (the connection is dropped). Nothing podrelay asks for comes near it:
// pub/sub pushes have at most 4 elements, CLUSTER SLOTS at most one per slot range.
inline constexpr int max_array_elements = 1 << 20;

// Incremental RESP parser. Not thread-safe; one per connection.
class ReplyReader {
 public:
  ReplyReader();
  void feed(char const* data, std::size_t n);
  // Status::reply with `reply` set, need_more, or error (the stream is unusable).
  enum class Status { reply, need_more, error };
  Status next(ReplyPtr& reply);
  // Like next(), but the reply is lent: it stays valid until the next call on this reader.
  // An integer reply (":<digits>\r\n", at most 18 digits) that starts a reply is parsed
  // here, into a reply of the reader's own, without hiredis' allocation and free: it is the
  // answer to every PUBLISH, and hiredis' path for it was a fifth of the publishing
  // sidecar's instructions (BENCHMARKS.md, "Instructions per relayed message"). Everything
  // else (and an integer split across feeds) goes through hiredis as in next().
  Status next_view(redisReply const*& reply);
  std::string_view error_text() const noexcept;
  // What was fed and not parsed yet (a connection switching readers hands it on).
  std::string_view unread() const noexcept;
  // The bytes the reader holds, consumed or not (consumed ones are let go in batches).
  std::size_t buffered() const noexcept;
  // Bytes fed since the last whole reply was returned: after a need_more, the size so far
  // of the reply being read (hiredis may already have parsed part of it into objects, so
  // buffered() does not tell). What bounds a reply's memory.
  std::size_t incomplete_bytes() const noexcept { return fed_since_reply_; }

 private:
  struct ReaderDeleter {
    void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
  };
  std::unique_ptr<redisReader, ReaderDeleter> reader_;
  void returned_reply() noexcept;
  ReplyPtr lent_;            // next_view()'s reply when hiredis parsed it
  redisReply integer_ = {};  // next_view()'s reply when it parsed an integer itself
  std::size_t fed_since_reply_ = 0;
};

// The bytes of a whole integer reply at the start of `bytes` (":0\r\n" or ":-?[1-9][0-9]{0,17}
// \r\n") and its value; 0 when `bytes` does not start with one (anything else, a longer
// number, a leading zero, or not all of it yet).
std::size_t parse_integer_reply(std::string_view bytes, long long& value) noexcept;

// Appends one command in RESP to `out` (binary-safe arguments).
void append_command(std::string& out, std::span<std::string_view const> args);
void append_command(std::string& out, std::initializer_list<std::string_view> args);

// Appends "VERB <prefix+channel> <payload>" in RESP, byte for byte what
// redisFormatCommandArgv produces, without its printf and allocations: PUBLISH is the one
// command on the hot path (the benchmark profile showed the formatter at ~30% of the
// publishing sidecar's CPU).
void append_publish(std::string& out, std::string_view verb, std::string_view prefix,
                    std::string_view channel, std::string_view payload);
std::size_t publish_size(std::string_view verb, std::size_t channel_bytes,
                         std::size_t payload_bytes) noexcept;
// The bytes of the "message" push Redis sends a SUBSCRIBE connection for one message (RESP2
// and RESP3 alike: the same three bulk strings behind a one-digit header).
inline std::size_t message_push_size(std::size_t channel_bytes,
                                     std::size_t payload_bytes) noexcept {
  return publish_size("message", channel_bytes, payload_bytes);
}

inline std::string_view reply_string(redisReply const& r) noexcept {
  return r.str ? std::string_view(r.str, r.len) : std::string_view{};
}

// A reply seen on a subscriber connection.
struct PubSubEvent {
  enum class Kind {
    message,        // channel, payload
    pmessage,       // pattern, channel, payload
    subscribed,     // name (channel)
    unsubscribed,   // name (channel)
    psubscribed,    // name (pattern)
    punsubscribed,  // name (pattern)
    pong,
    error,  // text
    unexpected,
  };
  Kind kind = Kind::unexpected;
  std::string_view name;     // channel or pattern
  std::string_view channel;  // for pmessage
  std::string_view payload;  // message body, or error text
};
PubSubEvent classify_pubsub(redisReply const& reply) noexcept;
// "kind|name|channel|payload", bytes as they are: tests and the fuzz target compare readers
// with it.
std::string describe(PubSubEvent const& ev);

}  // namespace podrelay::redis
