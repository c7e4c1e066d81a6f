// Structured logging to stderr as text or JSON lines. Messages carry key/value fields;
// callers never pass secrets (URLs go through config::redact). Single-threaded use.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace podrelay::log {

// One key and value of a log line: text, or an integer (a JSON number in JSON lines; text
// lines show both alike). Views only: the text must outlive the write.
class Field {
 public:
  Field(std::string_view key, std::string_view text) noexcept : key_(key), text_(text) {}
  Field(std::string_view key, std::string const& text) noexcept : key_(key), text_(text) {}
  Field(std::string_view key, char const* text) noexcept : key_(key), text_(text) {}
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) Field(std::string_view key, T number)
  noexcept : key_(key) {
    if constexpr (std::is_signed_v<T>) {
      kind_ = number < 0 ? Kind::negative : Kind::number;
      magnitude_ =
          number < 0 ? 0 - static_cast<std::uint64_t>(number) : static_cast<std::uint64_t>(number);
    } else {
      kind_ = Kind::number;
      magnitude_ = number;
    }
  }

  std::string_view key() const noexcept { return key_; }
  bool is_number() const noexcept { return kind_ != Kind::text; }
  // Appends the value as text (digits, with a '-' when negative, for a number).
  void append_value(std::string& out) const;
  std::string_view text() const noexcept { return text_; }  // a text value

 private:
  enum class Kind : unsigned char { text, number, negative };
  std::string_view key_;
  std::string_view text_;
  std::uint64_t magnitude_ = 0;
  Kind kind_ = Kind::text;
};
using Fields = std::initializer_list<Field>;
enum class LogLevel { debug, info, warn, error };
enum class LogFormat { text, json };

void configure(LogLevel level, LogFormat format);
bool enabled(LogLevel level) noexcept;
void write(LogLevel level, std::string_view msg, Fields fields = {});
void write(LogLevel level, std::string_view msg, std::span<Field const> fields);
// The line write() prints (sans-I/O, for tests): `ts` first, the newline included.
std::string format_line(LogFormat format, std::string_view ts, LogLevel level, std::string_view msg,
                        std::span<Field const> fields);

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
