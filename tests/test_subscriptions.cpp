// Step tests of the subscriptions core: each event in, the exact commands and replies out,
// with no sockets (the way Boost.Redis tests its state machines). Several cases replay the
// sequences the integration tests once found bugs in.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "core/subscriptions.hpp"

using namespace podrelay::core;
using podrelay::proto::ErrorCode;
using Effects = Subscriptions::Effects;
using Names = std::vector<std::string>;

namespace {

struct FakeReceiver final : Receiver {
  bool deliver(Delivery&) override { return true; }
  void on_subscription_reply(std::uint32_t, std::optional<ErrorCode>, std::string_view) override {}
};

// "shard:S sub|unsub|psub|punsub a,b" per command, for compact expectations.
std::vector<std::string> commands(Effects const& fx) {
  std::vector<std::string> out;
  for (auto const& c : fx.commands) {
    std::string line = "shard:" + std::to_string(c.shard) + " ";
    line += c.kind == SubKind::channel ? (c.subscribe ? "sub" : "unsub")
                                       : (c.subscribe ? "psub" : "punsub");
    line += ' ';
    for (std::size_t i = 0; i < c.names.size(); ++i) line += (i ? "," : "") + c.names[i];
    out.push_back(line);
  }
  return out;
}

// "R<receiver-index>:<id> OK" or "... ERR <code>", in the order owed.
struct Replies {
  std::vector<Receiver const*> who;
  std::vector<std::string> operator()(Effects const& fx) const {
    std::vector<std::string> out;
    for (auto const& r : fx.replies) {
      std::size_t idx = 0;
      while (idx < who.size() && who[idx] != r.receiver) ++idx;
      auto line = "R" + std::to_string(idx) + ":" + std::to_string(r.request_id);
      line += r.error ? " ERR " + std::to_string(static_cast<int>(*r.error)) : " OK";
      out.push_back(line);
    }
    return out;
  }
};

using V = std::vector<std::string>;

Subscriptions single(std::size_t max = 100) {
  return Subscriptions({max, true}, [](std::string_view) { return ShardId{0}; });
}

}  // namespace

TEST_CASE("the first receiver of a channel subscribes on Redis and is answered on confirmation") {
  auto subs = single();
  FakeReceiver a, b;
  Replies replies{{&a, &b}};
  subs.attach(a);
  subs.attach(b);
  CHECK(subs.on_connected(0).commands.empty());

  auto fx = subs.subscribe(a, SubKind::channel, 1, {"p:news"});
  CHECK(commands(fx) == V{"shard:0 sub p:news"});
  CHECK(fx.replies.empty());
  CHECK(replies(subs.on_confirmed(0, SubKind::channel, "p:news", true)) == V{"R0:1 OK"});

  // The second receiver shares the Redis subscription and is answered at once.
  fx = subs.subscribe(b, SubKind::channel, 7, {"p:news"});
  CHECK(fx.commands.empty());
  CHECK(replies(fx) == V{"R1:7 OK"});
  CHECK(subs.local_subscription_count(SubKind::channel) == 2);
  CHECK(subs.confirmed_count(SubKind::channel) == 1);
}

TEST_CASE("replies keep request order while an earlier SUB waits for Redis") {
  auto subs = single();
  FakeReceiver a, b;
  Replies replies{{&a, &b}};
  subs.attach(a);
  subs.attach(b);
  subs.on_connected(0);
  subs.subscribe(b, SubKind::channel, 1, {"old"});
  subs.on_confirmed(0, SubKind::channel, "old", true);

  CHECK(subs.subscribe(a, SubKind::channel, 10, {"new"}).replies.empty());
  // "old" is already active and UNSUB takes effect at once, but both answers wait for 10.
  CHECK(subs.subscribe(a, SubKind::channel, 11, {"old"}).replies.empty());
  auto fx = subs.unsubscribe(a, SubKind::channel, 12, {"old"});
  CHECK(fx.replies.empty());
  CHECK(fx.commands.empty());  // b still holds "old"
  CHECK(replies(subs.on_confirmed(0, SubKind::channel, "new", true)) ==
        V{"R0:10 OK", "R0:11 OK", "R0:12 OK"});
}

