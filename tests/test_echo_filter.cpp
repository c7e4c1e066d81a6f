#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/echo_filter.hpp"
#include "core/hub.hpp"
#include "core/subscriptions.hpp"

using namespace podrelay::core;

namespace {

struct Sink final : Receiver {
  std::vector<std::string> got;
  bool deliver(Delivery& message) override {
    got.emplace_back(message.payload());
    return true;
  }
  void on_subscription_reply(std::uint32_t, std::optional<podrelay::proto::ErrorCode>,
                             std::string_view) override {}
};

ChannelNames const no_prefix("");

}  // namespace

TEST_CASE("a PUBX echo is withheld from its sender only, in publish order") {
  EchoFilter f;
  Sink a, b;
  f.expect("c", "a1", &a);
  f.expect("c", "a2", &a);
  f.expect("c", "b1", &b);
  CHECK(f.pending() == 3);
  CHECK(f.take("c", "x") == nullptr);  // another pod's message: nobody is skipped
  CHECK(f.take("c", "a1") == &a);
  CHECK(f.take("c", "a2") == &a);
  CHECK(f.take("c", "b1") == &b);
  CHECK(f.empty());
  CHECK(f.withheld() == 3);
  CHECK(f.abandoned() == 0);
  CHECK(f.take("c", "a1") == nullptr);  // each entry matches once
}

TEST_CASE("channels are independent and the payload must match in length and bytes") {
  EchoFilter f;
  Sink a;
  f.expect("c", "same", &a);
  CHECK(f.take("d", "same") == nullptr);
  CHECK(f.take("c", "sam") == nullptr);
  CHECK(f.take("c", std::string("same\0", 5)) == nullptr);
  CHECK(f.take("c", "same") == &a);
}

TEST_CASE("an echo that never came is dropped when a later one arrives") {
  EchoFilter f;
  Sink a;
  f.expect("c", "lost", &a);  // e.g. published before the subscription took effect
  f.expect("c", "kept", &a);
  CHECK(f.take("c", "kept") == &a);
  CHECK(f.empty());
  CHECK(f.abandoned() == 1);
  // So the stale entry cannot withhold a later message with its payload from anyone.
  CHECK(f.take("c", "lost") == nullptr);
}

TEST_CASE("a departed receiver, an unsubscribed channel and a lost link forget their entries") {
  EchoFilter f;
  Sink a, b;
  f.expect("c", "a1", &a);
  f.expect("c", "b1", &b);
  f.expect("d", "a2", &a);
  f.forget(&a);
  CHECK(f.pending() == 1);
  CHECK(f.take("c", "a1") == nullptr);  // delivered to everyone: a is gone
  CHECK(f.take("c", "b1") == &b);
  f.expect("e", "b2", &b);
  f.drop("e");
  CHECK(f.take("e", "b2") == nullptr);
  f.expect("c", "b3", &b);
  f.clear();
  CHECK(f.empty());
  CHECK(f.take("c", "b3") == nullptr);
}

TEST_CASE("memory is capped: reaching the cap forgets everything pending") {
  EchoFilter f(4);
  Sink a;
  for (int i = 0; i < 4; ++i) f.expect("c" + std::to_string(i), "p", &a);
  CHECK(f.pending() == 4);
  f.expect("new", "p", &a);
  CHECK(f.pending() == 1);
  CHECK(f.abandoned() == 4);
  CHECK(f.take("new", "p") == &a);
}

TEST_CASE("the subscriptions core reports whether a receiver holds a name") {
  Subscriptions subs({100, false}, [](std::string_view) { return ShardId{0}; });
  Sink a, b;
  subs.attach(a);
  subs.attach(b);
  subs.subscribe(a, SubKind::channel, 1, {"c"});
  CHECK(subs.has(SubKind::channel, "c", a));
  CHECK_FALSE(subs.has(SubKind::channel, "c", b));
  CHECK_FALSE(subs.has(SubKind::channel, "d", a));
  CHECK_FALSE(subs.has(SubKind::pattern, "c", a));
  subs.detach(a);
  CHECK_FALSE(subs.has(SubKind::channel, "c", a));
}

TEST_CASE("the hub skips the receiver a delivery excludes") {
  Hub hub;
  Sink a, b;
  hub.subscribe(SubKind::channel, "c", &a);
  hub.subscribe(SubKind::channel, "c", &b);
  Delivery m(no_prefix, no_prefix, 1 << 20, "c", "", "hello");
  m.set_except(&a);
  CHECK(hub.deliver(SubKind::channel, "c", m) == 1);
  CHECK(a.got.empty());
  CHECK(b.got == std::vector<std::string>{"hello"});
}
