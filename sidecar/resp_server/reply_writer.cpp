#include "resp_server/reply_writer.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace podrelay::resp_server {
namespace {

void append_header(std::string& out, char type, std::int64_t n) {
  char buf[24];
  buf[0] = type;
  auto const r = std::to_chars(buf + 1, buf + sizeof(buf) - 2, n);
  r.ptr[0] = '\r';
  r.ptr[1] = '\n';
  out.append(buf, static_cast<std::size_t>(r.ptr + 2 - buf));
}

std::size_t digits(std::size_t n) noexcept {
  char buf[24];
  return static_cast<std::size_t>(std::to_chars(buf, buf + sizeof(buf), n).ptr - buf);
}

std::size_t bulk_size(std::size_t n) noexcept { return 1 + digits(n) + 2 + n + 2; }

std::string_view subscribed_verb(SubKind kind) noexcept {
  switch (kind) {
    case SubKind::channel: return "subscribe";
    case SubKind::pattern: return "psubscribe";
    case SubKind::shard: return "ssubscribe";
  }
  return {};
}

std::string_view unsubscribed_verb(SubKind kind) noexcept {
  switch (kind) {
    case SubKind::channel: return "unsubscribe";
    case SubKind::pattern: return "punsubscribe";
    case SubKind::shard: return "sunsubscribe";
  }
  return {};
}

}  // namespace

void append_simple(std::string& out, std::string_view s) {
  out.push_back('+');
  out.append(s);
  out.append("\r\n");
}

void append_error(std::string& out, std::string_view text) {
  out.push_back('-');
  auto const at = out.size();
  out.append(text);
  for (auto i = at; i < out.size(); ++i)
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  out.append("\r\n");
}

void append_integer(std::string& out, std::int64_t v) { append_header(out, ':', v); }

void append_bulk(std::string& out, std::string_view s) {
  append_header(out, '$', static_cast<std::int64_t>(s.size()));
  out.append(s);
  out.append("\r\n");
}

void append_null(std::string& out, Protocol p) {
  out.append(p == Protocol::resp3 ? "_\r\n" : "$-1\r\n");
}

void append_null_array(std::string& out, Protocol p) {
  out.append(p == Protocol::resp3 ? "_\r\n" : "*-1\r\n");
}

void append_array_header(std::string& out, std::size_t n) {
  append_header(out, '*', static_cast<std::int64_t>(n));
}

void append_push_header(std::string& out, Protocol p, std::size_t n) {
  append_header(out, p == Protocol::resp3 ? '>' : '*', static_cast<std::int64_t>(n));
}

void append_map_header(std::string& out, Protocol p, std::size_t pairs) {
  if (p == Protocol::resp3)
    append_header(out, '%', static_cast<std::int64_t>(pairs));
  else
    append_header(out, '*', static_cast<std::int64_t>(2 * pairs));
}

void append_set_header(std::string& out, Protocol p, std::size_t n) {
  append_header(out, p == Protocol::resp3 ? '~' : '*', static_cast<std::int64_t>(n));
}

void append_bool(std::string& out, Protocol p, bool v) {
  if (p == Protocol::resp3)
    out.append(v ? "#t\r\n" : "#f\r\n");
  else
    out.append(v ? ":1\r\n" : ":0\r\n");
}

void append_double(std::string& out, Protocol p, double v) {
  // Redis 7.0 (addReplyDouble): "inf", "-inf", "nan" and %.17g otherwise.
  char buf[32];
  std::string_view text;
  if (std::isinf(v)) {
    text = v > 0 ? "inf" : "-inf";
  } else if (std::isnan(v)) {
    text = "nan";
  } else {
    int const n = std::snprintf(buf, sizeof(buf), "%.17g", v);
    text = std::string_view(buf, static_cast<std::size_t>(n));
  }
  if (p == Protocol::resp3) {
    out.push_back(',');
    out.append(text);
    out.append("\r\n");
  } else {
    append_bulk(out, text);
  }
}

void append_verbatim(std::string& out, Protocol p, std::string_view text) {
  if (p != Protocol::resp3) {
    append_bulk(out, text);
    return;
  }
  append_header(out, '=', static_cast<std::int64_t>(text.size() + 4));
  out.append("txt:");
  out.append(text);
  out.append("\r\n");
}

std::size_t message_size(std::string_view pattern, std::string_view channel,
                         std::string_view payload, bool sharded) noexcept {
  std::size_t n = 4;  // "*3\r\n" or "*4\r\n"
  if (pattern.empty()) {
    n += bulk_size(sharded ? 8 : 7);
  } else {
    n += bulk_size(8) + bulk_size(pattern.size());
  }
  return n + bulk_size(channel.size()) + bulk_size(payload.size());
}

void append_message(std::string& out, Protocol p, std::string_view channel,
                    std::string_view payload) {
  out.reserve(out.size() + message_size({}, channel, payload, false));
  append_push_header(out, p, 3);
  append_bulk(out, "message");
  append_bulk(out, channel);
  append_bulk(out, payload);
}

void append_pmessage(std::string& out, Protocol p, std::string_view pattern,
                     std::string_view channel, std::string_view payload) {
  out.reserve(out.size() + message_size(pattern, channel, payload, false));
  append_push_header(out, p, 4);
  append_bulk(out, "pmessage");
  append_bulk(out, pattern);
  append_bulk(out, channel);
  append_bulk(out, payload);
}

void append_smessage(std::string& out, Protocol p, std::string_view channel,
                     std::string_view payload) {
  out.reserve(out.size() + message_size({}, channel, payload, true));
  append_push_header(out, p, 3);
  append_bulk(out, "smessage");
  append_bulk(out, channel);
  append_bulk(out, payload);
}

void append_subscribed(std::string& out, Protocol p, SubKind kind, std::string_view name,
                       std::int64_t count) {
  append_push_header(out, p, 3);
  append_bulk(out, subscribed_verb(kind));
  append_bulk(out, name);
  append_integer(out, count);
}

void append_unsubscribed(std::string& out, Protocol p, SubKind kind,
                         std::optional<std::string_view> name, std::int64_t count) {
  append_push_header(out, p, 3);
  append_bulk(out, unsubscribed_verb(kind));
  if (name)
    append_bulk(out, *name);
  else
    append_null(out, p);
  append_integer(out, count);
}

}  // namespace podrelay::resp_server