TEST_CASE("before the link is up nothing is sent; the connect subscribes everything wanted") {
  auto subs = single();
  FakeReceiver a;
  Replies replies{{&a}};
  subs.attach(a);
  auto fx = subs.subscribe(a, SubKind::channel, 1, {"a", "b"});
  CHECK(fx.commands.empty());
  fx = subs.subscribe(a, SubKind::pattern, 2, {"c*"});
  CHECK(fx.commands.empty());
  CHECK_FALSE(subs.settled(0));

  fx = subs.on_connected(0);
  CHECK(commands(fx) == V{"shard:0 sub a,b", "shard:0 psub c*"});
  CHECK(subs.on_confirmed(0, SubKind::channel, "a", true).replies.empty());
  CHECK(replies(subs.on_confirmed(0, SubKind::channel, "b", true)) == V{"R0:1 OK"});
  CHECK(replies(subs.on_confirmed(0, SubKind::pattern, "c*", true)) == V{"R0:2 OK"});
  CHECK(subs.settled(0));
}

TEST_CASE("a reconnect re-subscribes every wanted name; a SUB made meanwhile waits for it") {
  auto subs = single();
  FakeReceiver a;
  Replies replies{{&a}};
  subs.attach(a);
  subs.on_connected(0);
  subs.subscribe(a, SubKind::channel, 1, {"x"});
  subs.on_confirmed(0, SubKind::channel, "x", true);

  subs.on_disconnected(0);
  CHECK_FALSE(subs.settled(0));
  // Resubscribe-before-flush: a request while down is answered only after the reconnect.
  auto fx = subs.subscribe(a, SubKind::channel, 2, {"x", "y"});
  CHECK(fx.commands.empty());
  CHECK(fx.replies.empty());
  fx = subs.on_connected(0);
  CHECK(commands(fx) == V{"shard:0 sub x,y"});
  CHECK(subs.on_confirmed(0, SubKind::channel, "x", true).replies.empty());
  CHECK(replies(subs.on_confirmed(0, SubKind::channel, "y", true)) == V{"R0:2 OK"});
}

TEST_CASE("--max-subscriptions counts only names the receiver does not hold yet, each once") {
  auto subs = single(5);
  FakeReceiver a;
  Replies replies{{&a}};
  subs.attach(a);
  subs.on_connected(0);
  subs.subscribe(a, SubKind::channel, 1, {"1", "2", "3", "4"});
  // One new name, given twice, next to names already held: within the limit.
  auto fx = subs.subscribe(a, SubKind::channel, 2, {"5", "5", "1", "2"});
  CHECK(commands(fx) == V{"shard:0 sub 5"});
  for (auto n : {"1", "2", "3", "4", "5"}) subs.on_confirmed(0, SubKind::channel, n, true);
  CHECK(subs.held(a) == 5);
  // Re-subscribing what it has is a no-op, answered OK.
  CHECK(replies(subs.subscribe(a, SubKind::channel, 3, {"1", "2"})) == V{"R0:3 OK"});
  // A sixth distinct name is refused, and nothing of the request is applied.
  fx = subs.subscribe(a, SubKind::channel, 4, {"1", "6"});
  CHECK(replies(fx) == V{"R0:4 ERR 201"});
  CHECK(fx.commands.empty());
  CHECK(subs.held(a) == 5);
  CHECK(subs.receiver_count(SubKind::channel, "6") == 0);
}

