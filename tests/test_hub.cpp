#include <doctest/doctest.h>

#include <vector>

#include "core/hub.hpp"

using namespace podrelay::core;

namespace {

struct FakeSubscriber final : Receiver {
  std::vector<SharedFrame> got;
  std::vector<bool> sole;  // what the hub told each delivery about its receivers
  bool deliver(Delivery& message) override {
    sole.push_back(message.sole_receiver());
    got.push_back(message.framed());
    return true;
  }
  void on_subscription_reply(std::uint32_t, std::optional<podrelay::proto::ErrorCode>,
                             std::string_view) override {}
};

ChannelNames const no_prefix("");

// A message on channel "c" carrying `payload`, as the hub hands it on.
struct Message {
  explicit Message(char const* payload)
      : delivery(no_prefix, no_prefix, 1 << 20, "c", "", payload) {}
  Delivery delivery;
};

}  // namespace

TEST_CASE("the first subscriber of a name subscribes on Redis, the last one unsubscribes") {
  Hub hub;
  FakeSubscriber a, b;
  CHECK(hub.subscribe(SubKind::channel, "news", &a));
  CHECK_FALSE(hub.subscribe(SubKind::channel, "news", &b));
  CHECK(hub.name_count(SubKind::channel) == 1);
  CHECK(hub.subscription_count(SubKind::channel) == 2);
  CHECK_FALSE(hub.unsubscribe(SubKind::channel, "news", &a));
  CHECK(hub.unsubscribe(SubKind::channel, "news", &b));
  CHECK(hub.name_count(SubKind::channel) == 0);
  CHECK(hub.subscription_count(SubKind::channel) == 0);
}

TEST_CASE("channels and patterns are separate namespaces") {
  Hub hub;
  FakeSubscriber a;
  CHECK(hub.subscribe(SubKind::channel, "n*", &a));
  CHECK(hub.subscribe(SubKind::pattern, "n*", &a));
  Message m("p");
  hub.deliver(SubKind::pattern, "n*", m.delivery);
  REQUIRE(a.got.size() == 1);
  CHECK(a.got[0].bytes().ends_with("p"));
}

TEST_CASE("unknown unsubscribes are ignored") {
  Hub hub;
  FakeSubscriber a, b;
  CHECK_FALSE(hub.unsubscribe(SubKind::channel, "x", &a));
  hub.subscribe(SubKind::channel, "x", &a);
  CHECK_FALSE(hub.unsubscribe(SubKind::channel, "x", &b));
  CHECK(hub.receiver_count(SubKind::channel, "x") == 1);
}

TEST_CASE("fan-out shares one buffer among all receivers") {
  Hub hub;
  std::vector<FakeSubscriber> subs(100);
  for (auto& s : subs) hub.subscribe(SubKind::channel, "c", &s);
  Message m("hello");
  CHECK(hub.deliver(SubKind::channel, "c", m.delivery) == 100);
  auto const& f = m.delivery.framed();
  for (auto const& s : subs) {
    REQUIRE(s.got.size() == 1);
    CHECK(s.got[0].data() == f.data());  // the same bytes, not a copy
  }
  CHECK(hub.deliver(SubKind::channel, "other", m.delivery) == 0);
}

TEST_CASE("removal from the middle keeps the others") {
  Hub hub;
  FakeSubscriber a, b, c;
  for (auto* s : {&a, &b, &c}) hub.subscribe(SubKind::channel, "c", s);
  hub.unsubscribe(SubKind::channel, "c", &b);
  Message m("m");
  hub.deliver(SubKind::channel, "c", m.delivery);
  CHECK(a.got.size() == 1);
  CHECK(b.got.empty());
  CHECK(c.got.size() == 1);
}

TEST_CASE("binary names") {
  Hub hub;
  FakeSubscriber a;
  std::string const name("a\0b", 3);
  hub.subscribe(SubKind::channel, name, &a);
  CHECK(hub.receiver_count(SubKind::channel, std::string("a")) == 0);
  CHECK(hub.receiver_count(SubKind::channel, name) == 1);
}

TEST_CASE("a delivery knows whether it has one receiver") {
  Hub hub;
  FakeSubscriber a, b;
  hub.subscribe(SubKind::channel, "c", &a);
  Message one("x");
  hub.deliver(SubKind::channel, "c", one.delivery);
  hub.subscribe(SubKind::channel, "c", &b);
  Message two("y");
  hub.deliver(SubKind::channel, "c", two.delivery);
  CHECK(a.sole == std::vector<bool>{true, false});
  CHECK(b.sole == std::vector<bool>{false});
}

TEST_CASE("a sole receiver's MSG, appended in place, is the shared frame's bytes") {
  ChannelNames const prefixed("app:");
  std::string const payload(300, 'p');  // the views must outlive the deliveries
  for (std::string_view pattern : {"", "app:c*"}) {
    CAPTURE(pattern);
    Delivery direct(prefixed, prefixed, 1 << 20, "app:chan", pattern, payload);
    Delivery shared(prefixed, prefixed, 1 << 20, "app:chan", pattern, payload);
    REQUIRE(direct.can_frame());
    std::string out = "kept";
    direct.append_framed(out);
    REQUIRE(shared.framed());
    CHECK(out == "kept" + std::string(shared.framed().bytes()));
  }
  // Where framed() is null, can_frame() says so: a name without the prefix, a frame over the
  // limit (counted as too large).
  Delivery foreign(prefixed, prefixed, 1 << 20, "other:chan", "", "p");
  CHECK_FALSE(foreign.can_frame());
  CHECK_FALSE(foreign.too_large());
  Delivery big(prefixed, prefixed, 64, "app:chan", "", payload);
  CHECK_FALSE(big.can_frame());
  CHECK(big.too_large());
  CHECK_FALSE(big.framed());
  // A channel name no protocol string can hold (Redis allows it): counted too, not lost
  // without a word (found by a hostile-input check: a PSUB '*' subscriber got nothing).
  std::string const long_name = "app:" + std::string(70'000, 'n');
  Delivery named(prefixed, prefixed, 1 << 20, long_name, "app:*", "p");
  CHECK_FALSE(named.can_frame());
  CHECK(named.too_large());
  Delivery durable(prefixed, prefixed, 1 << 20, long_name, "", "p");
  durable.set_stream_id("1-0", StreamId{1, 0});
  CHECK_FALSE(durable.framed_durable());
  CHECK(durable.too_large());
}
