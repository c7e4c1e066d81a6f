// Durable channels on Redis Cluster without I/O: which streams to read after wake-ups,
// confirmations, failures and slot moves (core::StreamPolls), step by step.
#include <doctest/doctest.h>

#include "core/stream_polls.hpp"

using namespace podrelay::core;

namespace {
StreamId id(char const* text) { return *StreamId::parse(text); }
std::vector<std::string> channels(std::vector<StreamPolls::Ticket> const& tickets) {
  std::vector<std::string> out;
  for (auto const& t : tickets) out.push_back(t.channel);
  return out;
}
}  // namespace

TEST_CASE("a new channel is confirmed once its position is known, then read on wake-ups") {
  StreamPolls p;
  CHECK_FALSE(p.on_wake_confirmed("c", "{c}"));  // position unknown: confirm later
  p.on_wake("c");                                // a wake-up before the position: kept
  auto const fetch = p.take_fetches();
  REQUIRE(channels(fetch) == std::vector<std::string>{"c"});
  CHECK(p.take_fetches().empty());  // once
  CHECK(p.take_reads().empty());    // nothing to read before the position
  CHECK(p.set_position(fetch[0], id("5-0")));
  CHECK(p.position("c") == id("5-0"));
  auto reads = p.take_reads();
  REQUIRE(channels(reads) == std::vector<std::string>{"c"});
  CHECK(p.take_reads().empty());                // one read in flight per channel
  p.on_wake("c");                               // arrives while reading: read again after it
  CHECK_FALSE(p.advance(reads[0], id("5-0")));  // at the position: not again
  CHECK(p.advance(reads[0], id("6-0")));
  CHECK(p.advance(reads[0], id("7-0")));
  CHECK_FALSE(p.advance(reads[0], id("6-5")));  // ids only grow
  p.read_done(reads[0], 2, 512);
  reads = p.take_reads();
  REQUIRE(reads.size() == 1);
  p.read_done(reads[0], 0, 512);
  CHECK(p.take_reads().empty());  // caught up, no wake-up pending
  CHECK(p.position("c") == id("7-0"));
}

TEST_CASE("a full page reads on; a re-confirmed subscription catches up from the last id") {
  StreamPolls p;
  p.on_wake_confirmed("c", "{c}");
  CHECK(p.set_position(p.take_fetches()[0], id("1-0")));
  p.on_wake("c");
  auto r = p.take_reads();
  p.read_done(r[0], 512, 512);
  r = p.take_reads();
  REQUIRE(r.size() == 1);  // a full page: more may be behind it
  p.read_done(r[0], 3, 512);
  CHECK(p.take_reads().empty());
  // The subscriber link reconnected (failover, slot move): wake-ups may have been lost.
  CHECK(p.on_wake_confirmed("c", "{c}"));  // position known: confirm at once
  CHECK(channels(p.take_reads()) == std::vector<std::string>{"c"});
  CHECK(p.take_fetches().empty());
}

TEST_CASE("failures are held back until retry, and read again from the last id") {
  StreamPolls p;
  p.on_wake_confirmed("a", "{a}");
  p.on_wake_confirmed("b", "{b}");
  auto f = p.take_fetches();
  REQUIRE(f.size() == 2);
  p.failed(f[0]);  // MOVED, CLUSTERDOWN, the link broke
  CHECK(p.retry_due());
  CHECK(p.take_fetches().empty());  // held: not asked again in a loop
  CHECK(p.set_position(f[1], id("2-0")));
  p.retry();
  CHECK_FALSE(p.retry_due());
  auto again = p.take_fetches();
  REQUIRE(channels(again) == std::vector<std::string>{"a"});
  CHECK(p.set_position(again[0], id("3-0")));
  p.on_wake("b");
  auto r = p.take_reads();
  REQUIRE(channels(r) == std::vector<std::string>{"b"});
  CHECK(p.advance(r[0], id("2-1")));
  p.failed(r[0]);
  CHECK(p.take_reads().empty());
  p.retry();
  r = p.take_reads();
  REQUIRE(channels(r) == std::vector<std::string>{"b"});  // from 2-1, nothing lost
  CHECK(p.position("b") == id("2-1"));
}

TEST_CASE("a forgotten channel's late replies are stale; a new subscriber starts afresh") {
  StreamPolls p;
  p.on_wake_confirmed("c", "{c}");
  auto f = p.take_fetches();
  CHECK(p.set_position(f[0], id("4-0")));
  p.on_wake("c");
  auto r = p.take_reads();
  p.forget("c");  // the last local subscriber left
  CHECK_FALSE(p.wanted("c"));
  CHECK_FALSE(p.advance(r[0], id("5-0")));
  p.read_done(r[0], 1, 512);  // harmless
  p.on_wake("c");             // a late wake-up for a channel no longer read
  CHECK(p.take_reads().empty());
  CHECK_FALSE(p.on_wake_confirmed("c", "{c}"));  // subscribed again: a new position
  auto f2 = p.take_fetches();
  REQUIRE(f2.size() == 1);
  CHECK_FALSE(p.set_position(f[0], id("4-0")));  // the old ticket
  CHECK(p.set_position(f2[0], id("8-0")));
  CHECK(p.position("c") == id("8-0"));
  CHECK(p.size() == 1);
  CHECK(*p.stream_key("c") == "{c}");
}