TEST_CASE("the bytes of a receiver's names are bounded too, and freed as names go") {
  auto subs = Subscriptions({100, true, 10}, [](std::string_view) { return ShardId{0}; });
  FakeReceiver a, b;
  Replies replies{{&a, &b}};
  subs.attach(a);
  subs.attach(b);
  subs.on_connected(0);
  // 3 + 3 + 4 bytes: exactly the limit; names held already and repeats count once.
  subs.subscribe(a, SubKind::channel, 1, {"abc", "def"});
  subs.subscribe(a, SubKind::pattern, 2, {"gh*i", "gh*i"});
  subs.on_confirmed(0, SubKind::channel, "abc", true);
  subs.on_confirmed(0, SubKind::channel, "def", true);
  CHECK(replies(subs.on_confirmed(0, SubKind::pattern, "gh*i", true)) == V{"R0:2 OK"});
  CHECK(subs.held_name_bytes(a) == 10);
  CHECK(replies(subs.subscribe(a, SubKind::channel, 3, {"abc", "def"})) == V{"R0:3 OK"});
  // One byte more is refused as a whole: nothing of it is applied.
  auto fx = subs.subscribe(a, SubKind::channel, 4, {"abc", "x"});
  CHECK(replies(fx) == V{"R0:4 ERR 201"});
  CHECK(fx.commands.empty());
  CHECK(subs.held_name_bytes(a) == 10);
  CHECK(subs.receiver_count(SubKind::channel, "x") == 0);
  // Another receiver has its own budget.
  CHECK(commands(subs.subscribe(b, SubKind::channel, 1, {"x"})) == V{"shard:0 sub x"});
  // Unsubscribing gives the bytes back: one name, then every name of a kind.
  CHECK(replies(subs.unsubscribe(a, SubKind::channel, 5, {"def"})) == V{"R0:5 OK"});
  CHECK(subs.held_name_bytes(a) == 7);
  CHECK(replies(subs.unsubscribe(a, SubKind::pattern, 6, {})) == V{"R0:6 OK"});
  CHECK(subs.held_name_bytes(a) == 3);
  // So does a rollback (Redis refused the name).
  subs.subscribe(a, SubKind::channel, 7, {"nope"});
  CHECK(subs.held_name_bytes(a) == 7);
  CHECK(replies(subs.on_refused(0, SubKind::channel, {"nope"}, "NOPERM")) == V{"R0:7 ERR 204"});
  CHECK(subs.held_name_bytes(a) == 3);
  // And with the bytes back, what was refused fits.
  CHECK(commands(subs.subscribe(a, SubKind::channel, 8, {"1234567"})) == V{"shard:0 sub 1234567"});
}

TEST_CASE("a SUB that Redis refuses fails as a whole and holds nothing back") {
  auto subs = single();
  FakeReceiver a;
  Replies replies{{&a}};
  subs.attach(a);
  subs.on_connected(0);
  subs.subscribe(a, SubKind::channel, 1, {"ok:held"});
  subs.on_confirmed(0, SubKind::channel, "ok:held", true);

  // "ok:held" is added by neither request below; "ok:new" is added by 2 alongside "no".
  auto fx = subs.subscribe(a, SubKind::channel, 2, {"ok:held", "ok:new", "no"});
  CHECK(commands(fx) == V{"shard:0 sub ok:new,no"});
  fx = subs.subscribe(a, SubKind::channel, 3, {"ok:later"});
  CHECK(commands(fx) == V{"shard:0 sub ok:later"});
  CHECK(fx.replies.empty());  // behind 2

  // Redis refuses the whole SUBSCRIBE ok:new no (one error for the command).
  fx = subs.on_refused(0, SubKind::channel, {"ok:new", "no"}, "NOPERM no permission");
  REQUIRE(fx.replies.size() == 1);
  CHECK(fx.replies[0].request_id == 2);
  CHECK(fx.replies[0].error == ErrorCode::subscribe_refused);
  CHECK(fx.replies[0].text.find("NOPERM") != std::string::npos);
  CHECK(fx.commands.empty());  // nothing was subscribed, so nothing to undo on Redis
  CHECK(subs.held(a) == 2);    // ok:held and ok:later (still waiting)
  CHECK(subs.receiver_count(SubKind::channel, "ok:new") == 0);
  CHECK(subs.receiver_count(SubKind::channel, "no") == 0);
  // The later request was not held behind the refusal.
  CHECK(replies(subs.on_confirmed(0, SubKind::channel, "ok:later", true)) == V{"R0:3 OK"});
  CHECK(subs.settled(0));
}

