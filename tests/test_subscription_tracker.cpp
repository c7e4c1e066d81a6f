#include <doctest/doctest.h>

#include "core/subscription_tracker.hpp"

using namespace podrelay::core;
using W = SubscriptionTracker::WaiterId;

TEST_CASE("a want while connected sends SUBSCRIBE and releases waiters on confirmation") {
  SubscriptionTracker t;
  CHECK(t.on_connected().empty());
  CHECK(t.want(SubKind::channel, "p:a"));
  CHECK_FALSE(t.active(SubKind::channel, "p:a"));
  t.add_waiter(SubKind::channel, "p:a", 7);
  auto const released = t.on_confirmed(SubKind::channel, "p:a", true);
  CHECK(released == std::vector<W>{7});
  CHECK(t.active(SubKind::channel, "p:a"));
  CHECK(t.confirmed_count(SubKind::channel) == 1);
}

TEST_CASE("while disconnected nothing is sent; the connect re-subscribes everything wanted") {
  SubscriptionTracker t;
  CHECK_FALSE(t.want(SubKind::channel, "a"));
  CHECK_FALSE(t.want(SubKind::pattern, "b*"));
  t.add_waiter(SubKind::channel, "a", 1);
  auto const cmds = t.on_connected();
  REQUIRE(cmds.size() == 2);
  CHECK(t.on_confirmed(SubKind::channel, "a", true) == std::vector<W>{1});
  CHECK(t.on_confirmed(SubKind::pattern, "b*", true).empty());
  CHECK(t.active(SubKind::pattern, "b*"));
}

TEST_CASE("a reconnect re-subscribes what was confirmed before") {
  SubscriptionTracker t;
  t.on_connected();
  t.want(SubKind::channel, "a");
  t.on_confirmed(SubKind::channel, "a", true);
  t.on_disconnected();
  CHECK_FALSE(t.active(SubKind::channel, "a"));
  CHECK(t.confirmed_count(SubKind::channel) == 0);
  auto const cmds = t.on_connected();
  REQUIRE(cmds.size() == 1);
  CHECK(cmds[0].name == "a");
}

TEST_CASE("unwant sends UNSUBSCRIBE and forgets the name once Redis confirms") {
  SubscriptionTracker t;
  t.on_connected();
  t.want(SubKind::channel, "a");
  t.on_confirmed(SubKind::channel, "a", true);
  auto const u = t.unwant(SubKind::channel, "a");
  CHECK(u.send_unsubscribe);
  CHECK(t.confirmed_count(SubKind::channel) == 1);  // until Redis confirms
  t.on_confirmed(SubKind::channel, "a", false);
  CHECK(t.confirmed_count(SubKind::channel) == 0);
  CHECK(t.wanted_count(SubKind::channel) == 0);
  CHECK(t.on_connected().empty());
}

TEST_CASE("subscribe, unsubscribe, subscribe in flight: active only after the last confirmation") {
  SubscriptionTracker t;
  t.on_connected();
  CHECK(t.want(SubKind::channel, "a"));
  CHECK(t.unwant(SubKind::channel, "a").send_unsubscribe);
  CHECK(t.want(SubKind::channel, "a"));
  t.add_waiter(SubKind::channel, "a", 3);
  CHECK(t.on_confirmed(SubKind::channel, "a", true).empty());   // first SUBSCRIBE
  CHECK(t.on_confirmed(SubKind::channel, "a", false).empty());  // the UNSUBSCRIBE
  CHECK(t.on_confirmed(SubKind::channel, "a", true) == std::vector<W>{3});
  CHECK(t.active(SubKind::channel, "a"));
}

TEST_CASE("waiters of a name that is no longer wanted are released") {
  SubscriptionTracker t;
  t.want(SubKind::channel, "a");
  t.add_waiter(SubKind::channel, "a", 5);
  auto const u = t.unwant(SubKind::channel, "a");
  CHECK_FALSE(u.send_unsubscribe);  // not connected
  CHECK(u.released == std::vector<W>{5});
  CHECK(t.on_connected().empty());
}

TEST_CASE("confirmations for unknown names are ignored") {
  SubscriptionTracker t;
  t.on_connected();
  CHECK(t.on_confirmed(SubKind::channel, "zzz", true).empty());
  CHECK(t.confirmed_count(SubKind::channel) == 0);
}

TEST_CASE("a subscription Redis dropped on its own is orphaned until subscribed again") {
  SubscriptionTracker t;
  t.on_connected();
  t.want(SubKind::channel, "a");
  t.on_confirmed(SubKind::channel, "a", true);
  CHECK_FALSE(t.orphaned(SubKind::channel, "a"));
  t.on_confirmed(SubKind::channel, "a", false);  // server-sent sunsubscribe
  CHECK(t.orphaned(SubKind::channel, "a"));
  CHECK(t.want(SubKind::channel, "a"));
  CHECK_FALSE(t.orphaned(SubKind::channel, "a"));
  CHECK(t.wanted_names(SubKind::channel) == std::vector<std::string>{"a"});
}

TEST_CASE("waiters move with a name") {
  SubscriptionTracker t;
  t.want(SubKind::channel, "a");
  t.add_waiter(SubKind::channel, "a", 4);
  CHECK(t.take_waiters(SubKind::channel, "a") == std::vector<W>{4});
  CHECK(t.unwant(SubKind::channel, "a").released.empty());
}

TEST_CASE("settled: connected and every wanted name confirmed") {
  SubscriptionTracker t;
  CHECK_FALSE(t.settled());  // not connected
  t.on_connected();
  CHECK(t.settled());  // nothing wanted
  t.want(SubKind::channel, "a");
  CHECK_FALSE(t.settled());
  t.on_confirmed(SubKind::channel, "a", true);
  CHECK(t.settled());
  t.on_disconnected();
  CHECK_FALSE(t.settled());
}
