#include "util/log.hpp"

#include <cstdio>
#include <ctime>
#include <vector>

namespace podrelay::log {
namespace {

LogLevel g_level = LogLevel::info;
LogFormat g_format = LogFormat::text;

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
  auto const line = format_line(g_format, timestamp(), level, msg, fields);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void limited(RateLimit& limit, LogLevel level, std::string_view msg, Fields fields) {
  std::size_t suppressed = 0;
  if (!limit.allow(suppressed)) return;
  std::vector<Field> all(fields.begin(), fields.end());
  all.emplace_back("suppressed", suppressed);
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
