// Frames of the podrelay wire protocol (proto/PROTOCOL.md): types, encoders and an
// incremental decoder. Sans-I/O: plain functions and a state machine over byte buffers.
// Not thread-safe; one Decoder per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/error_code.hpp"

namespace podrelay::proto {

inline constexpr std::uint16_t protocol_version = 1;
// Version 2 adds durable channels (RSUB, SMSG, PUBOK, RSUBOK); version 3 adds PUBX (publish,
// not back to me). A HELLO may ask for 1, 2 or 3.
inline constexpr std::uint16_t max_protocol_version = 3;
inline constexpr std::size_t header_bytes = 4;  // the u32 length prefix
inline constexpr std::size_t max_str_bytes = 0xffff;
// The sidecar cuts the texts of the ERR and GOAWAY frames it sends to this many bytes (at a
// UTF-8 character boundary), so that with --max-frame-bytes at its minimum (1024) every
// frame but MSG and SMSG fits the limit it announces.
inline constexpr std::size_t max_message_bytes = 512;
inline constexpr std::uint32_t min_max_frame_bytes = 1024;

enum class FrameType : std::uint8_t {
  hello = 0x01,
  pub = 0x02,
  sub = 0x03,
  unsub = 0x04,
  psub = 0x05,
  punsub = 0x06,
  ping = 0x07,
  rsub = 0x08,  // version 2
  pubx = 0x09,  // version 3
  welcome = 0x81,
  msg = 0x82,
  ok = 0x83,
  err = 0x84,
  pong = 0x85,
  goaway = 0x86,
  smsg = 0x87,    // version 2
  pubok = 0x88,   // version 2
  rsubok = 0x89,  // version 2
};

// Types that exist only from protocol version 2 on.
constexpr bool is_v2_type(FrameType type) noexcept {
  return type == FrameType::rsub || type == FrameType::smsg || type == FrameType::pubok ||
         type == FrameType::rsubok;
}

std::string_view frame_type_name(FrameType type) noexcept;
// Known in protocol `version`: the version 2 types are unknown to a version 1 connection and
// PUBX to a version 1 or 2 connection, exactly as they were before those versions existed.
bool is_known_type(std::uint8_t type, std::uint16_t version = max_protocol_version) noexcept;

// Decoded frames. string_view fields point into the decoder's buffer and stay valid until
// the decoder is fed or advanced again.
struct Hello {
  std::uint16_t version = protocol_version;
  std::string_view client_name;
  std::string_view auth_token;
};
// PUB, and PUBX (version 3: the same body; not delivered back to the connection that sent it).
struct Pub {
  std::uint32_t request_id = 0;
  std::string_view channel;
  std::string_view payload;
  bool except_sender = false;  // PUBX
};
// SUB, UNSUB, PSUB and PUNSUB share one shape: a request id and a list of names.
struct NameList {
  FrameType type = FrameType::sub;
  std::uint32_t request_id = 0;
  std::vector<std::string_view> names;
};
struct Ping {
  std::uint32_t request_id = 0;
};
struct Welcome {
  std::uint16_t version = protocol_version;
  std::string_view server_version;
  std::string_view node_id;
  std::uint32_t max_frame_bytes = 0;
  std::uint32_t max_queue_bytes = 0;
};
struct Msg {
  std::string_view channel;
  std::string_view pattern;
  std::string_view payload;
};
struct Ok {
  std::uint32_t request_id = 0;
};
struct Err {
  std::uint32_t request_id = 0;
  std::uint16_t code = 0;
  std::string_view message;
};
struct Pong {
  std::uint32_t request_id = 0;
};
struct Goaway {
  std::uint16_t code = 0;
  std::string_view message;
};

// Version 2: subscribe to a durable channel, resuming after `since_id` (empty: from now)
// if the stream's epoch is still `epoch` (empty: not checked).
struct Rsub {
  std::uint32_t request_id = 0;
  std::string_view channel;
  std::string_view since_id;
  std::string_view epoch;
};
// Version 2: a message of a durable channel with its stream id.
struct Smsg {
  std::string_view channel;
  std::string_view id;
  std::string_view payload;
};
// Version 2: the answer to an acked PUB on a durable channel, with the id Redis assigned.
struct PubOk {
  std::uint32_t request_id = 0;
  std::string_view id;
};
// Version 2: the answer to RSUB, sent after the replayed messages. `recovered` is 1 when
// every message after `since_id` was delivered (or none was asked for), 0 when the app
// must reload its state; `last_id` is the id live delivery continues after.
struct RsubOk {
  std::uint32_t request_id = 0;
  std::uint16_t recovered = 0;
  std::string_view epoch;
  std::string_view last_id;
};

using Frame = std::variant<Hello, Pub, NameList, Ping, Welcome, Msg, Ok, Err, Pong, Goaway, Rsub,
                           Smsg, PubOk, RsubOk>;

FrameType type_of(Frame const& frame) noexcept;

// Encoders append one whole frame (length prefix included) to `out`. Strings longer than
// 65535 bytes cannot be encoded; callers check with fits_str() first (encoders truncate
// nothing and assert in debug builds).
constexpr bool fits_str(std::string_view s) noexcept { return s.size() <= max_str_bytes; }
// `text` cut to max_message_bytes, never inside a UTF-8 sequence.
std::string_view cut_message(std::string_view text) noexcept;

void encode_hello(std::string& out, std::string_view client_name, std::string_view auth_token,
                  std::uint16_t version = protocol_version);
void encode_pub(std::string& out, std::uint32_t request_id, std::string_view channel,
                std::string_view payload, bool except_sender = false);
void encode_name_list(std::string& out, FrameType type, std::uint32_t request_id,
                      std::span<std::string_view const> names);
void encode_ping(std::string& out, std::uint32_t request_id);
void encode_welcome(std::string& out, std::string_view server_version, std::string_view node_id,
                    std::uint32_t max_frame_bytes, std::uint32_t max_queue_bytes,
                    std::uint16_t version = protocol_version);
void encode_msg(std::string& out, std::string_view channel, std::string_view pattern,
                std::string_view payload);
void encode_ok(std::string& out, std::uint32_t request_id);
void encode_err(std::string& out, std::uint32_t request_id, ErrorCode code,
                std::string_view message);
void encode_pong(std::string& out, std::uint32_t request_id);
void encode_goaway(std::string& out, ErrorCode code, std::string_view message);
void encode_rsub(std::string& out, std::uint32_t request_id, std::string_view channel,
                 std::string_view since_id, std::string_view epoch);
void encode_smsg(std::string& out, std::string_view channel, std::string_view id,
                 std::string_view payload);
void encode_pubok(std::string& out, std::uint32_t request_id, std::string_view id);
// `recovered`: 1 or 0 (other values are kept as given, for the vectors).
void encode_rsubok(std::string& out, std::uint32_t request_id, std::uint16_t recovered,
                   std::string_view epoch, std::string_view last_id);
void encode(std::string& out, Frame const& frame);

// Size on the wire of a MSG frame, so fan-out can reserve once.
constexpr std::size_t msg_frame_size(std::size_t channel, std::size_t pattern,
                                     std::size_t payload) noexcept {
  return header_bytes + 1 + 2 + channel + 2 + pattern + payload;
}

constexpr std::size_t smsg_frame_size(std::size_t channel, std::size_t id,
                                      std::size_t payload) noexcept {
  return header_bytes + 1 + 2 + channel + 2 + id + payload;
}

// Parses one frame body (the bytes after the length prefix: type byte, then fields).
struct ParseResult {
  Frame frame;
  ErrorCode error{};
  bool ok = false;
};
ParseResult parse_body(std::string_view body, std::uint16_t version = max_protocol_version);

// Incremental decoder with a hard frame limit. Usage per read:
//   auto buf = decoder.prepare(n); read into buf; decoder.commit(bytes_read);
//   while ((r = decoder.next()).status == Decoder::Status::frame) handle(r.frame);
// A frame whose length prefix exceeds the limit is reported as soon as the 4 prefix bytes
// are in, before its body is buffered. After an error the decoder stays failed.
class Decoder {
 public:
  enum class Status { need_more, frame, error };
  struct Result {
    Status status = Status::need_more;
    Frame frame;
    ErrorCode error{};
  };

  explicit Decoder(std::size_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}
  // The connection's protocol version (1 until a HELLO asked for 2): decides which types
  // are known.
  void set_version(std::uint16_t version) noexcept { version_ = version; }

  // Writable space of at least `min_bytes` (more when a large frame is partly in).
  std::span<char> prepare(std::size_t min_bytes);
  void commit(std::size_t n) noexcept { end_ += n; }
  // Copies `data` in; convenient for tests and fuzzers.
  void feed(std::string_view data);

  Result next();

  std::size_t buffered() const noexcept { return end_ - begin_; }
  std::size_t capacity() const noexcept { return buf_.size(); }
  // Frees the buffer when it holds no partial frame; for idle connections.
  void shrink_if_idle(std::size_t keep_at_most);

 private:
  std::size_t max_frame_bytes_;
  std::uint16_t version_ = protocol_version;
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool failed_ = false;
  ErrorCode failure_{};
};

}  // namespace podrelay::proto
