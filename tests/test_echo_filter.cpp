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

TEST_CASE("quiet echoes: the bytes still to come follow every way an entry leaves") {
  EchoFilter f;
  Sink a, b;
  CHECK(f.expect("c", "a1", &a, 40));
  CHECK_FALSE(f.expect("c", "a2", &a));  // loud: another receiver needs it
  CHECK(f.expect("c", "a3", &a, 41));
  CHECK(f.expect("d", "a4", &a, 50));
  CHECK(f.expect("e", "b1", &b, 60));
  CHECK(f.quiet_bytes() == 191);
  CHECK(f.take("c", "x") == nullptr);  // someone else's message changes nothing
  CHECK(f.quiet_bytes() == 191);
  // a3's echo came: a1 (quiet) and a2 (loud) will never come.
  CHECK(f.take("c", "a3") == &a);
  CHECK(f.quiet_bytes() == 110);
  f.drop("d");
  CHECK(f.quiet_bytes() == 60);
  f.forget(&b);
  CHECK(f.quiet_bytes() == 0);
  CHECK(f.expect("c", "a5", &a, 30));
  f.clear();
  CHECK(f.quiet_bytes() == 0);
  CHECK(f.empty());
}

TEST_CASE("quiet echoes: an ended spell leaves its entries pending but no longer quiet") {
  EchoFilter f;
  Sink a;
  CHECK(f.expect("c", "a1", &a, 40));
  f.end_quiet_spell();
  CHECK(f.quiet_bytes() == 0);
  CHECK(f.pending() == 1);
  CHECK(f.expect("c", "a2", &a, 41));  // the next spell
  CHECK(f.quiet_bytes() == 41);
  CHECK(f.take("c", "a1") == &a);  // still withheld; its bytes were the old spell's
  CHECK(f.quiet_bytes() == 41);
  CHECK(f.take("c", "a2") == &a);
  CHECK(f.quiet_bytes() == 0);
}

TEST_CASE("quiet echoes: at most max_quiet_bytes, the rest are loud") {
  EchoFilter f;
  Sink a;
  CHECK(f.expect("c", "a1", &a, EchoFilter::max_quiet_bytes - 10));
  CHECK_FALSE(f.expect("c", "a2", &a, 11));
  CHECK(f.expect("c", "a3", &a, 10));
  CHECK(f.quiet_bytes() == EchoFilter::max_quiet_bytes);
  CHECK(f.take("c", "a2") == &a);  // a1 never comes; a2 was loud
  CHECK(f.quiet_bytes() == 10);
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
