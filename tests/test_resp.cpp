#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

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
      // Appended after what the buffer holds; an empty prefix and channel are fine.
      std::string more = "held";
      append_publish(more, verb, "", "", payload);
      std::string bare;
      append_command(bare, {verb, "", payload});
      CHECK(more == "held" + bare);
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

namespace {

// A reply as text, for comparing two readers' results.
std::string show(redisReply const& r) {
  switch (r.type) {
    case REDIS_REPLY_INTEGER: return "i:" + std::to_string(r.integer);
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_STRING: return "s:" + std::string(reply_string(r));
    case REDIS_REPLY_STATUS: return "+:" + std::string(reply_string(r));
    case REDIS_REPLY_ERROR: return "e:" + std::string(reply_string(r));
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (std::size_t i = 0; i < r.elements; ++i) out += show(*r.element[i]) + ",";
      return out + "]";
    }
    default: return "?";
  }
}

// Every reply of `bytes`, fed `chunk` bytes at a time, read with next() or next_view();
// "ERROR" ends the list when the stream is not RESP.
std::vector<std::string> read_all(std::string const& bytes, std::size_t chunk, bool view) {
  ReplyReader r;
  std::vector<std::string> out;
  for (std::size_t off = 0; off < bytes.size(); off += chunk) {
    r.feed(bytes.data() + off, std::min(chunk, bytes.size() - off));
    for (;;) {
      ReplyReader::Status st{};
      std::string shown;
      if (view) {
        redisReply const* reply = nullptr;
        st = r.next_view(reply);
        if (st == ReplyReader::Status::reply) shown = show(*reply);
      } else {
        ReplyPtr reply;
        st = r.next(reply);
        if (st == ReplyReader::Status::reply) shown = show(*reply);
      }
      if (st == ReplyReader::Status::error) {
        out.emplace_back("ERROR");
        return out;
      }
      if (st == ReplyReader::Status::need_more) break;
      out.push_back(shown);
    }
  }
  if (!r.unread().empty()) out.push_back("unread:" + std::string(r.unread()));
  return out;
}

}  // namespace

TEST_CASE("an integer reply is recognised only when whole, at most 18 digits") {
  long long v = 1;
  CHECK(parse_integer_reply(":0\r\n", v) == 4);
  CHECK(v == 0);
  CHECK(parse_integer_reply(":-42\r\n:1\r\n", v) == 6);
  CHECK(v == -42);
  CHECK(parse_integer_reply(":123456789012345678\r\n", v) == 21);
  CHECK(v == 123456789012345678LL);
  v = 7;
  for (std::string_view const no :
       {"", ":", ":1", ":1\r", ":\r\n", ":-\r\n", ":+1\r\n", ":1x\r\n", ":1\n\r", ":1\r\r",
        "$1\r\n", " :1\r\n", ":1234567890123456789\r\n", ":-9223372036854775808\r\n", ":06\r\n",
        ":-0\r\n", ":00\r\n", ":9999999999999999999999\r\n"}) {
    CAPTURE(no);
    CHECK(parse_integer_reply(no, v) == 0);
  }
  CHECK(v == 7);  // left alone when there is no integer
}

TEST_CASE("next_view() reads what next() reads, however the bytes are split") {
  std::string const stream =
      ":1\r\n:22\r\n*3\r\n$7\r\nmessage\r\n$3\r\np:c\r\n$2\r\nhi\r\n:-3\r\n+OK\r\n"
      "-ERR wrong\r\n$-1\r\n:1234567890123456789\r\n:9223372036854775807\r\n*2\r\n:5\r\n:6\r\n"
      ":0\r\n$4\r\n:7\r\n\r\n:8\r\n";
  auto const expected = read_all(stream, stream.size(), false);
  REQUIRE(expected.size() == 13);
  CHECK(expected[0] == "i:1");
  CHECK(expected[9] == "[i:5,i:6,]");
  CHECK(expected[11] == "s::7\r\n");
  for (std::size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    CAPTURE(chunk);
    CHECK(read_all(stream, chunk, true) == expected);
    CHECK(read_all(stream, chunk, false) == expected);
  }
  // A partial reply at the end is not a reply, with either reader.
  for (std::size_t chunk : {1, 2, 4, 6}) {
    auto const partial = read_all(":1\r\n:2", chunk, true);
    CHECK(partial == read_all(":1\r\n:2", chunk, false));
    CHECK(partial.front() == "i:1");
    CHECK(partial.size() == 2);  // and what is left of ":2", unread
  }
}

TEST_CASE("next_view() reports a broken stream as next() does") {
  for (std::string const bad : {":1\r\n!oops\r\n", ":1\r\n*2000000\r\n", ":3\r\n?x\r\n",
                                ":1\r\n:06\r\n", ":1\r\n:-0\r\n"}) {
    CAPTURE(bad);
    auto const expected = read_all(bad, bad.size(), false);
    CHECK(expected.back() == "ERROR");
    CHECK(read_all(bad, bad.size(), true) == expected);
    CHECK(read_all(bad, 1, true) == expected);
  }
}

TEST_CASE("integers read by next_view() are let go of, not kept in the buffer") {
  ReplyReader r;
  std::string batch;
  for (int i = 0; i < 1000; ++i) batch += ":" + std::to_string(i) + "\r\n";
  long long sum = 0;
  for (int round = 0; round < 100; ++round) {
    r.feed(batch.data(), batch.size());
    redisReply const* reply = nullptr;
    while (r.next_view(reply) == ReplyReader::Status::reply) sum += reply->integer;
    CHECK(r.unread().empty());
    CHECK(r.buffered() < 2 * batch.size());  // 100 rounds of ~5 KiB would be ~500 KiB kept
  }
  CHECK(sum == 100LL * 999 * 1000 / 2);
}

TEST_CASE("incomplete_bytes() is the size so far of the reply being read") {
  ReplyReader r;
  redisReply const* reply = nullptr;
  auto feed = [&](std::string const& bytes) { r.feed(bytes.data(), bytes.size()); };
  // Whole replies, by either path, leave nothing behind; the next one's start counts.
  feed(":1\r\n+OK\r\n$5\r\nab");
  CHECK(r.incomplete_bytes() == 15);
  REQUIRE(r.next_view(reply) == ReplyReader::Status::reply);  // the integer fast path
  CHECK(r.incomplete_bytes() == 11);
  REQUIRE(r.next_view(reply) == ReplyReader::Status::reply);  // +OK through hiredis
  CHECK(r.incomplete_bytes() == 6);
  CHECK(r.next_view(reply) == ReplyReader::Status::need_more);
  CHECK(r.incomplete_bytes() == 6);
  feed("cde\r\n");
  REQUIRE(r.next_view(reply) == ReplyReader::Status::reply);
  CHECK(r.incomplete_bytes() == 0);
  // An array hiredis parses element by element (and trims from its buffer) is still
  // counted whole until it is complete.
  feed("*3000\r\n");
  std::string elements;
  for (int i = 0; i < 2999; ++i) elements += "$3\r\nabc\r\n";
  feed(elements);
  CHECK(r.next_view(reply) == ReplyReader::Status::need_more);
  CHECK(r.buffered() < elements.size());  // hiredis let go of what it parsed
  CHECK(r.incomplete_bytes() == 7 + elements.size());
  feed("$3\r\nabc\r\n:5\r\n");
  REQUIRE(r.next_view(reply) == ReplyReader::Status::reply);
  CHECK(reply->elements == 3000);
  CHECK(r.incomplete_bytes() == 4);
}
