#include "redis/push_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace podrelay::redis {
namespace {

// Room for the names in front of a payload: a message may be this much larger than its
// payload limit before it counts as an oversized reply.
constexpr std::size_t header_slack = std::size_t{64} * 1024;
// hiredis 0.14 refuses a multi-bulk nested deeper than this; so does the framer.
constexpr std::size_t max_depth = 8;

// The end of the line that starts at `p` (its "\r\n"), or null when it has not arrived.
char const* line_end(char const* p, char const* end) noexcept {
  while (p < end) {
    auto const* cr =
        static_cast<char const*>(std::memchr(p, '\r', static_cast<std::size_t>(end - p)));
    if (cr == nullptr || cr + 1 >= end) return nullptr;
    if (cr[1] == '\n') return cr;
    p = cr + 1;
  }
  return nullptr;
}

// A decimal as Redis writes it and hiredis accepts it: optional '-', no '+', no leading
// zero, no "-0", within long long.
bool parse_integer(char const* p, char const* end, long long& out) noexcept {
  if (p == end) return false;
  char const* digits = *p == '-' ? p + 1 : p;
  if (digits == end || (*digits == '0' && (end - digits > 1 || digits != p))) return false;
  auto const [last, ec] = std::from_chars(p, end, out);
  return ec == std::errc{} && last == end;
}

bool is_crlf(char const* p) noexcept { return p[0] == '\r' && p[1] == '\n'; }

}  // namespace

PushReader::PushReader(std::size_t max_reply_bytes) : max_reply_bytes_(max_reply_bytes) {}

std::span<char> PushReader::prepare() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    // One large reply must not keep its buffer for the life of the connection.
    if (capacity_ > initial_capacity) {
      buf_.reset();
      capacity_ = 0;
    }
  }
  if (!buf_) {
    buf_ = std::make_unique_for_overwrite<char[]>(initial_capacity);
    capacity_ = initial_capacity;
  }
  auto const rest = end_ - begin_;
  // A known incomplete reply gets room to arrive whole, so it is never moved again.
  auto const need = std::max(min_read, want_ > rest ? want_ - rest : 0);
  if (capacity_ - end_ < need) reserve(rest + need);
  return {buf_.get() + end_, capacity_ - end_};
}

void PushReader::reserve(std::size_t bytes) {
  auto const rest = end_ - begin_;
  // Moving the unread rest is cheap while it is at most half the buffer: at least as many
  // bytes were read since the last move as are moved now. Otherwise the buffer doubles.
  if (bytes <= capacity_ && rest <= capacity_ / 2) {
    std::memmove(buf_.get(), buf_.get() + begin_, rest);
  } else {
    auto capacity = capacity_;
    while (capacity < bytes || rest > capacity / 2) capacity *= 2;
    auto grown = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(grown.get(), buf_.get() + begin_, rest);
    buf_ = std::move(grown);
    capacity_ = capacity;
  }
  begin_ = 0;
  end_ = rest;
}

void PushReader::commit(std::size_t n) { end_ += std::min(n, capacity_ - end_); }

void PushReader::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    auto const space = prepare();
    auto const n = std::min(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), n);
    commit(n);
    bytes.remove_prefix(n);
  }
}

PushReader::Status PushReader::fail(std::string text) {
  failed_ = true;
  error_ = std::move(text);
  return Status::error;
}

PushReader::Status PushReader::next(Item& item) {
  if (failed_) return Status::error;
  if (skip_ > 0) {
    auto const n = std::min(skip_, end_ - begin_);
    begin_ += n;
    skip_ -= n;
    if (skip_ > 0) return Status::need_more;
  }
  if (begin_ == end_) return Status::need_more;
  item.event = {};
  item.reply.reset();
  item.payload_bytes = 0;
  std::size_t size = 0;
  auto parsed = parse_push(item, size);
  if (parsed == Parse::done) {
    begin_ += size;
    want_ = 0;
    return Status::push;
  }
  if (parsed == Parse::oversized) {
    // The payload's header was read; the payload itself is skipped as it arrives.
    begin_ += size;
    want_ = 0;
    skip_ = item.payload_bytes + 2;
    return Status::oversized;
  }
  if (parsed == Parse::fallback) {
    want_ = 0;
    parsed = frame_reply(size);
  }
  if (parsed == Parse::error) return Status::error;
  if (parsed == Parse::need_more) {
    auto const limit = max_reply_bytes_ + header_slack;
    if (end_ - begin_ > limit || want_ > limit) {
      return fail("a reply from redis exceeds " + std::to_string(limit) + " bytes");
    }
    return Status::need_more;
  }
  replies_.feed(buf_.get() + begin_, size);
  begin_ += size;
  if (replies_.next(item.reply) != ReplyReader::Status::reply) {
    // The framer accepts nothing hiredis refuses (fuzz/fuzz_push_reader checks it).
    return fail("hiredis refused a reply the push reader framed: " +
                std::string(replies_.error_text()));
  }
  return Status::reply;
}

