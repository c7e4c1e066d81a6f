#include "core/durable_channels.hpp"

#include <algorithm>

#include "core/glob.hpp"

namespace podrelay::core {

DurableChannels::DurableChannels(std::string prefix, Options options)
    : prefix_(std::move(prefix)), options_(std::move(options)) {}

bool DurableChannels::is_durable(std::string_view app_channel) const noexcept {
  return std::any_of(options_.patterns.begin(), options_.patterns.end(),
                     [&](std::string const& p) { return glob_match(p, app_channel); });
}

std::optional<std::string_view> DurableChannels::durable_app_channel(
    std::string_view redis_channel) const {
  if (!enabled() || !redis_channel.starts_with(prefix_)) return std::nullopt;
  auto const app = redis_channel.substr(prefix_.size());
  if (!is_durable(app)) return std::nullopt;
  return app;
}

std::string DurableChannels::stream_key(std::string_view app_channel) const {
  std::string out;
  out.reserve(prefix_.size() + app_channel.size() + 2);
  out.append(prefix_).append("{").append(app_channel).append("}");
  return out;
}

std::string DurableChannels::epoch_key(std::string_view app_channel) const {
  return stream_key(app_channel) + ":epoch";
}

std::string DurableChannels::wake_channel(std::string_view app_channel) const {
  return stream_key(app_channel) + ":wake";
}

std::optional<std::string_view> DurableChannels::app_of_wake(std::string_view redis_name) const {
  constexpr std::string_view tail = "}:wake";
  if (!enabled() || redis_name.size() < prefix_.size() + 1 + tail.size() ||
      !redis_name.starts_with(prefix_) || redis_name[prefix_.size()] != '{' ||
      !redis_name.ends_with(tail)) {
    return std::nullopt;
  }
  auto const app =
      redis_name.substr(prefix_.size() + 1, redis_name.size() - prefix_.size() - 1 - tail.size());
  if (!is_durable(app)) return std::nullopt;
  return app;
}

bool DurableChannels::ttl_refresh_due(std::string_view app_channel, Clock::time_point now) {
  auto const it = refreshed_.find(app_channel);
  if (it != refreshed_.end()) {
    if (now - it->second < options_.ttl / 4) return false;
    it->second = now;
    return true;
  }
  if (refreshed_.size() >= options_.ttl_cache_entries) refreshed_.clear();
  refreshed_.emplace(std::string(app_channel), now);
  return true;
}

}  // namespace podrelay::core
