// Codec tests that the vectors do not cover: round trips of every encoder, incremental
// decoding at every split point, and the decoder's buffer discipline.
#include <doctest/doctest.h>

#include <string>

#include "proto/frame.hpp"

using namespace podrelay::proto;

namespace {

std::string all_frames() {
  std::string s;
  encode_hello(s, "app", "token");
  encode_pub(s, 7, "news", std::string("\0\x01\xff", 3));
  std::string_view const names[] = {"a", "", std::string_view("chan\0nel", 8)};
  encode_name_list(s, FrameType::sub, 9, names);
  encode_name_list(s, FrameType::punsub, 10, {});
  encode_ping(s, 11);
  encode_welcome(s, "0.1.0", "node-1", 1024, 4096);
  encode_msg(s, "news", "n*", "payload");
  encode_ok(s, 12);
  encode_err(s, 13, ErrorCode::publish_timeout, "too slow");
  encode_pong(s, 14);
  encode_goaway(s, ErrorCode::shutting_down, "bye");
  return s;
}

std::vector<FrameType> decode_all(Decoder& d) {
  std::vector<FrameType> types;
  for (;;) {
    auto r = d.next();
    if (r.status != Decoder::Status::frame) {
      REQUIRE(r.status == Decoder::Status::need_more);
      return types;
    }
    types.push_back(type_of(r.frame));
  }
}

}  // namespace

TEST_CASE("every encoder round-trips through the decoder") {
  Decoder d(1 << 20);
  d.feed(all_frames());
  auto r = d.next();
  REQUIRE(r.status == Decoder::Status::frame);
  auto const& hello = std::get<Hello>(r.frame);
  CHECK(hello.version == 1);
  CHECK(hello.client_name == "app");
  CHECK(hello.auth_token == "token");

  r = d.next();
  auto const& pub = std::get<Pub>(r.frame);
  CHECK(pub.request_id == 7);
  CHECK(pub.channel == "news");
  CHECK(pub.payload == std::string_view("\0\x01\xff", 3));

  r = d.next();
  auto const& sub = std::get<NameList>(r.frame);
  CHECK(sub.type == FrameType::sub);
  REQUIRE(sub.names.size() == 3);
  CHECK(sub.names[1].empty());
  CHECK(sub.names[2] == std::string_view("chan\0nel", 8));

  r = d.next();
  CHECK(std::get<NameList>(r.frame).names.empty());
  CHECK(std::get<NameList>(r.frame).type == FrameType::punsub);
  CHECK(std::get<Ping>(d.next().frame).request_id == 11);
  auto const w = d.next();
  CHECK(std::get<Welcome>(w.frame).max_queue_bytes == 4096);
  auto const m = d.next();
  CHECK(std::get<Msg>(m.frame).pattern == "n*");
  CHECK(std::get<Ok>(d.next().frame).request_id == 12);
  auto const e = d.next();
  CHECK(std::get<Err>(e.frame).code == 301);
  CHECK(std::get<Err>(e.frame).message == "too slow");
  CHECK(std::get<Pong>(d.next().frame).request_id == 14);
  CHECK(std::get<Goaway>(d.next().frame).code == 401);
  CHECK(d.next().status == Decoder::Status::need_more);
}

TEST_CASE("a stream split at every byte boundary decodes to the same frames") {
  auto const bytes = all_frames();
  Decoder whole(1 << 20);
  whole.feed(bytes);
  auto const expected = decode_all(whole);
  REQUIRE(expected.size() == 11);
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    Decoder d(1 << 20);
    d.feed(std::string_view(bytes).substr(0, cut));
    auto got = decode_all(d);
    d.feed(std::string_view(bytes).substr(cut));
    auto rest = decode_all(d);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == expected);
  }
}

TEST_CASE("byte-at-a-time feeding decodes every frame") {
  auto const bytes = all_frames();
  Decoder d(1 << 20);
  std::size_t frames = 0;
  for (char const c : bytes) {
    d.feed(std::string_view(&c, 1));
    frames += decode_all(d).size();
  }
  CHECK(frames == 11);
}

TEST_CASE("an oversized length fails as soon as the prefix is in") {
  Decoder d(100);
  d.feed(std::string("\x00\x00\x00", 3));
  CHECK(d.next().status == Decoder::Status::need_more);
  d.feed(std::string("\x65", 1));  // 101 > 100
  auto const r = d.next();
  CHECK(r.status == Decoder::Status::error);
  CHECK(r.error == ErrorCode::frame_too_large);
  CHECK(d.capacity() < 64);  // the body was never buffered
  // The decoder stays failed.
  d.feed(all_frames());
  CHECK(d.next().status == Decoder::Status::error);
}

