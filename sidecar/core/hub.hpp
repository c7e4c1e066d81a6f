// The hub routes messages from Redis to the local sessions that subscribed to them.
// It maps channel -> subscribers and pattern -> subscribers and keeps the reference counts
// that decide when this pod subscribes to, or unsubscribes from, Redis.
// Sans-I/O, single-threaded: owned by the relay and used only from its io_context thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace podrelay::core {

// One encoded frame shared, immutable, by every receiver of a fan-out.
using SharedFrame = std::shared_ptr<std::string const>;

enum class SubKind { channel, pattern };

// A local receiver of messages (a session). deliver() must not call back into the hub
// (it may not subscribe or unsubscribe synchronously): the hub is iterating.
class Subscriber {
 public:
  virtual void deliver(SharedFrame const& frame) = 0;

 protected:
  Subscriber() = default;
  Subscriber(Subscriber const&) = default;
  Subscriber& operator=(Subscriber const&) = default;
  ~Subscriber() = default;
};

// Heterogeneous lookup so a string_view from a Redis reply finds its entry without a copy.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

class Hub {
 public:
  // Adds `sub` to `name`; the caller guarantees it was not already there (sessions keep
  // their own set). Returns true when `sub` is the first local subscriber: time for the
  // Redis SUBSCRIBE / PSUBSCRIBE.
  bool subscribe(SubKind kind, std::string_view name, Subscriber* sub);

  // Removes `sub` from `name`. Returns true when it was the last local subscriber: time for
  // the Redis UNSUBSCRIBE / PUNSUBSCRIBE. Unknown pairs return false.
  bool unsubscribe(SubKind kind, std::string_view name, Subscriber* sub);

  // Hands `frame` to every subscriber of `name`; returns how many received it.
  std::size_t deliver(SubKind kind, std::string_view name, SharedFrame const& frame) const;

  std::size_t subscriber_count(SubKind kind, std::string_view name) const;
  // Distinct names with at least one local subscriber (= Redis subscriptions wanted).
  std::size_t name_count(SubKind kind) const { return map(kind).size(); }
  // Sum over names of their local subscribers.
  std::size_t subscription_count(SubKind kind) const {
    return kind == SubKind::channel ? channel_subs_ : pattern_subs_;
  }

 private:
  using Map =
      std::unordered_map<std::string, std::vector<Subscriber*>, StringHash, std::equal_to<>>;
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
