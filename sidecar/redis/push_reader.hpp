// The reader of a subscriber connection. It owns the connection's read buffer and parses
// `message` / `pmessage` / `smessage` pushes in place: the event's views point into that
// buffer, so the one copy of a payload on its way to an app is the one into the outgoing
// frame. Every other reply (subscribe confirmations, errors, PONG, whatever it does not
// know) is framed here and handed, bytes unchanged and in order, to hiredis' reader, as
// before. The link speaks RESP2: it never sends HELLO 3, and hiredis 0.14 reads no RESP3.
//
// The buffer holds at most one incomplete reply plus one read; what was parsed is dropped
// by moving the unread rest to the front only when the free tail gets short, so no byte is
// moved more than about twice (hiredis 0.14 moves the whole unread rest after every reply).
// A message whose payload exceeds `max_reply_bytes` is reported as oversized and its
// payload skipped as it arrives, never buffered; any other reply above it is an error.
// Not thread-safe; one per connection. Views stay valid until the next prepare().
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "redis/resp.hpp"

namespace podrelay::redis {

class PushReader {
 public:
  explicit PushReader(std::size_t max_reply_bytes);

  // Free space for the next read (at least min_read bytes); then commit what was read.
  std::span<char> prepare();
  void commit(std::size_t n);
  // Bytes another reader took off the socket before this one (the handshake's leftovers).
  void feed(std::string_view bytes);

  enum class Status {
    push,       // `event` is a message / pmessage / smessage, views into the buffer
    reply,      // `reply` is any other reply, parsed by hiredis
    oversized,  // `event` names the message (payload empty); `payload_bytes` were skipped
    need_more,
    error,  // the stream is not RESP (error_text()); drop the connection
  };
  struct Item {
    PubSubEvent event;
    ReplyPtr reply;
    std::size_t payload_bytes = 0;
  };
  Status next(Item& item);
  std::string_view error_text() const noexcept { return error_; }

  // Bytes buffered and not yet parsed (tests look at the bound).
  std::size_t buffered() const noexcept { return end_ - begin_; }
  std::size_t capacity() const noexcept { return capacity_; }

  static constexpr std::size_t min_read = std::size_t{16} * 1024;
  static constexpr std::size_t initial_capacity = std::size_t{64} * 1024;

 private:
  enum class Parse { done, oversized, need_more, fallback, error };
  Parse parse_push(Item& item, std::size_t& size);
  Parse frame_reply(std::size_t& size);
  Status fail(std::string text);
  void reserve(std::size_t bytes);

  std::size_t max_reply_bytes_;
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;  // first unparsed byte
  std::size_t end_ = 0;    // one past the last byte read
  std::size_t skip_ = 0;   // bytes of an oversized payload still to discard
  std::size_t want_ = 0;   // the incomplete reply's size when known (0: not known yet)
  bool failed_ = false;
  std::string error_;
  ReplyReader replies_;
};

}  // namespace podrelay::redis
