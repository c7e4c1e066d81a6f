#include "core/channel_names.hpp"

namespace podrelay::core {

std::string escape_glob(std::string_view literal) {
  std::string out;
  out.reserve(literal.size());
  for (char const c : literal) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string ChannelNames::redis_channel(std::string_view app_channel) const {
  std::string out;
  out.reserve(prefix_.size() + app_channel.size());
  out.append(prefix_).append(app_channel);
  return out;
}

std::string ChannelNames::redis_pattern(std::string_view app_pattern) const {
  std::string out;
  out.reserve(pattern_prefix_.size() + app_pattern.size());
  out.append(pattern_prefix_).append(app_pattern);
  return out;
}

std::optional<std::string_view> ChannelNames::app_channel(std::string_view redis_channel) const {
  if (!redis_channel.starts_with(prefix_)) return std::nullopt;
  return redis_channel.substr(prefix_.size());
}

std::optional<std::string_view> ChannelNames::app_pattern(std::string_view redis_pattern) const {
  if (!redis_pattern.starts_with(pattern_prefix_)) return std::nullopt;
  return redis_pattern.substr(pattern_prefix_.size());
}

}  // namespace podrelay::core
