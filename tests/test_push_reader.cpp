#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "redis/push_reader.hpp"

using namespace podrelay::redis;

namespace {

// What a reader made of a stream: one line per reply, then "error: ..." when it failed.
struct Outcome {
  std::vector<std::string> items;
  bool error = false;
  std::string error_text;
};

std::string bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}
std::string message(std::string_view channel, std::string_view payload) {
  return "*3\r\n" + bulk("message") + bulk(channel) + bulk(payload);
}
std::string smessage(std::string_view channel, std::string_view payload) {
  return "*3\r\n" + bulk("smessage") + bulk(channel) + bulk(payload);
}
std::string pmessage(std::string_view pattern, std::string_view channel, std::string_view payload) {
  return "*4\r\n" + bulk("pmessage") + bulk(pattern) + bulk(channel) + bulk(payload);
}

void drain(PushReader& r, Outcome& out) {
  for (;;) {
    PushReader::Item item;
    auto const st = r.next(item);
    switch (st) {
      case PushReader::Status::need_more: return;
      case PushReader::Status::error:
        out.error = true;
        out.error_text = std::string(r.error_text());
        return;
      case PushReader::Status::push: out.items.push_back("push " + describe(item.event)); break;
      case PushReader::Status::reply:
        out.items.push_back("reply " + describe(classify_pubsub(*item.reply)));
        break;
      case PushReader::Status::oversized:
        out.items.push_back("oversized " + describe(item.event) + " " +
                            std::to_string(item.payload_bytes));
        break;
    }
  }
}

// Feeds `chunks` as successive socket reads (each through prepare/commit).
Outcome read_chunks(std::vector<std::string_view> const& chunks, std::size_t max_reply = 1 << 20) {
  PushReader r(max_reply);
  Outcome out;
  for (auto chunk : chunks) {
    while (!chunk.empty() && !out.error) {
      auto const space = r.prepare();
      REQUIRE(space.size() >= PushReader::min_read);
      auto const n = std::min(space.size(), chunk.size());
      std::memcpy(space.data(), chunk.data(), n);
      r.commit(n);
      chunk.remove_prefix(n);
      drain(r, out);
    }
  }
  return out;
}

// hiredis' reader alone, as the subscriber read before: every push is a "push" when the
// classifier calls it a message, anything else a "reply".
Outcome read_with_hiredis(std::string const& bytes) {
  ReplyReader r;
  r.feed(bytes.data(), bytes.size());
  Outcome out;
  for (;;) {
    ReplyPtr reply;
    auto const st = r.next(reply);
    if (st == ReplyReader::Status::need_more) break;
    if (st == ReplyReader::Status::error) {
      out.error = true;
      break;
    }
    auto const ev = classify_pubsub(*reply);
    bool const push =
        ev.kind == PubSubEvent::Kind::message || ev.kind == PubSubEvent::Kind::pmessage;
    out.items.push_back((push ? "push " : "reply ") + describe(ev));
  }
  return out;
}

std::string interleaved_stream() {
  std::string s;
  s += "*3\r\n" + bulk("subscribe") + bulk("p:a") + ":1\r\n";
  s += message("p:a", "hello");
  s += "*3\r\n" + bulk("psubscribe") + bulk("p:*") + ":2\r\n";
  s += pmessage("p:*", "p:a", std::string("bin\r\n\0\r", 7));
  s += "-ERR unknown command 'FOO'\r\n";
  s += message("p:a", "");
  s += "*2\r\n" + bulk("pong") + bulk("");
  s += smessage("p:{s}", std::string(300, 'x'));
  s += "+PONG\r\n";
  s += "*3\r\n" + bulk("message") + "$-1\r\n" + bulk("nil channel");  // not a message shape
  s += "*3\r\n" + bulk("message") + bulk("c") + ":5\r\n";             // nor this
  s += "*1\r\n*2\r\n:1\r\n$3\r\nabc\r\n";
  s += "*-1\r\n*0\r\n$-1\r\n:42\r\n";
  s += "*3\r\n" + bulk("unsubscribe") + bulk("p:a") + ":0\r\n";
  s += pmessage("p:*", "p:b", "last");
  return s;
}

}  // namespace

