#include "proto/frame.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace podrelay::proto {
namespace {

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
char* store_u16(char* p, std::uint16_t v) noexcept {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v & 0xff);
  return p + 2;
}
char* store_u32(char* p, std::uint32_t v) noexcept {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>((v >> 16) & 0xff);
  p[2] = static_cast<char>((v >> 8) & 0xff);
  p[3] = static_cast<char>(v & 0xff);
  return p + 4;
}
void put_u16(std::string& out, std::uint16_t v) {
  char b[2];
  store_u16(b, v);
  out.append(b, 2);
}
void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  store_u32(b, v);
  out.append(b, 4);
}
void put_str(std::string& out, std::string_view s) {
  assert(fits_str(s));
  put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s);
}

// Writes a placeholder length prefix and the type byte; finish() patches the length.
std::size_t start(std::string& out, FrameType type, std::size_t body_hint) {
  std::size_t const at = out.size();
  out.reserve(at + header_bytes + 1 + body_hint);
  put_u32(out, 0);
  put_u8(out, static_cast<std::uint8_t>(type));
  return at;
}
void finish(std::string& out, std::size_t at) {
  store_u32(out.data() + at, static_cast<std::uint32_t>(out.size() - at - header_bytes));
}

// The hot encoders (MSG, OK) write in place: one resize, then plain stores, instead of an
// append (and its capacity check) per field.
char* grow(std::string& out, std::size_t n) {
  auto const at = out.size();
  out.resize(at + n);
  return out.data() + at;
}
char* store_bytes(char* p, std::string_view s) noexcept {
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
char* store_str(char* p, std::string_view s) noexcept {
  assert(fits_str(s));
  return store_bytes(store_u16(p, static_cast<std::uint16_t>(s.size())), s);
}
// The length prefix and type byte of a frame of `body` bytes.
char* store_header(char* p, FrameType type, std::size_t body) noexcept {
  p = store_u32(p, static_cast<std::uint32_t>(1 + body));
  *p = static_cast<char>(type);
  return p + 1;
}

std::uint32_t load_u32(char const* p) noexcept {
  auto const* u = reinterpret_cast<unsigned char const*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}

// Reads fields off a body; any shortfall marks the reader bad and later reads return zero.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool bad() const noexcept { return bad_; }
  bool at_end() const noexcept { return pos_ == s_.size(); }

  std::uint16_t u16() {
    if (!need(2)) return 0;
    auto const* u = reinterpret_cast<unsigned char const*>(s_.data() + pos_);
    pos_ += 2;
    return static_cast<std::uint16_t>((u[0] << 8) | u[1]);
  }
  std::uint32_t u32() {
    if (!need(4)) return 0;
    auto const v = load_u32(s_.data() + pos_);
    pos_ += 4;
    return v;
  }
  std::string_view str() {
    auto const n = u16();
    if (!need(n)) return {};
    auto const v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view rest() {
    auto const v = s_.substr(pos_);
    pos_ = s_.size();
    return v;
  }

 private:
  bool need(std::size_t n) {
    if (bad_ || s_.size() - pos_ < n) {
      bad_ = true;
      return false;
    }
    return true;
  }
  std::string_view s_;
  std::size_t pos_ = 0;
  bool bad_ = false;
};

}  // namespace

std::string_view frame_type_name(FrameType type) noexcept {
  switch (type) {
    case FrameType::hello: return "HELLO";
    case FrameType::pub: return "PUB";
    case FrameType::sub: return "SUB";
    case FrameType::unsub: return "UNSUB";
    case FrameType::psub: return "PSUB";
    case FrameType::punsub: return "PUNSUB";
    case FrameType::ping: return "PING";
    case FrameType::welcome: return "WELCOME";
    case FrameType::msg: return "MSG";
    case FrameType::ok: return "OK";
    case FrameType::err: return "ERR";
    case FrameType::pong: return "PONG";
    case FrameType::goaway: return "GOAWAY";
    case FrameType::rsub: return "RSUB";
    case FrameType::pubx: return "PUBX";
    case FrameType::smsg: return "SMSG";
    case FrameType::pubok: return "PUBOK";
    case FrameType::rsubok: return "RSUBOK";
  }
  return "UNKNOWN";
}

bool is_known_type(std::uint8_t type, std::uint16_t version) noexcept {
  if ((type >= 0x01 && type <= 0x07) || (type >= 0x81 && type <= 0x86)) return true;
  if (version >= 3 && type == 0x09) return true;
  return version >= 2 && (type == 0x08 || (type >= 0x87 && type <= 0x89));
}

