#include <doctest/doctest.h>

#include "core/publish_queue.hpp"

using namespace podrelay::core;
using Q = PublishQueue<int>;
using namespace std::chrono_literals;

TEST_CASE("commands coalesce into one write and replies match them in order") {
  Q q(1000, 10s);
  auto const t0 = Q::Clock::now();
  CHECK(q.push("AAA", 1, t0));
  CHECK(q.push("BB", 2, t0));
  std::string out;
  q.take_unwritten(out, t0);
  CHECK(out == "AAABB");
  CHECK(q.in_flight_count() == 2);
  CHECK(q.bytes() == 5);
  Q::Item item;
  REQUIRE(q.on_reply(item));
  CHECK(item.tag == 1);
  REQUIRE(q.on_reply(item));
  CHECK(item.tag == 2);
  CHECK_FALSE(q.on_reply(item));
  CHECK(q.bytes() == 0);
  CHECK(q.empty());
}

TEST_CASE("the byte bound refuses without queueing") {
  Q q(5, 10s);
  auto const t0 = Q::Clock::now();
  CHECK(q.push("AAA", 1, t0));
  CHECK_FALSE(q.push("BBB", 2, t0));
  CHECK(q.push("CC", 3, t0));
  CHECK(q.unwritten_count() == 2);
  CHECK(q.bytes() == 5);
}

TEST_CASE("a broken connection returns what was in flight; unwritten commands stay") {
  Q q(100, 10s);
  auto const t0 = Q::Clock::now();
  q.push("A", 1, t0);
  std::string out;
  q.take_unwritten(out, t0);
  q.push("B", 2, t0);
  auto const lost = q.on_disconnect();
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].tag == 1);
  CHECK(q.unwritten_count() == 1);
  CHECK(q.bytes() == 1);
  q.take_unwritten(out, t0);
  CHECK(out == "B");
}

TEST_CASE("unwritten commands expire after the timeout, oldest first") {
  Q q(100, 1s);
  auto const t0 = Q::Clock::now();
  q.push("A", 1, t0);
  q.push("B", 2, t0 + 500ms);
  CHECK(q.next_expiry() == t0 + 1s);
  CHECK(q.expire(t0 + 999ms).empty());
  auto const expired = q.expire(t0 + 1s);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].tag == 1);
  CHECK(q.bytes() == 1);
  std::string out;
  q.take_unwritten(out, t0);
  CHECK(out == "B");  // the expired command's bytes are gone from the buffer
}

TEST_CASE("drain_all returns everything and empties the queue") {
  Q q(100, 1s);
  auto const t0 = Q::Clock::now();
  q.push("A", 1, t0);
  std::string out;
  q.take_unwritten(out, t0);
  q.push("B", 2, t0);
  CHECK(q.drain_all().size() == 2);
  CHECK(q.empty());
  CHECK(q.bytes() == 0);
}

TEST_CASE("unwritten commands can be taken out to move them elsewhere") {
  Q q(100, 1s);
  auto const t0 = Q::Clock::now();
  q.push("A", 1, t0);
  std::string out;
  q.take_unwritten(out, t0);
  q.push("BB", 2, t0);
  auto const moved = q.take_unwritten_items();
  REQUIRE(moved.size() == 1);
  CHECK(moved[0].tag == 2);
  CHECK(q.bytes() == 1);  // only the one in flight
  CHECK_FALSE(q.has_unwritten());
}

TEST_CASE("awaited commands are counted from push to reply, expiry, move or disconnect") {
  Q q(100, 1s);
  auto const t0 = Q::Clock::now();
  q.push("A", 1, t0, true);
  q.push("B", 2, t0);
  CHECK(q.awaited() == 1);
  std::string out;
  q.take_unwritten(out, t0, true);
  CHECK(q.awaited() == 1);  // written, still owed a reply
  Q::Item item;
  REQUIRE(q.on_reply(item));
  CHECK(item.awaited);
  CHECK(item.lazy);
  CHECK(q.awaited() == 0);
  REQUIRE(q.on_reply(item));
  CHECK_FALSE(item.awaited);

  q.push("C", 3, t0, true);
  CHECK(q.expire(t0 + 1s).size() == 1);
  CHECK(q.awaited() == 0);

  q.push("D", 4, t0 + 1s, true);
  CHECK(q.take_unwritten_items().size() == 1);
  CHECK(q.awaited() == 0);

  q.push("E", 5, t0 + 1s, true);
  q.take_unwritten(out, t0 + 1s);
  q.push("F", 6, t0 + 1s, true);
  CHECK(q.on_disconnect().size() == 1);
  CHECK(q.awaited() == 1);  // F is still to be written
  q.take_unwritten(out, t0 + 1s);
  REQUIRE(q.on_reply(item));
  CHECK_FALSE(item.lazy);
  CHECK(q.awaited() == 0);
  q.push("G", 7, t0 + 1s, true);
  CHECK(q.drain_all().size() == 1);
  CHECK(q.awaited() == 0);
}