TEST_CASE("pushes and other replies come out in order, as hiredis alone reads them") {
  auto const stream = interleaved_stream();
  auto const expected = read_with_hiredis(stream);
  REQUIRE_FALSE(expected.error);
  REQUIRE(expected.items.size() == 18);
  auto const whole = read_chunks({stream});
  CHECK_FALSE(whole.error);
  CHECK(whole.items == expected.items);
  CHECK(whole.items[1] == "push 0|p:a|p:a|hello");
  CHECK(whole.items[3] == "push 1|p:*|p:a|" + std::string("bin\r\n\0\r", 7));
  CHECK(whole.items[4] == "reply 7|||ERR unknown command 'FOO'");
}

TEST_CASE("a stream split at every byte boundary reads the same") {
  auto const stream = interleaved_stream();
  auto const expected = read_with_hiredis(stream);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string_view const all(stream);
    auto const got = read_chunks({all.substr(0, cut), all.substr(cut)});
    INFO("cut at " << cut);
    CHECK_FALSE(got.error);
    CHECK(got.items == expected.items);
  }
  // And one byte per read: every reply split at every one of its boundaries at once.
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i)
    bytes.push_back(std::string_view(stream).substr(i, 1));
  auto const got = read_chunks(bytes);
  CHECK_FALSE(got.error);
  CHECK(got.items == expected.items);
}

TEST_CASE("payloads at the limit are delivered, one byte over are skipped and reported") {
  std::size_t const limit = 100;
  auto const at = message("c", std::string(limit, 'a'));
  auto const over = pmessage("p*", "pc", std::string(limit + 1, 'b'));
  auto const after = message("c", "next");
  auto const stream = at + over + after + message("c", "");
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string_view const all(stream);
    auto const got = read_chunks({all.substr(0, cut), all.substr(cut)}, limit);
    INFO("cut at " << cut);
    CHECK_FALSE(got.error);
    REQUIRE(got.items.size() == 4);
    CHECK(got.items[0] == "push 0|c|c|" + std::string(limit, 'a'));
    CHECK(got.items[1] == "oversized 1|p*|pc| 101");
    CHECK(got.items[2] == "push 0|c|c|next");
    CHECK(got.items[3] == "push 0|c|c|");
  }
}

TEST_CASE("an oversized payload is never buffered") {
  std::size_t const limit = 1000;
  PushReader r(limit);
  std::string const header = "*3\r\n" + bulk("message") + bulk("c") + "$5000000\r\n";
  Outcome out;
  r.feed(header);
  drain(r, out);
  REQUIRE(out.items == std::vector<std::string>{"oversized 0|c|c| 5000000"});
  std::string const chunk(PushReader::min_read, 'z');
  for (std::size_t sent = 0; sent < 5000000; sent += chunk.size()) {
    auto const n = std::min(chunk.size(), 5000000 - sent);
    r.feed(std::string_view(chunk).substr(0, n));
    drain(r, out);
    CHECK(r.capacity() == PushReader::initial_capacity);
  }
  r.feed("\r\n" + message("c", "after"));
  drain(r, out);
  CHECK_FALSE(out.error);
  CHECK(out.items.back() == "push 0|c|c|after");
}

TEST_CASE("any other reply larger than the limit is a protocol error") {
  std::size_t const limit = 1000;
  std::string const big_error = "-" + std::string(limit + 200 * 1024, 'e') + "\r\n";
  auto const got = read_chunks({big_error}, limit);
  CHECK(got.error);
  CHECK(got.error_text.find("exceeds") != std::string::npos);
  // A message whose names alone pass the limit cannot be skipped either.
  auto const names = read_chunks({"*3\r\n" + bulk("message") + "$9999999\r\n"}, limit);
  CHECK(names.error);
}