FrameType type_of(Frame const& frame) noexcept {
  struct Visitor {
    FrameType operator()(Hello const&) const { return FrameType::hello; }
    FrameType operator()(Pub const& f) const {
      return f.except_sender ? FrameType::pubx : FrameType::pub;
    }
    FrameType operator()(NameList const& f) const { return f.type; }
    FrameType operator()(Ping const&) const { return FrameType::ping; }
    FrameType operator()(Welcome const&) const { return FrameType::welcome; }
    FrameType operator()(Msg const&) const { return FrameType::msg; }
    FrameType operator()(Ok const&) const { return FrameType::ok; }
    FrameType operator()(Err const&) const { return FrameType::err; }
    FrameType operator()(Pong const&) const { return FrameType::pong; }
    FrameType operator()(Goaway const&) const { return FrameType::goaway; }
    FrameType operator()(Rsub const&) const { return FrameType::rsub; }
    FrameType operator()(Smsg const&) const { return FrameType::smsg; }
    FrameType operator()(PubOk const&) const { return FrameType::pubok; }
    FrameType operator()(RsubOk const&) const { return FrameType::rsubok; }
  };
  return std::visit(Visitor{}, frame);
}

void encode_hello(std::string& out, std::string_view client_name, std::string_view auth_token,
                  std::uint16_t version) {
  auto const at = start(out, FrameType::hello, 6 + client_name.size() + auth_token.size());
  put_u16(out, version);
  put_str(out, client_name);
  put_str(out, auth_token);
  finish(out, at);
}

void encode_pub(std::string& out, std::uint32_t request_id, std::string_view channel,
                std::string_view payload, bool except_sender) {
  auto const at = start(out, except_sender ? FrameType::pubx : FrameType::pub,
                        6 + channel.size() + payload.size());
  put_u32(out, request_id);
  put_str(out, channel);
  out.append(payload);
  finish(out, at);
}

void encode_name_list(std::string& out, FrameType type, std::uint32_t request_id,
                      std::span<std::string_view const> names) {
  assert(names.size() <= 0xffff);
  auto const at = start(out, type, 6 + names.size() * 16);
  put_u32(out, request_id);
  put_u16(out, static_cast<std::uint16_t>(names.size()));
  for (auto const n : names) put_str(out, n);
  finish(out, at);
}

std::string_view cut_message(std::string_view text) noexcept {
  if (text.size() <= max_message_bytes) return text;
  auto end = max_message_bytes;
  // Back off over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
  return text.substr(0, end);
}

void encode_ping(std::string& out, std::uint32_t request_id) {
  auto const at = start(out, FrameType::ping, 4);
  put_u32(out, request_id);
  finish(out, at);
}

void encode_welcome(std::string& out, std::string_view server_version, std::string_view node_id,
                    std::uint32_t max_frame_bytes, std::uint32_t max_queue_bytes,
                    std::uint16_t version) {
  auto const at = start(out, FrameType::welcome, 14 + server_version.size() + node_id.size());
  put_u16(out, version);
  put_str(out, server_version);
  put_str(out, node_id);
  put_u32(out, max_frame_bytes);
  put_u32(out, max_queue_bytes);
  finish(out, at);
}

void encode_msg(std::string& out, std::string_view channel, std::string_view pattern,
                std::string_view payload) {
  auto const body = 4 + channel.size() + pattern.size() + payload.size();
  char* p = store_header(grow(out, header_bytes + 1 + body), FrameType::msg, body);
  store_bytes(store_str(store_str(p, channel), pattern), payload);
}

void encode_ok(std::string& out, std::uint32_t request_id) {
  store_u32(store_header(grow(out, header_bytes + 1 + 4), FrameType::ok, 4), request_id);
}

void encode_err(std::string& out, std::uint32_t request_id, ErrorCode code,
                std::string_view message) {
  message = message.substr(0, max_str_bytes);
  auto const at = start(out, FrameType::err, 8 + message.size());
  put_u32(out, request_id);
  put_u16(out, static_cast<std::uint16_t>(code));
  put_str(out, message);
  finish(out, at);
}

void encode_pong(std::string& out, std::uint32_t request_id) {
  auto const at = start(out, FrameType::pong, 4);
  put_u32(out, request_id);
  finish(out, at);
}

void encode_goaway(std::string& out, ErrorCode code, std::string_view message) {
  message = message.substr(0, max_str_bytes);
  auto const at = start(out, FrameType::goaway, 4 + message.size());
  put_u16(out, static_cast<std::uint16_t>(code));
  put_str(out, message);
  finish(out, at);
}

