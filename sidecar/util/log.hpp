// Structured logging to stderr as text or JSON lines. Messages carry key/value fields;
// callers never pass secrets (URLs go through config::redact). Single-threaded use.
#pragma once

#include <chrono>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace podrelay::log {

using Field = std::pair<std::string_view, std::string_view>;
using Fields = std::initializer_list<Field>;
enum class LogLevel { debug, info, warn, error };
enum class LogFormat { text, json };

void configure(LogLevel level, LogFormat format);
bool enabled(LogLevel level) noexcept;
void write(LogLevel level, std::string_view msg, Fields fields = {});
void write(LogLevel level, std::string_view msg, std::span<Field const> fields);

inline void debug(std::string_view msg, Fields f = {}) {
  if (enabled(LogLevel::debug)) write(LogLevel::debug, msg, f);
}
inline void info(std::string_view msg, Fields f = {}) { write(LogLevel::info, msg, f); }
inline void warn(std::string_view msg, Fields f = {}) { write(LogLevel::warn, msg, f); }
inline void error(std::string_view msg, Fields f = {}) { write(LogLevel::error, msg, f); }

// Lets a repeated warning through at most once per interval and reports how many were
// suppressed in between, so a flood of bad clients cannot flood the log.
class RateLimit {
 public:
  explicit RateLimit(std::chrono::milliseconds interval = std::chrono::seconds(1))
      : interval_(interval) {}
  // True when this occurrence should be logged; `suppressed` is set to the count skipped.
  bool allow(std::size_t& suppressed);

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_{};
  std::size_t skipped_ = 0;
};

// Logs at most once per `limit`'s interval, with a "suppressed" field counting the skipped.
void limited(RateLimit& limit, LogLevel level, std::string_view msg, Fields fields = {});
inline void warn_limited(RateLimit& limit, std::string_view msg, Fields fields = {}) {
  limited(limit, LogLevel::warn, msg, fields);
}
inline void error_limited(RateLimit& limit, std::string_view msg, Fields fields = {}) {
  limited(limit, LogLevel::error, msg, fields);
}

}  // namespace podrelay::log
