// When a spell of lazy reads ends (redis/publisher.hpp, redis/subscriber.hpp): between half
// the window and the whole window from now, on a grid of half windows, so that the spells
// of the publishing and the subscribing connection started in one wake-up end together and
// one timer wake-up reads both. Pure.
#pragma once

#include <chrono>

namespace podrelay::util {

template <class Clock>
typename Clock::time_point lazy_spell_end(typename Clock::time_point now,
                                          std::chrono::milliseconds window) noexcept {
  using Duration = typename Clock::duration;
  auto const half = std::chrono::duration_cast<Duration>(window) / 2;
  if (half.count() <= 0) return now + std::chrono::duration_cast<Duration>(window);
  // The first grid point at or after now + half: in [now + half, now + window).
  auto const t = (now + half).time_since_epoch();
  auto const ticks = (t + half - Duration(1)) / half;
  return typename Clock::time_point(ticks * half);
}

}  // namespace podrelay::util