void encode_rsub(std::string& out, std::uint32_t request_id, std::string_view channel,
                 std::string_view since_id, std::string_view epoch) {
  auto const at = start(out, FrameType::rsub, 10 + channel.size() + since_id.size() + epoch.size());
  put_u32(out, request_id);
  put_str(out, channel);
  put_str(out, since_id);
  put_str(out, epoch);
  finish(out, at);
}

void encode_smsg(std::string& out, std::string_view channel, std::string_view id,
                 std::string_view payload) {
  auto const at = start(out, FrameType::smsg, 4 + channel.size() + id.size() + payload.size());
  put_str(out, channel);
  put_str(out, id);
  out.append(payload);
  finish(out, at);
}

void encode_pubok(std::string& out, std::uint32_t request_id, std::string_view id) {
  auto const at = start(out, FrameType::pubok, 6 + id.size());
  put_u32(out, request_id);
  put_str(out, id);
  finish(out, at);
}

void encode_rsubok(std::string& out, std::uint32_t request_id, std::uint16_t recovered,
                   std::string_view epoch, std::string_view last_id) {
  auto const at = start(out, FrameType::rsubok, 10 + epoch.size() + last_id.size());
  put_u32(out, request_id);
  put_u16(out, recovered);
  put_str(out, epoch);
  put_str(out, last_id);
  finish(out, at);
}

void encode(std::string& out, Frame const& frame) {
  struct Visitor {
    std::string& out;
    void operator()(Hello const& f) const {
      encode_hello(out, f.client_name, f.auth_token, f.version);
    }
    void operator()(Pub const& f) const {
      encode_pub(out, f.request_id, f.channel, f.payload, f.except_sender);
    }
    void operator()(NameList const& f) const {
      encode_name_list(out, f.type, f.request_id, f.names);
    }
    void operator()(Ping const& f) const { encode_ping(out, f.request_id); }
    void operator()(Welcome const& f) const {
      encode_welcome(out, f.server_version, f.node_id, f.max_frame_bytes, f.max_queue_bytes,
                     f.version);
    }
    void operator()(Msg const& f) const { encode_msg(out, f.channel, f.pattern, f.payload); }
    void operator()(Ok const& f) const { encode_ok(out, f.request_id); }
    void operator()(Err const& f) const {
      encode_err(out, f.request_id, static_cast<ErrorCode>(f.code), f.message);
    }
    void operator()(Pong const& f) const { encode_pong(out, f.request_id); }
    void operator()(Goaway const& f) const {
      encode_goaway(out, static_cast<ErrorCode>(f.code), f.message);
    }
    void operator()(Rsub const& f) const {
      encode_rsub(out, f.request_id, f.channel, f.since_id, f.epoch);
    }
    void operator()(Smsg const& f) const { encode_smsg(out, f.channel, f.id, f.payload); }
    void operator()(PubOk const& f) const { encode_pubok(out, f.request_id, f.id); }
    void operator()(RsubOk const& f) const {
      encode_rsubok(out, f.request_id, f.recovered, f.epoch, f.last_id);
    }
  };
  std::visit(Visitor{out}, frame);
}