TEST_CASE("a refusal rolls back names the failed request added that Redis had accepted") {
  auto subs = single();
  FakeReceiver a, b;
  Replies replies{{&a, &b}};
  subs.attach(a);
  subs.attach(b);
  subs.on_connected(0);
  subs.subscribe(b, SubKind::channel, 1, {"shared"});
  subs.on_confirmed(0, SubKind::channel, "shared", true);
  // a adds "shared" (already active) and "no" (refused): the request fails as a whole.
  subs.subscribe(a, SubKind::channel, 5, {"shared", "no"});
  auto fx = subs.on_refused(0, SubKind::channel, {"no"}, "NOPERM");
  CHECK(replies(fx) == V{"R0:5 ERR 204"});
  CHECK(subs.held(a) == 0);
  CHECK(subs.receiver_count(SubKind::channel, "shared") == 1);  // b keeps it
  CHECK(fx.commands.empty());
}

TEST_CASE("leaving unsubscribes, batched, only what nobody else holds") {
  auto subs = single();
  FakeReceiver a, b;
  subs.attach(a);
  subs.attach(b);
  subs.on_connected(0);
  subs.subscribe(a, SubKind::channel, 1, {"x", "y", "z"});
  subs.subscribe(a, SubKind::pattern, 2, {"p*"});
  subs.subscribe(b, SubKind::channel, 1, {"y"});
  auto fx = subs.detach(a);
  auto cmds = commands(fx);
  REQUIRE(cmds.size() == 2);
  // Set order is unspecified: compare the names, not their order.
  CHECK((cmds[0] == "shard:0 unsub x,z" || cmds[0] == "shard:0 unsub z,x"));
  CHECK(cmds[1] == "shard:0 punsub p*");
  CHECK(fx.replies.empty());  // a's pending SUBs are not answered: a is gone
  CHECK_FALSE(subs.attached(a));
  // Confirmations for a's old requests arrive later and are harmless.
  CHECK(subs.on_confirmed(0, SubKind::channel, "y", true).replies.size() == 1);  // b's
}

TEST_CASE("UNSUB with an empty list removes every name of that kind") {
  auto subs = single();
  FakeReceiver a;
  Replies replies{{&a}};
  subs.attach(a);
  subs.on_connected(0);
  subs.subscribe(a, SubKind::channel, 1, {"x", "y"});
  subs.subscribe(a, SubKind::pattern, 2, {"p*"});
  for (auto n : {"x", "y"}) subs.on_confirmed(0, SubKind::channel, n, true);
  subs.on_confirmed(0, SubKind::pattern, "p*", true);
  auto fx = subs.unsubscribe(a, SubKind::channel, 3, {});
  CHECK(fx.commands.size() == 1);
  CHECK(fx.commands[0].names.size() == 2);
  CHECK(replies(fx) == V{"R0:3 OK"});
  CHECK(subs.held(a) == 1);  // the pattern stays
}

TEST_CASE("requests refused by the caller and empty lists keep their place in the order") {
  Subscriptions subs({100, false}, [](std::string_view) { return ShardId{0}; });
  FakeReceiver a;
  Replies replies{{&a}};
  subs.attach(a);
  subs.on_connected(0);
  subs.subscribe(a, SubKind::channel, 1, {"x"});
  CHECK(subs.subscribe(a, SubKind::channel, 2, {}).replies.empty());
  CHECK(subs.subscribe(a, SubKind::pattern, 3, {"p*"}).replies.empty());
  CHECK(subs.reject(a, 4, ErrorCode::draining, "bye").replies.empty());
  CHECK(replies(subs.on_confirmed(0, SubKind::channel, "x", true)) ==
        V{"R0:1 OK", "R0:2 ERR 200", "R0:3 ERR 202", "R0:4 ERR 203"});
}

