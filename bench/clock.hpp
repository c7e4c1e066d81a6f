// The one clock of the bench: steady, nanoseconds. Payload timestamps use it too, which is
// valid in every process of the bench (CLOCK_MONOTONIC), so a subscriber process of its
// own (SubscriberProcess) reads the publisher's stamps on the same clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace bench {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

inline double seconds_between(Clock::time_point a, Clock::time_point b) noexcept {
  return std::chrono::duration_cast<Seconds>(b - a).count();
}

}  // namespace bench