ParseResult parse_body(std::string_view body, std::uint16_t version) {
  ParseResult r;
  if (body.empty()) {
    r.error = ErrorCode::malformed_frame;
    return r;
  }
  auto const raw_type = static_cast<std::uint8_t>(body[0]);
  if (!is_known_type(raw_type, version)) {
    r.error = ErrorCode::unknown_type;
    return r;
  }
  auto const type = static_cast<FrameType>(raw_type);
  Reader in(body.substr(1));
  bool has_rest = false;
  switch (type) {
    case FrameType::hello: {
      Hello f;
      f.version = in.u16();
      f.client_name = in.str();
      f.auth_token = in.str();
      r.frame = f;
      break;
    }
    case FrameType::pub:
    case FrameType::pubx: {
      Pub f;
      f.except_sender = type == FrameType::pubx;
      f.request_id = in.u32();
      f.channel = in.str();
      f.payload = in.rest();
      has_rest = true;
      r.frame = f;
      break;
    }
    case FrameType::sub:
    case FrameType::unsub:
    case FrameType::psub:
    case FrameType::punsub: {
      NameList f;
      f.type = type;
      f.request_id = in.u32();
      auto const count = in.u16();
      // Each name needs at least 2 bytes, so a count the body cannot hold is malformed
      // before we reserve anything for it.
      if (!in.bad() && count <= (body.size() - 7) / 2) {
        f.names.reserve(count);
        for (std::uint16_t i = 0; i < count && !in.bad(); ++i) f.names.push_back(in.str());
      } else if (count > 0) {
        r.error = ErrorCode::malformed_frame;
        return r;
      }
      r.frame = std::move(f);
      break;
    }
    case FrameType::ping: r.frame = Ping{in.u32()}; break;
    case FrameType::welcome: {
      Welcome f;
      f.version = in.u16();
      f.server_version = in.str();
      f.node_id = in.str();
      f.max_frame_bytes = in.u32();
      f.max_queue_bytes = in.u32();
      r.frame = f;
      break;
    }
    case FrameType::msg: {
      Msg f;
      f.channel = in.str();
      f.pattern = in.str();
      f.payload = in.rest();
      has_rest = true;
      r.frame = f;
      break;
    }
    case FrameType::ok: r.frame = Ok{in.u32()}; break;
    case FrameType::err: {
      Err f;
      f.request_id = in.u32();
      f.code = in.u16();
      f.message = in.str();
      r.frame = f;
      break;
    }
    case FrameType::pong: r.frame = Pong{in.u32()}; break;
    case FrameType::goaway: {
      Goaway f;
      f.code = in.u16();
      f.message = in.str();
      r.frame = f;
      break;
    }
    case FrameType::rsub: {
      Rsub f;
      f.request_id = in.u32();
      f.channel = in.str();
      f.since_id = in.str();
      f.epoch = in.str();
      r.frame = f;
      break;
    }
    case FrameType::smsg: {
      Smsg f;
      f.channel = in.str();
      f.id = in.str();
      f.payload = in.rest();
      has_rest = true;
      r.frame = f;
      break;
    }
    case FrameType::pubok: {
      PubOk f;
      f.request_id = in.u32();
      f.id = in.str();
      r.frame = f;
      break;
    }
    case FrameType::rsubok: {
      RsubOk f;
      f.request_id = in.u32();
      f.recovered = in.u16();
      f.epoch = in.str();
      f.last_id = in.str();
      r.frame = f;
      break;
    }
  }
  if (in.bad() || (!has_rest && !in.at_end())) {
    r.error = ErrorCode::malformed_frame;
    return r;
  }
  r.ok = true;
  return r;
}

std::span<char> Decoder::prepare(std::size_t min_bytes) {
  // Room the current partial frame still needs, so a large frame is read in few calls.
  std::size_t want = min_bytes;
  if (end_ - begin_ >= header_bytes) {
    auto const len = load_u32(buf_.data() + begin_);
    if (len <= max_frame_bytes_) {
      auto const total = header_bytes + len;
      if (total > end_ - begin_) want = std::max(want, total - (end_ - begin_));
    }
  }
  if (begin_ == end_) begin_ = end_ = 0;
  if (buf_.size() - end_ < want) {
    if (begin_ > 0) {  // compact: move the partial frame to the front
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < want) buf_.resize(end_ + want);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void Decoder::feed(std::string_view data) {
  if (data.empty()) return;  // memcpy from an empty view's null data() is undefined
  auto const space = prepare(data.size());
  std::memcpy(space.data(), data.data(), data.size());
  commit(data.size());
}

Decoder::Result Decoder::next() {
  Result r;
  if (failed_) {
    r.status = Status::error;
    r.error = failure_;
    return r;
  }
  if (end_ - begin_ < header_bytes) return r;
  auto const len = load_u32(buf_.data() + begin_);
  if (len == 0 || len > max_frame_bytes_) {
    failed_ = true;
    failure_ = len == 0 ? ErrorCode::malformed_frame : ErrorCode::frame_too_large;
    r.status = Status::error;
    r.error = failure_;
    return r;
  }
  if (end_ - begin_ - header_bytes < len) return r;
  auto parsed = parse_body(std::string_view(buf_.data() + begin_ + header_bytes, len), version_);
  begin_ += header_bytes + len;
  if (!parsed.ok) {
    failed_ = true;
    failure_ = parsed.error;
    r.status = Status::error;
    r.error = failure_;
    return r;
  }
  r.status = Status::frame;
  r.frame = std::move(parsed.frame);
  return r;
}

void Decoder::shrink_if_idle(std::size_t keep_at_most) {
  if (begin_ == end_ && buf_.size() > keep_at_most) {
    std::vector<char>().swap(buf_);
    begin_ = end_ = 0;
  }
}

}  // namespace podrelay::proto
