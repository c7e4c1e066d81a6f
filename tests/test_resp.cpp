#include <doctest/doctest.h>

#include <string>

#include "redis/resp.hpp"

using namespace podrelay::redis;

namespace {

PubSubEvent parse_one(std::string const& bytes, ReplyPtr& keep) {
  ReplyReader r;
  r.feed(bytes.data(), bytes.size());
  REQUIRE(r.next(keep) == ReplyReader::Status::reply);
  return classify_pubsub(*keep);
}

}  // namespace

TEST_CASE("commands are encoded as RESP arrays of bulk strings, binary safe") {
  std::string out;
  append_command(out, {"PUBLISH", "podrelay:c", std::string_view("a\0b", 3)});
  static constexpr char expected[] = "*3\r\n$7\r\nPUBLISH\r\n$10\r\npodrelay:c\r\n$3\r\na\0b\r\n";
  CHECK(out == std::string(expected, sizeof expected - 1));
}

TEST_CASE("pub/sub replies are classified") {
  ReplyPtr keep;
  auto ev = parse_one("*3\r\n$7\r\nmessage\r\n$3\r\np:c\r\n$2\r\nhi\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::message);
  CHECK(ev.name == "p:c");
  CHECK(ev.payload == "hi");

  ev = parse_one("*4\r\n$8\r\npmessage\r\n$3\r\np:*\r\n$3\r\np:c\r\n$0\r\n\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::pmessage);
  CHECK(ev.name == "p:*");
  CHECK(ev.channel == "p:c");
  CHECK(ev.payload.empty());

  ev = parse_one("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::subscribed);
  ev = parse_one("*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::subscribed);
  ev = parse_one("*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:0\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::unsubscribed);
  ev = parse_one("*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$1\r\nx\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::message);
  ev = parse_one("*3\r\n$12\r\npunsubscribe\r\n$2\r\na*\r\n:0\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::punsubscribed);
  CHECK(ev.name == "a*");
  ev = parse_one("*2\r\n$4\r\npong\r\n$0\r\n\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::pong);
  ev = parse_one("+PONG\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::pong);
  ev = parse_one("-NOPERM no permission\r\n", keep);
  CHECK(ev.kind == PubSubEvent::Kind::error);
  CHECK(ev.payload == "NOPERM no permission");
}

TEST_CASE("odd replies are unexpected, never a crash") {
  ReplyPtr keep;
  CHECK(parse_one(":5\r\n", keep).kind == PubSubEvent::Kind::unexpected);
  CHECK(parse_one("*1\r\n$7\r\nmessage\r\n", keep).kind == PubSubEvent::Kind::unexpected);
  CHECK(parse_one("*3\r\n$7\r\nmessage\r\n:1\r\n$2\r\nhi\r\n", keep).kind ==
        PubSubEvent::Kind::unexpected);
  CHECK(parse_one("*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n", keep).kind ==
        PubSubEvent::Kind::unexpected);
  CHECK(parse_one("*0\r\n", keep).kind == PubSubEvent::Kind::unexpected);
}

TEST_CASE("incremental feeding and protocol errors") {
  ReplyReader r;
  ReplyPtr reply;
  std::string const bytes = "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n";
  for (std::size_t i = 0; i + 1 < bytes.size(); ++i) {
    r.feed(&bytes[i], 1);
    CHECK(r.next(reply) == ReplyReader::Status::need_more);
  }
  r.feed(&bytes.back(), 1);
  CHECK(r.next(reply) == ReplyReader::Status::reply);

  ReplyReader bad;
  bad.feed("?garbage\r\n", 10);
  CHECK(bad.next(reply) == ReplyReader::Status::error);
  CHECK_FALSE(bad.error_text().empty());
}

TEST_CASE("the hand-written PUBLISH encoder matches hiredis byte for byte") {
  std::string payload;
  for (std::size_t n : {0, 1, 9, 10, 99, 100, 12345}) {
    payload.assign(n, 'x');
    if (n > 0) payload[0] = '\0';
    for (std::string_view verb : {"PUBLISH", "SPUBLISH"}) {
      std::string ours;
      append_publish(ours, verb, "podrelay:", "chan\r\n", payload);
      std::string theirs;
      append_command(theirs, {verb, "podrelay:chan\r\n", payload});
      CHECK(ours == theirs);
      CHECK(ours.size() == publish_size(verb, 15, n));
    }
  }
}

TEST_CASE("a message push's size is that of its three bulk strings, digits included") {
  std::string payload;
  for (std::size_t n : {0, 9, 10, 99, 100, 1000}) {
    payload.assign(n, 'p');
    std::string const channel(n % 13, 'c');
    std::string push;
    append_command(push, {"message", channel, payload});
    CHECK(push.size() == message_push_size(channel.size(), n));
  }
  // What Redis sends for PUBLISH podrelay:x hi (redis-cli --no-raw would show it too).
  CHECK(message_push_size(10, 2) ==
        std::string_view("*3\r\n$7\r\nmessage\r\n$10\r\npodrelay:x\r\n$2\r\nhi\r\n").size());
}

TEST_CASE(
    "an array header asking for millions of elements is a protocol error, not an allocation") {
  ReplyReader r;
  ReplyPtr reply;
  std::string const huge = "*555555553\r\n";  // found by fuzz/fuzz_redis_reply
  r.feed(huge.data(), huge.size());
  CHECK(r.next(reply) == ReplyReader::Status::error);
  ReplyReader ok;
  std::string const fine = "*2\r\n:1\r\n:2\r\n";
  ok.feed(fine.data(), fine.size());
  REQUIRE(ok.next(reply) == ReplyReader::Status::reply);
  CHECK(reply->elements == 2);
}
