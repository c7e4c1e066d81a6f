// The hub routes messages from Redis to the local receivers that subscribed to them. It
// maps Redis channel -> receivers and Redis pattern -> receivers (Redis names, so receivers
// of every protocol share one entry) and tells its owner when a name gains its first or
// loses its last receiver. Sans-I/O, single-threaded: owned by the subscriptions core.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/receiver.hpp"
#include "core/sub_kind.hpp"

namespace podrelay::core {

// Heterogeneous lookup so a string_view from a Redis reply finds its entry without a copy.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

class Hub {
 public:
  // Adds `r` to `name`; the caller guarantees it was not already there. Returns true when
  // `r` is the first local receiver: time for the Redis SUBSCRIBE / PSUBSCRIBE.
  bool subscribe(SubKind kind, std::string_view name, Receiver* r);

  // Removes `r` from `name`. Returns true when it was the last local receiver: time for the
  // Redis UNSUBSCRIBE / PUNSUBSCRIBE. Unknown pairs return false.
  bool unsubscribe(SubKind kind, std::string_view name, Receiver* r);

  // Hands `message` to every receiver of `name`; returns how many queued it.
  std::size_t deliver(SubKind kind, std::string_view name, Delivery& message) const;

  std::size_t receiver_count(SubKind kind, std::string_view name) const;
  // The receivers of `name` (a copy: callers may unsubscribe while walking it).
  std::vector<Receiver*> receivers(SubKind kind, std::string_view name) const;
  // Distinct names with at least one local receiver (= Redis subscriptions wanted).
  std::size_t name_count(SubKind kind) const { return map(kind).size(); }
  // Sum over names of their local receivers.
  std::size_t subscription_count(SubKind kind) const {
    return kind == SubKind::channel ? channel_subs_ : pattern_subs_;
  }

 private:
  using Map = std::unordered_map<std::string, std::vector<Receiver*>, StringHash, std::equal_to<>>;
  Map& map(SubKind kind) { return kind == SubKind::channel ? channels_ : patterns_; }
  Map const& map(SubKind kind) const { return kind == SubKind::channel ? channels_ : patterns_; }
  std::size_t& counter(SubKind kind) {
    return kind == SubKind::channel ? channel_subs_ : pattern_subs_;
  }

  Map channels_;
  Map patterns_;
  std::size_t channel_subs_ = 0;
  std::size_t pattern_subs_ = 0;
};

}  // namespace podrelay::core
