#include <doctest/doctest.h>

#include <deque>
#include <memory>
#include <random>

#include "core/ring.hpp"

using podrelay::core::Ring;

TEST_CASE("a ring is a FIFO across wrap-around and growth") {
  Ring<int> r;
  std::deque<int> model;
  std::mt19937 rng(7);
  int next = 0;
  for (int step = 0; step < 20000; ++step) {
    auto const op = rng() % 7;
    if (op < 4 || model.empty()) {
      r.push_back(next);
      model.push_back(next++);
    } else if (op < 6) {
      CHECK(r.front() == model.front());
      r.pop_front();
      model.pop_front();
    } else {
      CHECK(r.back() == model.back());
      r.pop_back();
      model.pop_back();
    }
    REQUIRE(r.size() == model.size());
    if (step % 97 == 0) {
      for (std::size_t i = 0; i < model.size(); ++i) REQUIRE(r[i] == model[i]);
    }
  }
  CHECK((r.capacity() & (r.capacity() - 1)) == 0);  // a power of two
}

TEST_CASE("a ring keeps its storage and releases what it pops") {
  Ring<std::shared_ptr<int>> r;
  auto const held = std::make_shared<int>(1);
  for (int i = 0; i < 40; ++i) r.push_back(held);
  auto const capacity = r.capacity();
  CHECK(held.use_count() == 41);
  r.pop_front();
  r.pop_back();
  CHECK(held.use_count() == 39);  // popped slots hold nothing
  auto taken = r.take_front();
  CHECK(taken == held);
  CHECK(held.use_count() == 39);  // moved out, not copied
  taken.reset();
  CHECK(r.size() == 37);
  r.clear();
  CHECK(r.empty());
  CHECK(held.use_count() == 1);
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 40; ++i) r.push_back(held);
    while (!r.empty()) r.pop_front();
  }
  CHECK(r.capacity() == capacity);  // a steady stream does not grow it
}
