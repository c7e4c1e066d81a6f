#include <doctest/doctest.h>

#include <chrono>

#include "util/lazy_spell.hpp"

using namespace std::chrono_literals;
using podrelay::util::lazy_spell_end;

namespace {
struct FakeClock {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<FakeClock, duration>;
};
FakeClock::time_point at(std::chrono::nanoseconds t) { return FakeClock::time_point(t); }
}  // namespace

TEST_CASE("a lazy spell ends between 7/8 of the window and the window, on a grid") {
  for (auto now : {0ns, 1ns, 624'999ns, 625'000ns, 625'001ns, 7'777'777ns}) {
    auto const end = lazy_spell_end<FakeClock>(at(now), 5ms);
    CHECK(end >= at(now) + 4375us);
    CHECK(end < at(now) + 5ms);
    CHECK(end.time_since_epoch() % 625us == 0ns);
  }
  // Two spells started a little apart in one wake-up end together.
  CHECK(lazy_spell_end<FakeClock>(at(1'000'000ns), 5ms) ==
        lazy_spell_end<FakeClock>(at(1'030'000ns), 5ms));
}

TEST_CASE("a window too short for a grid ends the spell after the window") {
  CHECK(lazy_spell_end<FakeClock>(at(5ns), 0ms) == at(5ns));
}
