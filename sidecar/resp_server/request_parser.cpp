#include "resp_server/request_parser.hpp"

#include <algorithm>
#include <climits>
#include <cstring>

namespace podrelay::resp_server {
namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

// C isspace() in the "C" locale, which sdssplitargs uses to skip between arguments.
bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Splits an inline line by Redis' sdssplitargs rules, unescaping in place: every argument
// is written at or before the bytes it was read from, so `line` is reused as storage.
// Appends (offset, length) pairs relative to `line`. False: unbalanced quotes.
bool split_inline(char* line, std::size_t n,
                  std::vector<std::pair<std::size_t, std::size_t>>& args) {
  char* p = line;
  char* const e = line + n;
  char* w = line;
  for (;;) {
    while (p < e && is_space(*p)) ++p;
    if (p == e) return true;
    char* const token = w;
    bool in_double = false;
    bool in_single = false;
    bool done = false;
    while (!done) {
      if (in_double) {
        if (e - p >= 4 && p[0] == '\\' && p[1] == 'x' && is_hex(p[2]) && is_hex(p[3])) {
          *w++ = static_cast<char>(hex_value(p[2]) * 16 + hex_value(p[3]));
          p += 3;
        } else if (e - p >= 2 && p[0] == '\\') {
          ++p;
          char c = *p;
          switch (c) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'a': c = '\a'; break;
            default: break;
          }
          *w++ = c;
        } else if (p < e && *p == '"') {
          // A closing quote must be followed by a space or the end of the line.
          if (e - p >= 2 && !is_space(p[1])) return false;
          done = true;
        } else if (p == e) {
          return false;
        } else {
          *w++ = *p;
        }
      } else if (in_single) {
        if (e - p >= 2 && p[0] == '\\' && p[1] == '\'') {
          ++p;
          *w++ = '\'';
        } else if (p < e && *p == '\'') {
          if (e - p >= 2 && !is_space(p[1])) return false;
          done = true;
        } else if (p == e) {
          return false;
        } else {
          *w++ = *p;
        }
      } else if (p == e) {
        done = true;
      } else {
        switch (*p) {
          case ' ':
          case '\n':
          case '\r':
          case '\t': done = true; break;
          case '"': in_double = true; break;
          case '\'': in_single = true; break;
          default: *w++ = *p; break;
        }
      }
      if (p < e) ++p;
    }
    args.emplace_back(static_cast<std::size_t>(token - line), static_cast<std::size_t>(w - token));
  }
}

}  // namespace

