#include "util/log.hpp"

#include <array>
#include <charconv>

namespace podrelay::log {
namespace {

std::string_view level_name(LogLevel l) {
  switch (l) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "info";
}

void json_escape(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char const c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Non-ASCII bytes are escaped one by one: names are binary, logs stay valid JSON.
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

// Text values with spaces or odd bytes are quoted so a line stays machine-splittable.
void text_value(std::string& out, std::string_view s) {
  bool plain = !s.empty();
  for (unsigned char const c : s) plain = plain && c > 0x20 && c < 0x7f && c != '"' && c != '=';
  if (plain) {
    out += s;
    return;
  }
  out += '"';
  json_escape(out, s);
  out += '"';
}

}  // namespace

void Field::append_value(std::string& out) const {
  if (kind_ == Kind::text) {
    out += text_;
    return;
  }
  std::array<char, 24> digits{};
  auto const [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), magnitude_);
  (void)ec;  // 24 bytes hold any 64-bit value
  if (kind_ == Kind::negative) out += '-';
  out.append(digits.data(), end);
}

std::string format_line(LogFormat format, std::string_view ts, LogLevel level, std::string_view msg,
                        std::span<Field const> fields) {
  std::string line;
  line.reserve(128);
  if (format == LogFormat::json) {
    line += "{\"ts\":\"";
    line += ts;
    line += "\",\"level\":\"";
    line += level_name(level);
    line += "\",\"msg\":\"";
    json_escape(line, msg);
    line += '"';
    for (auto const& f : fields) {
      line += ",\"";
      json_escape(line, f.key());
      line += "\":";
      if (f.is_number()) {
        f.append_value(line);
        continue;
      }
      line += '"';
      json_escape(line, f.text());
      line += '"';
    }
    line += "}\n";
  } else {
    line += ts;
    line += ' ';
    line += level_name(level);
    line += ' ';
    line += msg;
    for (auto const& f : fields) {
      line += ' ';
      line += f.key();
      line += '=';
      if (f.is_number()) {
        f.append_value(line);
      } else {
        text_value(line, f.text());
      }
    }
    line += '\n';
  }
  return line;
}

}  // namespace podrelay::log
