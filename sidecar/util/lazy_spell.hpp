// Spells of lazy reads (redis/publisher.hpp, redis/subscriber.hpp). lazy_spell_end (pure):
// when a spell ends, between 7/8 of the window and the whole window from now, on a grid of
// eighths of the window, so that the spells of the publishing and the subscribing connection
// started in one wake-up (a few microseconds apart) end together and one timer wake-up reads
// both. LazySpellTimer: the timer both links end their spells with.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <utility>

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

// start() arms the timer for a spell unless one is running; `on_end` runs when the spell's
// time is up, never after cancel() (its owner may be going). Single-threaded.
class LazySpellTimer {
 public:
  explicit LazySpellTimer(boost::asio::any_io_executor const& ex) : timer_(ex) {}

  template <class OnEnd>
  void start(std::chrono::milliseconds window, OnEnd on_end) {
    if (armed_) return;
    armed_ = true;
    timer_.expires_at(lazy_spell_end<Clock>(Clock::now(), window));
    timer_.async_wait([this, on_end = std::move(on_end)](boost::system::error_code ec) mutable {
      if (ec) return;  // cancelled: `this` may be going
      armed_ = false;
      on_end();
    });
  }
  void cancel() {
    armed_ = false;
    timer_.cancel();
  }

 private:
  using Clock = std::chrono::steady_clock;
  boost::asio::steady_timer timer_;
  bool armed_ = false;
};

}  // namespace podrelay::util