bool parse_integer(std::string_view s, std::int64_t& out) noexcept {
  if (s.empty() || s.size() >= 21) return false;
  if (s == "0") {
    out = 0;
    return true;
  }
  bool const negative = s[0] == '-';
  std::size_t i = negative ? 1 : 0;
  if (i == s.size() || s[i] < '1' || s[i] > '9') return false;
  unsigned long long v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    auto const d = static_cast<unsigned long long>(s[i] - '0');
    if (v > (ULLONG_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  constexpr auto max = static_cast<unsigned long long>(LLONG_MAX);
  if (v > max + (negative ? 1 : 0)) return false;
  out = !negative      ? static_cast<std::int64_t>(v)
        : v == max + 1 ? LLONG_MIN
                       : -static_cast<std::int64_t>(v);
  return true;
}

Limits Limits::for_max_frame_bytes(std::size_t max_frame_bytes) noexcept {
  Limits l;
  l.max_bulk_bytes = max_frame_bytes + 1024;
  l.max_request_bytes = 2 * l.max_bulk_bytes + std::size_t{64} * 1024;
  return l;
}

std::string_view parse_error_text(ParseError error) noexcept {
  switch (error) {
    case ParseError::none: return {};
    case ParseError::invalid_multibulk_length: return "Protocol error: invalid multibulk length";
    case ParseError::unauthenticated_multibulk_length:
      return "Protocol error: unauthenticated multibulk length";
    case ParseError::too_big_mbulk_count_string:
      return "Protocol error: too big mbulk count string";
    case ParseError::invalid_bulk_length: return "Protocol error: invalid bulk length";
    case ParseError::unauthenticated_bulk_length:
      return "Protocol error: unauthenticated bulk length";
    case ParseError::too_big_bulk_count_string: return "Protocol error: too big bulk count string";
    case ParseError::expected_dollar: return "Protocol error: expected '$', got '";
    case ParseError::too_big_inline_request: return "Protocol error: too big inline request";
    case ParseError::unbalanced_quotes: return "Protocol error: unbalanced quotes in request";
    case ParseError::too_big_request: return "Protocol error: too big request for podrelay";
  }
  return {};
}

std::span<char> RequestParser::prepare(std::size_t min_bytes) {
  std::size_t want = min_bytes;
  // Room the argument being read still needs, so a large payload arrives in few reads.
  if (mode_ == Mode::multibulk && bulk_len_ >= 0) {
    auto const need = pos_ + static_cast<std::size_t>(bulk_len_) + 2;
    if (need > end_ - begin_) want = std::max(want, need - (end_ - begin_));
  }
  if (begin_ == end_) begin_ = end_ = 0;
  if (buf_.size() - end_ < want) {
    if (begin_ > 0) {  // compact: move the partial request to the front
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < want) buf_.resize(end_ + want);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void RequestParser::feed(std::string_view data) {
  if (data.empty()) return;  // memcpy from an empty view's null data() is undefined
  auto const space = prepare(data.size());
  std::memcpy(space.data(), data.data(), data.size());
  commit(data.size());
}

void RequestParser::shrink_if_idle(std::size_t keep_at_most) {
  argv_.clear();
  if (begin_ == end_ && buf_.size() > keep_at_most) {
    std::vector<char>().swap(buf_);
    begin_ = end_ = 0;
  }
  if (mode_ == Mode::idle && args_.capacity() > 64) {
    std::vector<std::pair<std::size_t, std::size_t>>().swap(args_);
    std::vector<std::string_view>().swap(argv_);
  }
}

std::size_t RequestParser::find(char c) {
  auto const avail = end_ - begin_;
  if (scan_ < avail) {
    if (auto const* hit = static_cast<char const*>(std::memchr(at(scan_), c, avail - scan_))) {
      scan_ = static_cast<std::size_t>(hit - at(0));
      return scan_;
    }
  }
  scan_ = avail;
  return npos;
}

RequestParser::Step RequestParser::fail(ParseError error) {
  error_ = error;
  error_text_ = parse_error_text(error);
  return Step::error;
}

RequestParser::Result RequestParser::next() {
  Result r;
  argv_.clear();
  while (error_ == ParseError::none) {
    if (mode_ == Mode::idle) {
      if (begin_ == end_) return r;
      mode_ = *at(0) == '*' ? Mode::multibulk : Mode::inline_line;
      pos_ = scan_ = 0;
      remaining_ = bulk_len_ = -1;
      args_.clear();
    }
    auto const step = mode_ == Mode::multibulk ? parse_multibulk() : parse_inline();
    if (step == Step::need_more) return r;
    if (step == Step::error) break;
    // The request is complete (or empty, and skipped as Redis does).
    mode_ = Mode::idle;
    auto const* base = at(0);
    begin_ += pos_;
    if (step == Step::request) {
      argv_.reserve(args_.size());
      for (auto const& [off, len] : args_) argv_.emplace_back(base + off, len);
      r.status = Status::request;
      r.argv = argv_;
      return r;
    }
  }
  r.status = Status::error;
  r.error = error_;
  r.error_text = error_text_;
  return r;
}

RequestParser::Step RequestParser::parse_multibulk() {
  auto const avail = end_ - begin_;
  auto const line_limit = limits_.max_inline_bytes;
  if (remaining_ < 0) {
    auto const cr = find('\r');
    // A count line longer than the limit fails whether or not its '\r' has arrived.
    if ((cr == npos && avail > line_limit) || (cr != npos && cr > line_limit))
      return fail(ParseError::too_big_mbulk_count_string);
    if (cr == npos || cr + 2 > avail) return Step::need_more;  // '\r' and one more byte
    std::int64_t count = 0;
    if (!parse_integer({at(1), cr - 1}, count) || count > INT_MAX ||
        (count > 0 && static_cast<std::uint64_t>(count) > limits_.max_args))
      return fail(ParseError::invalid_multibulk_length);
    if (!authenticated_ && count > 0 &&
        static_cast<std::uint64_t>(count) > limits_.unauthenticated_max_args)
      return fail(ParseError::unauthenticated_multibulk_length);
    pos_ = scan_ = cr + 2;
    if (count <= 0) return Step::skip;
    remaining_ = count;
  }
  while (remaining_ > 0) {
    if (bulk_len_ < 0) {
      auto const cr = find('\r');
      if ((cr == npos && avail - pos_ > line_limit) || (cr != npos && cr - pos_ > line_limit))
        return fail(ParseError::too_big_bulk_count_string);
      if (cr == npos || cr + 2 > avail) return Step::need_more;
      if (char const c = *at(pos_); c != '$') {
        error_ = ParseError::expected_dollar;
        error_text_ = parse_error_text(error_);
        // Redis formats the byte with %c into a C string: a NUL ends the text there, and
        // CR or LF become spaces like in every error reply.
        if (c != '\0') error_text_.push_back(c == '\r' || c == '\n' ? ' ' : c);
        if (c != '\0') error_text_.push_back('\'');
        return Step::error;
      }
      std::int64_t len = 0;
      if (!parse_integer({at(pos_ + 1), cr - pos_ - 1}, len) || len < 0 ||
          static_cast<std::uint64_t>(len) > limits_.max_bulk_bytes)
        return fail(ParseError::invalid_bulk_length);
      if (!authenticated_ &&
          static_cast<std::uint64_t>(len) > limits_.unauthenticated_max_bulk_bytes)
        return fail(ParseError::unauthenticated_bulk_length);
      if (cr + 2 + static_cast<std::size_t>(len) + 2 > limits_.max_request_bytes)
        return fail(ParseError::too_big_request);
      pos_ = scan_ = cr + 2;
      bulk_len_ = len;
    }
    auto const len = static_cast<std::size_t>(bulk_len_);
    if (avail - pos_ < len + 2) return Step::need_more;
    args_.emplace_back(pos_, len);
    pos_ = scan_ = pos_ + len + 2;  // the trailing two bytes are skipped unchecked
    bulk_len_ = -1;
    --remaining_;
  }
  return Step::request;
}

RequestParser::Step RequestParser::parse_inline() {
  auto const avail = end_ - begin_;
  auto const lf = find('\n');
  if ((lf == npos && avail > limits_.max_inline_bytes) ||
      (lf != npos && lf > limits_.max_inline_bytes))
    return fail(ParseError::too_big_inline_request);
  if (lf == npos) return Step::need_more;
  std::size_t line_end = lf > 0 && *at(lf - 1) == '\r' ? lf - 1 : lf;
  // Redis splits the line as a C string: a NUL ends it.
  if (auto const* nul = static_cast<char const*>(std::memchr(at(0), '\0', line_end)))
    line_end = static_cast<std::size_t>(nul - at(0));
  pos_ = lf + 1;
  if (!split_inline(buf_.data() + begin_, line_end, args_))
    return fail(ParseError::unbalanced_quotes);
  return args_.empty() ? Step::skip : Step::request;
}

}  // namespace podrelay::resp_server
