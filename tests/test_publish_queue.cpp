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

TEST_CASE("an unwritten command expires behind commands in flight, which keep their order") {
  Q q(100, 1s);
  auto const t0 = Q::Clock::now();
  std::string out;
  for (int i = 1; i <= 3; ++i) q.push("F", i, t0);
  q.take_unwritten(out, t0);  // 1..3 in flight
  q.push("x", 4, t0);
  q.push("yy", 5, t0);
  q.push("zzz", 6, t0 + 900ms);
  auto const expired = q.expire(t0 + 1s);
  REQUIRE(expired.size() == 2);
  CHECK(expired[0].tag == 4);
  CHECK(expired[1].tag == 5);
  CHECK(q.in_flight_count() == 3);
  CHECK(q.unwritten_count() == 1);
  CHECK(q.bytes() == 6);
  CHECK(q.next_expiry() == t0 + 900ms + 1s);
  q.take_unwritten(out, t0 + 1s);
  CHECK(out == "zzz");
  Q::Item item;
  for (int want : {1, 2, 3, 6}) {
    REQUIRE(q.on_reply(item));
    CHECK(item.tag == want);
  }
  CHECK(q.empty());
}

TEST_CASE("a long steady stream through the queue keeps replies matched") {
  Q q(1 << 20, 10s);
  auto const t0 = Q::Clock::now();
  std::string out;
  int next_push = 0, next_reply = 0;
  for (int round = 0; round < 500; ++round) {
    for (int i = 0; i < round % 37 + 1; ++i) q.push("c", next_push++, t0);
    q.take_unwritten(out, t0);
    Q::Item item;
    while (q.in_flight_count() > static_cast<std::size_t>(round % 5) && q.on_reply(item)) {
      REQUIRE(item.tag == next_reply++);
    }
  }
  CHECK(q.bytes() == static_cast<std::size_t>(next_push - next_reply));
}

TEST_CASE("oldest_in_flight() is the command whose reply comes next") {
  Q q(100, 10s);
  auto const t0 = Q::Clock::now();
  CHECK(q.oldest_in_flight() == nullptr);
  q.push("A", 1, t0);
  CHECK(q.oldest_in_flight() == nullptr);  // not written yet
  std::string out;
  q.take_unwritten(out, t0);
  q.push("B", 2, t0);
  REQUIRE(q.oldest_in_flight() != nullptr);
  CHECK(*q.oldest_in_flight() == 1);
  q.take_unwritten(out, t0);
  Q::Item item;
  q.on_reply(item);
  CHECK(*q.oldest_in_flight() == 2);
  q.on_reply(item);
  CHECK(q.oldest_in_flight() == nullptr);
}
