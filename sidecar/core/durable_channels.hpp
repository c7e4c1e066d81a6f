// Which channels are durable (the operator's --durable globs over app channel names) and
// where a durable channel lives on Redis: the stream `<prefix>{<channel>}` and its epoch
// key `<prefix>{<channel>}:epoch` (the hash tag is the channel, so both share a cluster
// slot; on a cluster, so does its wake channel `<prefix>{<channel>}:wake`). Also the bounded cache
// that spaces out the TTL refreshes of each stream. Sans-I/O; single-threaded (owned by the relay).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/hub.hpp"

namespace podrelay::core {

class DurableChannels {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::vector<std::string> patterns;  // globs over app channel names; empty: none durable
    std::size_t max_len = 10'000;
    std::chrono::seconds ttl{86'400};
    std::size_t min_replicas = 0;
    std::size_t ttl_cache_entries = 65'536;  // channels whose last refresh is remembered
  };

  DurableChannels(std::string prefix, Options options);

  bool enabled() const noexcept { return !options_.patterns.empty(); }
  Options const& options() const noexcept { return options_; }
  std::string const& prefix() const noexcept { return prefix_; }

  bool is_durable(std::string_view app_channel) const noexcept;
  // The app channel of a Redis channel name (`<prefix><channel>`) when it is durable.
  std::optional<std::string_view> durable_app_channel(std::string_view redis_channel) const;

  std::string stream_key(std::string_view app_channel) const;
  std::string epoch_key(std::string_view app_channel) const;
  // Redis Cluster: the shard channel `<prefix>{<channel>}:wake` a durable publish also
  // sends the new id on (same slot as the stream), and its inverse: the app channel of a
  // wake channel name, when it is one of a durable channel.
  std::string wake_channel(std::string_view app_channel) const;
  std::optional<std::string_view> app_of_wake(std::string_view redis_name) const;

  // True when the stream of `app_channel` should get its EXPIRE refreshed with this
  // publish: never refreshed by this pod, or last refreshed more than ttl/4 ago. The
  // cache is bounded: when full it is forgotten as a whole (the next publishes on each
  // channel refresh once more, which is harmless).
  bool ttl_refresh_due(std::string_view app_channel, Clock::time_point now);

 private:
  std::string prefix_;
  Options options_;
  std::unordered_map<std::string, Clock::time_point, StringHash, std::equal_to<>> refreshed_;
};

}  // namespace podrelay::core
