// The one clock of the bench: steady, nanoseconds. Payload timestamps use it too, which is
// valid because publisher and subscriber live in the same process.
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
