// The C++ codec against proto/vectors/frames.json, the vectors every implementation in
// the repository checks (format: proto/PROTOCOL.md section 7).
#include <doctest/doctest.h>

#include <boost/json/src.hpp>  // header-only Boost.JSON, compiled into this test only
#include <deque>
#include <fstream>
#include <sstream>

#include "proto/frame.hpp"

namespace json = boost::json;
using namespace podrelay::proto;

namespace {

json::value load_vectors() {
  std::ifstream in(PODRELAY_VECTORS_FILE);
  REQUIRE_MESSAGE(in, "cannot open " PODRELAY_VECTORS_FILE);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::string unhex(std::string_view hex) {
  REQUIRE(hex.size() % 2 == 0);
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string tohex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char const c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

// Builds the expected frame from its JSON form; strings live in `store`.
Frame frame_from_json(json::object const& o, std::deque<std::string>& store) {
  auto const str = [&](char const* key) -> std::string_view {
    return store.emplace_back(unhex(o.at(key).as_string()));
  };
  auto const u32 = [&](char const* key) {
    return static_cast<std::uint32_t>(o.at(key).to_number<std::uint64_t>());
  };
  auto const u16 = [&](char const* key) {
    return static_cast<std::uint16_t>(o.at(key).to_number<std::uint64_t>());
  };
  auto const list = [&](char const* key) {
    std::vector<std::string_view> v;
    for (auto const& item : o.at(key).as_array())
      v.push_back(store.emplace_back(unhex(item.as_string())));
    return v;
  };
  std::string_view const type = o.at("type").as_string();
  if (type == "HELLO") return Hello{u16("version"), str("client_name"), str("auth_token")};
  if (type == "PUB") return Pub{u32("request_id"), str("channel"), str("payload")};
  if (type == "PUBX") return Pub{u32("request_id"), str("channel"), str("payload"), true};
  if (type == "SUB") return NameList{FrameType::sub, u32("request_id"), list("channels")};
  if (type == "UNSUB") return NameList{FrameType::unsub, u32("request_id"), list("channels")};
  if (type == "PSUB") return NameList{FrameType::psub, u32("request_id"), list("patterns")};
  if (type == "PUNSUB") return NameList{FrameType::punsub, u32("request_id"), list("patterns")};
  if (type == "PING") return Ping{u32("request_id")};
  if (type == "WELCOME") {
    return Welcome{u16("version"), str("server_version"), str("node_id"), u32("max_frame_bytes"),
                   u32("max_queue_bytes")};
  }
  if (type == "MSG") return Msg{str("channel"), str("pattern"), str("payload")};
  if (type == "OK") return Ok{u32("request_id")};
  if (type == "ERR") return Err{u32("request_id"), u16("code"), str("message")};
  if (type == "PONG") return Pong{u32("request_id")};
  if (type == "GOAWAY") return Goaway{u16("code"), str("message")};
  if (type == "RSUB") return Rsub{u32("request_id"), str("channel"), str("since_id"), str("epoch")};
  if (type == "SMSG") return Smsg{str("channel"), str("id"), str("payload")};
  if (type == "PUBOK") return PubOk{u32("request_id"), str("id")};
  if (type == "RSUBOK") {
    return RsubOk{u32("request_id"), u16("recovered"), str("epoch"), str("last_id")};
  }
  FAIL("unknown type in vectors: " << type);
  return Ping{};
}

// Two decoded frames are equal when they encode to the same bytes (every field counts).
std::string encoded(Frame const& f) {
  std::string out;
  encode(out, f);
  return out;
}

}  // namespace

TEST_CASE("valid vectors decode, re-encode, and survive every split point") {
  auto const root = load_vectors();
  auto const max = root.at("max_frame_bytes").to_number<std::size_t>();
  auto const& valid = root.at("valid").as_array();
  REQUIRE(valid.size() >= 13);
  for (auto const& v : valid) {
    auto const& o = v.as_object();
    std::string const name(o.at("name").as_string());
    CAPTURE(name);
    std::deque<std::string> store;
    auto const expected = frame_from_json(o.at("frame").as_object(), store);
    auto const bytes = unhex(o.at("hex").as_string());
    CHECK(tohex(encoded(expected)) == std::string(o.at("hex").as_string()));
    for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
      Decoder d(max);
      d.set_version(max_protocol_version);  // the vectors are version 3
      d.feed(std::string_view(bytes).substr(0, cut));
      auto r = d.next();
      if (cut < bytes.size()) {
        CHECK(r.status == Decoder::Status::need_more);
        d.feed(std::string_view(bytes).substr(cut));
        r = d.next();
      }
      REQUIRE(r.status == Decoder::Status::frame);
      CHECK(type_of(r.frame) == type_of(expected));
      CHECK(tohex(encoded(r.frame)) == tohex(bytes));
      CHECK(d.next().status == Decoder::Status::need_more);
    }
  }
}

TEST_CASE("version 2 types are unknown to a version 1 decoder") {
  for (std::uint8_t const t : {0x08, 0x87, 0x88, 0x89}) {
    CAPTURE(int{t});
    std::string frame("\x00\x00\x00\x0d", 4);
    frame.push_back(static_cast<char>(t));
    frame.append(12, '\0');
    Decoder v1(1024);
    v1.feed(frame);
    auto const r = v1.next();
    REQUIRE(r.status == Decoder::Status::error);
    CHECK(r.error == ErrorCode::unknown_type);
    Decoder v2(1024);
    v2.set_version(2);
    v2.feed(frame);
    auto const r2 = v2.next();  // known: decoded (or malformed), never an unknown type
    CHECK((r2.status == Decoder::Status::frame || r2.error != ErrorCode::unknown_type));
  }
}

TEST_CASE("PUBX is unknown before version 3 and decodes as a PUB that excepts its sender") {
  std::string frame;
  encode_pub(frame, 7, "room", "hi", true);
  CHECK(tohex(frame) == "0000000d09000000070004726f6f6d6869");
  for (std::uint16_t const version : {1, 2}) {
    CAPTURE(version);
    Decoder d(1024);
    d.set_version(version);
    d.feed(frame);
    auto const r = d.next();
    REQUIRE(r.status == Decoder::Status::error);
    CHECK(r.error == ErrorCode::unknown_type);
  }
  Decoder v3(1024);
  v3.set_version(3);
  v3.feed(frame);
  auto const r = v3.next();
  REQUIRE(r.status == Decoder::Status::frame);
  CHECK(type_of(r.frame) == FrameType::pubx);
  auto const& pub = std::get<Pub>(r.frame);
  CHECK(pub.except_sender);
  CHECK(pub.request_id == 7);
  CHECK(pub.channel == "room");
  CHECK(pub.payload == "hi");
  CHECK(frame_type_name(FrameType::pubx) == "PUBX");
}

TEST_CASE("malformed vectors give the error the spec names") {
  auto const root = load_vectors();
  auto const max = root.at("max_frame_bytes").to_number<std::size_t>();
  auto const& malformed = root.at("malformed").as_array();
  REQUIRE(malformed.size() >= 8);
  for (auto const& v : malformed) {
    auto const& o = v.as_object();
    std::string const name(o.at("name").as_string());
    CAPTURE(name);
    auto const code = o.at("code").to_number<std::uint16_t>();
    CHECK(error_name(static_cast<ErrorCode>(code)) == std::string_view(o.at("error").as_string()));
    Decoder d(max);
    d.set_version(max_protocol_version);  // the vectors are version 3
    d.feed(unhex(o.at("hex").as_string()));
    auto const r = d.next();
    REQUIRE(r.status == Decoder::Status::error);
    CHECK(static_cast<std::uint16_t>(r.error) == code);
  }
}