PushReader::Parse PushReader::parse_push(Item& item, std::size_t& size) {
  char const* const start = buf_.get() + begin_;
  char const* const end = buf_.get() + end_;
  char const* p = start;
  if (*p != '*') return Parse::fallback;
  auto const* eol = line_end(p + 1, end);
  if (eol == nullptr) return Parse::need_more;
  long long elements = 0;
  if (!parse_integer(p + 1, eol, elements) || (elements != 3 && elements != 4)) {
    return Parse::fallback;
  }
  p = eol + 2;
  std::string_view fields[4];
  for (long long i = 0; i < elements; ++i) {
    if (p == end) return Parse::need_more;
    if (*p != '$') return Parse::fallback;
    eol = line_end(p + 1, end);
    if (eol == nullptr) return Parse::need_more;
    long long len = 0;
    if (!parse_integer(p + 1, eol, len) || len < 0) return Parse::fallback;
    auto const bytes = static_cast<std::size_t>(len);
    p = eol + 2;
    if (i == 0 && bytes != 7 && bytes != 8) return Parse::fallback;  // not a message kind
    bool const payload = i == elements - 1;
    if (payload && bytes > max_reply_bytes_) {
      // Buffering it would break the memory bound; the names are known, so it is reported.
      item.payload_bytes = bytes;
      size = static_cast<std::size_t>(p - start);
      break;
    }
    if (static_cast<std::size_t>(end - p) < bytes + 2) {
      want_ = static_cast<std::size_t>(p - start) + bytes + 2;
      return Parse::need_more;
    }
    if (!is_crlf(p + bytes)) return Parse::fallback;
    fields[i] = {p, bytes};
    p += bytes + 2;
    if (i == 0) {
      auto const type = fields[0];
      bool const plain = type == "message" || type == "smessage";
      if (!(plain && elements == 3) && !(type == "pmessage" && elements == 4)) {
        return Parse::fallback;
      }
    }
    if (payload) size = static_cast<std::size_t>(p - start);
  }
  using Kind = PubSubEvent::Kind;
  auto& ev = item.event;
  if (elements == 3) {
    ev.kind = Kind::message;
    ev.name = ev.channel = fields[1];
  } else {
    ev.kind = Kind::pmessage;
    ev.name = fields[1];
    ev.channel = fields[2];
  }
  if (item.payload_bytes > 0) return Parse::oversized;
  ev.payload = fields[elements - 1];
  return Parse::done;
}

PushReader::Parse PushReader::frame_reply(std::size_t& size) {
  char const* const start = buf_.get() + begin_;
  char const* const end = buf_.get() + end_;
  char const* p = start;
  long long left[max_depth];  // elements still due at each open multi-bulk
  std::size_t depth = 0;
  for (;;) {
    if (p == end) return Parse::need_more;
    char const type = *p;
    if (type != '+' && type != '-' && type != ':' && type != '$' && type != '*') {
      char shown[8];
      std::snprintf(shown, sizeof shown, "\\x%02x", static_cast<unsigned char>(type));
      fail(std::string("protocol error, got \"") + shown + "\" as reply type byte");
      return Parse::error;
    }
    if (type == '*' && depth == max_depth) {
      fail("protocol error, multi-bulk replies nested deeper than 7");
      return Parse::error;
    }
    auto const* eol = line_end(p + 1, end);
    if (eol == nullptr) return Parse::need_more;
    bool item_done = true;
    if (type == '$') {
      long long len = 0;
      if (!parse_integer(p + 1, eol, len) || len < -1) {
        fail("protocol error, bad bulk length");
        return Parse::error;
      }
      p = eol + 2;
      if (len >= 0) {
        auto const bytes = static_cast<std::size_t>(len);
        if (static_cast<std::size_t>(end - p) < bytes + 2) {
          want_ = static_cast<std::size_t>(p - start) + bytes + 2;
          return Parse::need_more;
        }
        if (!is_crlf(p + bytes)) {
          fail("protocol error, bulk string not terminated by CRLF");
          return Parse::error;
        }
        p += bytes + 2;
      }
    } else if (type == '*') {
      long long elements = 0;
      if (!parse_integer(p + 1, eol, elements) || elements < -1 || elements > max_array_elements) {
        fail("protocol error, bad multi-bulk length");
        return Parse::error;
      }
      p = eol + 2;
      if (elements > 0) {
        left[depth++] = elements;
        item_done = false;
      }
    } else {
      long long value = 0;
      if (type == ':' && !parse_integer(p + 1, eol, value)) {
        fail("protocol error, bad integer value");
        return Parse::error;
      }
      p = eol + 2;
    }
    if (!item_done) continue;
    while (depth > 0 && --left[depth - 1] == 0) --depth;
    if (depth == 0) {
      size = static_cast<std::size_t>(p - start);
      return Parse::done;
    }
  }
}

}  // namespace podrelay::redis
