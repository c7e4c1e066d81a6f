// Mapping between the names apps use and the names on Redis: the channel prefix is
// prepended to channels, and prepended with its glob characters escaped to patterns, so a
// prefix such as "app[1]:" cannot widen what a pattern matches. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace podrelay::core {

// "*", "?", "[", "]" and "\" get a backslash, as Redis' stringmatchlen() expects.
std::string escape_glob(std::string_view literal);

class ChannelNames {
 public:
  explicit ChannelNames(std::string prefix)
      : prefix_(std::move(prefix)), pattern_prefix_(escape_glob(prefix_)) {}

  std::string redis_channel(std::string_view app_channel) const;
  std::string redis_pattern(std::string_view app_pattern) const;

  // The app-facing name of a Redis channel or pattern; nullopt when it does not carry our
  // prefix (a message we never asked for).
  std::optional<std::string_view> app_channel(std::string_view redis_channel) const;
  std::optional<std::string_view> app_pattern(std::string_view redis_pattern) const;

  std::string const& prefix() const noexcept { return prefix_; }

 private:
  std::string prefix_;
  std::string pattern_prefix_;
};

}  // namespace podrelay::core