TEST_CASE("the frame limit counts type and body") {
  std::string f;
  encode_pub(f, 1, "c", std::string(20, 'x'));
  auto const len = f.size() - header_bytes;
  Decoder exact(len);
  exact.feed(f);
  CHECK(exact.next().status == Decoder::Status::frame);
  Decoder under(len - 1);
  under.feed(f);
  CHECK(under.next().error == ErrorCode::frame_too_large);
}

TEST_CASE("malformed bodies") {
  auto const check = [](std::string const& body, ErrorCode expected) {
    CAPTURE(body.size());
    auto const r = parse_body(body);
    CHECK_FALSE(r.ok);
    CHECK(r.error == expected);
  };
  check("", ErrorCode::malformed_frame);
  check("\x0a", ErrorCode::unknown_type);
  check(std::string("\x00", 1), ErrorCode::unknown_type);
  check("\x80", ErrorCode::unknown_type);
  check("\xff", ErrorCode::unknown_type);
  check(std::string("\x02\x00\x00", 3), ErrorCode::malformed_frame);  // PUB short id
  check(std::string("\x02\x00\x00\x00\x01\x00\x05"
                    "ab",
                    9),
        ErrorCode::malformed_frame);                                              // str short
  check(std::string("\x07\x00\x00\x00\x01\x00", 6), ErrorCode::malformed_frame);  // PING trailing
  check(std::string("\x03\x00\x00\x00\x01\xff\xff", 7),
        ErrorCode::malformed_frame);                                          // count too big
  check(std::string("\x01\x00\x01\x00\x00", 5), ErrorCode::malformed_frame);  // HELLO w/o token
}

TEST_CASE("length zero is malformed") {
  Decoder d(100);
  d.feed(std::string(4, '\0'));
  CHECK(d.next().error == ErrorCode::malformed_frame);
}

TEST_CASE("an idle decoder gives its buffer back") {
  Decoder d(1 << 20);
  std::string f;
  encode_pub(f, 1, "c", std::string(100000, 'x'));
  d.feed(f);
  REQUIRE(d.next().status == Decoder::Status::frame);
  CHECK(d.capacity() >= 100000);
  d.shrink_if_idle(4096);
  CHECK(d.capacity() == 0);
}

TEST_CASE("error codes: names and consequences") {
  CHECK(error_name(ErrorCode::frame_too_large) == "FRAME_TOO_LARGE");
  CHECK(error_from_name("OUTCOME_UNKNOWN") == ErrorCode::outcome_unknown);
  CHECK_FALSE(error_from_name("NOPE").has_value());
  CHECK(closes_connection(ErrorCode::malformed_frame));
  CHECK(closes_connection(ErrorCode::slow_consumer));
  CHECK_FALSE(closes_connection(ErrorCode::invalid_argument));
  CHECK_FALSE(closes_connection(ErrorCode::publish_buffer_full));
}

TEST_CASE("WELCOME keeps its version through decode and encode (found by the fuzzer)") {
  std::string f;
  encode_welcome(f, "x", "n", 256, 512, 7);
  Decoder d(1024);
  d.feed(f);
  auto r = d.next();
  REQUIRE(r.status == Decoder::Status::frame);
  CHECK(std::get<Welcome>(r.frame).version == 7);
  std::string again;
  encode(again, r.frame);
  CHECK(again == f);
}

TEST_CASE("the sidecar's ERR and GOAWAY texts are cut to 512 bytes, never inside a character") {
  CHECK(cut_message("short") == "short");
  std::string const exact(max_message_bytes, 'a');
  CHECK(cut_message(exact) == exact);
  CHECK(cut_message(exact + "b") == exact);
  // "é" is two bytes: one that would straddle byte 512 is left out whole.
  std::string const straddling = std::string(max_message_bytes - 1, 'a') + "\xc3\xa9" + "zz";
  CHECK(cut_message(straddling) == std::string(max_message_bytes - 1, 'a'));
  // A four-byte character ending exactly at byte 512 is kept.
  std::string const fits = std::string(max_message_bytes - 4, 'a') + "\xf0\x9f\x98\x80" + "z";
  CHECK(cut_message(fits) == fits.substr(0, max_message_bytes));
  // With the smallest limit, the longest ERR and GOAWAY the sidecar sends fit.
  std::string frame;
  encode_err(frame, 0xffffffff, ErrorCode::redis_error, cut_message(std::string(70000, 'x')));
  CHECK(frame.size() - header_bytes <= min_max_frame_bytes);
  frame.clear();
  encode_goaway(frame, ErrorCode::stream_lost, cut_message(std::string(70000, 'x')));
  CHECK(frame.size() - header_bytes <= min_max_frame_bytes);
  frame.clear();
  encode_welcome(frame, std::string(64, 'v'), std::string(255, 'n'), min_max_frame_bytes, 1 << 30);
  CHECK(frame.size() - header_bytes <= min_max_frame_bytes);
}