TEST_CASE("cluster: channels go to the shard owning their slot and follow it when it moves") {
  std::map<std::string, ShardId> owner{{"a", 0}, {"b", 1}};
  Subscriptions subs({100, false}, [&](std::string_view n) { return owner.at(std::string(n)); });
  FakeReceiver r;
  Replies replies{{&r}};
  subs.attach(r);
  subs.on_connected(0);
  subs.on_connected(1);
  auto fx = subs.subscribe(r, SubKind::channel, 1, {"a", "b"});
  CHECK(commands(fx) == V{"shard:0 sub a", "shard:1 sub b"});
  subs.on_confirmed(0, SubKind::channel, "a", true);

  // b's slot moves to shard 2 before shard 1 confirmed it: the waiter moves along.
  owner["b"] = 2;
  fx = subs.on_topology_changed();
  CHECK(commands(fx) == V{"shard:1 unsub b"});  // shard 2 is not connected yet
  CHECK(subs.wanted_count(1, SubKind::channel) == 0);
  fx = subs.on_connected(2);
  CHECK(commands(fx) == V{"shard:2 sub b"});
  // A late confirmation from the old shard answers nobody.
  CHECK(subs.on_confirmed(1, SubKind::channel, "b", true).replies.empty());
  CHECK(replies(subs.on_confirmed(2, SubKind::channel, "b", true)) == V{"R0:1 OK"});
}

TEST_CASE("cluster: a MOVED answer or a slot Redis dropped is subscribed again on refresh") {
  std::map<std::string, ShardId> owner{{"a", 0}};
  Subscriptions subs({100, false}, [&](std::string_view n) { return owner.at(std::string(n)); });
  FakeReceiver r;
  Replies replies{{&r}};
  subs.attach(r);
  subs.on_connected(0);
  subs.subscribe(r, SubKind::channel, 1, {"a"});
  subs.on_not_executed(0, SubKind::channel, {"a"}, true);  // -MOVED: nothing happened
  CHECK(subs.orphaned(0, SubKind::channel, "a"));
  auto fx = subs.on_topology_changed();  // same owner after all
  CHECK(commands(fx) == V{"shard:0 sub a"});
  CHECK(replies(subs.on_confirmed(0, SubKind::channel, "a", true)) == V{"R0:1 OK"});

  // Redis sends sunsubscribe by itself when the slot migrates away.
  subs.on_confirmed(0, SubKind::channel, "a", false);
  CHECK(subs.orphaned(0, SubKind::channel, "a"));
  owner["a"] = 3;
  subs.on_connected(3);
  fx = subs.on_topology_changed();
  CHECK(commands(fx) == V{"shard:0 unsub a", "shard:3 sub a"});
}

TEST_CASE("fan-out reaches each receiver of the Redis name whichever request added it") {
  auto subs = single();
  struct Counting final : Receiver {
    int got = 0;
    bool deliver(Delivery&) override {
      ++got;
      return true;
    }
    void on_subscription_reply(std::uint32_t, std::optional<ErrorCode>, std::string_view) override {
    }
  } a, b;
  subs.attach(a);
  subs.attach(b);
  subs.on_connected(0);
  subs.subscribe(a, SubKind::channel, 1, {"podrelay:x"});
  subs.subscribe(b, SubKind::channel, 1, {"podrelay:x"});
  ChannelNames const names("podrelay:");
  Delivery m(names, names, 1 << 20, "podrelay:x", "", "hi");
  CHECK(subs.deliver(SubKind::channel, "podrelay:x", m) == 2);
  CHECK(a.got == 1);
  CHECK(b.got == 1);
}

TEST_CASE("a MSG larger than the announced frame limit is not encoded") {
  ChannelNames const names("p:");
  std::string const small(50, 'x');
  std::string const large(60, 'x');
  Delivery fits(names, names, 64, "p:c", "", small);
  CHECK(fits.framed());
  Delivery big(names, names, 64, "p:c", "", large);
  CHECK_FALSE(big.framed());
  CHECK(big.too_large());
  Delivery foreign(names, names, 64, "other:c", "", "x");  // not our prefix
  CHECK_FALSE(foreign.framed());
  CHECK_FALSE(foreign.too_large());
}
