// When a spell of lazy reads ends (redis/publisher.hpp, redis/subscriber.hpp): between 7/8
// of the window and the whole window from now, on a grid of eighths of the window, so that
// the spells of the publishing and the subscribing connection started in one wake-up (a few
// microseconds apart) end together and one timer wake-up reads both. Pure.
#pragma once

#include <chrono>

namespace podrelay::util {

template <class Clock>
typename Clock::time_point lazy_spell_end(typename Clock::time_point now,
                                          std::chrono::milliseconds window) noexcept {
  using Duration = typename Clock::duration;
  auto const whole = std::chrono::duration_cast<Duration>(window);
  auto const step = whole / 8;
  if (step.count() <= 0) return now + whole;
  // The first grid point at or after now + window - step: in [now + 7/8 window, now + window).
  auto const t = (now + whole - step).time_since_epoch();
  auto const ticks = (t + step - Duration(1)) / step;
  return typename Clock::time_point(ticks * step);
}

}  // namespace podrelay::util