TEST_CASE("malformed input is an error that stays") {
  struct Case {
    std::string bytes;
    std::string text;
  };
  std::vector<Case> const cases{
      {"?what\r\n", "reply type byte"},
      {"*3\r\n$7\r\nmessage\r\n$1\r\nab\r\n$1\r\nx\r\n", "not terminated by CRLF"},
      {"$abc\r\nxyz\r\n", "bad bulk length"},
      {"$-2\r\n", "bad bulk length"},
      {"*2\r\n:1ag\r\n:01\r\n", "bad integer"},
      {"$01\r\na\r\n", "bad bulk length"},
      {"*-2\r\n", "bad multi-bulk length"},
      {"*2000000\r\n", "bad multi-bulk length"},
      {"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "nested deeper"},
      {message("c", "ok") + "\x01", "\\x01"},
  };
  for (auto const& c : cases) {
    INFO(c.bytes);
    auto const got = read_chunks({c.bytes});
    CHECK(got.error);
    CHECK(got.error_text.find(c.text) != std::string::npos);
    // What hiredis would have refused, the push reader refuses too (it may refuse more).
    if (read_with_hiredis(c.bytes).error) CHECK(got.error);
  }
  PushReader r(1 << 20);
  r.feed("?\r\n" + message("c", "lost"));
  PushReader::Item item;
  CHECK(r.next(item) == PushReader::Status::error);
  CHECK(r.next(item) == PushReader::Status::error);
}

TEST_CASE("the read buffer stays within its initial size for a stream of 1 KiB messages") {
  std::string stream;
  for (int i = 0; i < 2000; ++i) stream += message("podrelay:bench", std::string(1024, 'm'));
  PushReader r(1 << 20);
  Outcome out;
  std::string_view rest(stream);
  while (!rest.empty()) {
    auto const space = r.prepare();
    // A read returns less than it could, as a socket does; 7001 splits replies everywhere.
    auto const n = std::min({space.size(), rest.size(), std::size_t{7001}});
    std::memcpy(space.data(), rest.data(), n);
    r.commit(n);
    rest.remove_prefix(n);
    drain(r, out);
    CHECK(r.capacity() == PushReader::initial_capacity);
  }
  CHECK_FALSE(out.error);
  CHECK(out.items.size() == 2000);
  CHECK(r.buffered() == 0);
}

TEST_CASE("a large message gets room to arrive whole, and the buffer shrinks afterwards") {
  std::string const big = message("c", std::string(900 * 1024, 'L'));
  PushReader r(1 << 20);
  Outcome out;
  std::string_view rest(big);
  std::size_t reads = 0;
  while (!rest.empty()) {
    auto const space = r.prepare();
    auto const n = std::min(space.size(), rest.size());
    std::memcpy(space.data(), rest.data(), n);
    r.commit(n);
    rest.remove_prefix(n);
    ++reads;
    drain(r, out);
  }
  REQUIRE(out.items.size() == 1);
  // The first read brings the header; the second has room for the whole rest.
  CHECK(reads == 2);
  CHECK(r.prepare().size() == PushReader::initial_capacity);
}

TEST_CASE("what the handshake left in hiredis' reader is read first") {
  ReplyReader hs;
  std::string const bytes = "+OK\r\n" + message("c", "early");
  hs.feed(bytes.data(), bytes.size());
  ReplyPtr ok;
  REQUIRE(hs.next(ok) == ReplyReader::Status::reply);
  CHECK(hs.unread() == message("c", "early"));
  PushReader r(1 << 20);
  r.feed(hs.unread());
  Outcome out;
  drain(r, out);
  CHECK(out.items == std::vector<std::string>{"push 0|c|c|early"});
}
