#include "util/log.hpp"

#include <vector>

#include <cstdio>
#include <ctime>

namespace podrelay::log {
namespace {

LogLevel g_level = LogLevel::info;
LogFormat g_format = LogFormat::text;

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

std::string timestamp() {
  auto const now = std::chrono::system_clock::now();
  auto const t = std::chrono::system_clock::to_time_t(now);
  auto const ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

void configure(LogLevel level, LogFormat format) {
  g_level = level;
  g_format = format;
}

bool enabled(LogLevel level) noexcept { return level >= g_level; }

void write(LogLevel level, std::string_view msg, Fields fields) {
  write(level, msg, std::span<Field const>(fields.begin(), fields.size()));
}

void write(LogLevel level, std::string_view msg, std::span<Field const> fields) {
  if (!enabled(level)) return;
  std::string line;
  line.reserve(128);
  if (g_format == LogFormat::json) {
    line += "{\"ts\":\"" + timestamp() + "\",\"level\":\"";
    line += level_name(level);
    line += "\",\"msg\":\"";
    json_escape(line, msg);
    line += '"';
    for (auto const& [k, v] : fields) {
      line += ",\"";
      json_escape(line, k);
      line += "\":\"";
      json_escape(line, v);
      line += '"';
    }
    line += "}\n";
  } else {
    line += timestamp();
    line += ' ';
    line += level_name(level);
    line += ' ';
    line += msg;
    for (auto const& [k, v] : fields) {
      line += ' ';
      line += k;
      line += '=';
      text_value(line, v);
    }
    line += '\n';
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void limited(RateLimit& limit, LogLevel level, std::string_view msg, Fields fields) {
  std::size_t suppressed = 0;
  if (!limit.allow(suppressed)) return;
  std::vector<Field> all(fields.begin(), fields.end());
  auto const count = std::to_string(suppressed);
  all.emplace_back("suppressed", count);
  write(level, msg, all);
}

bool RateLimit::allow(std::size_t& suppressed) {
  auto const now = std::chrono::steady_clock::now();
  if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < interval_) {
    ++skipped_;
    return false;
  }
  last_ = now;
  suppressed = skipped_;
  skipped_ = 0;
  return true;
}

}  // namespace podrelay::log
