#include <doctest/doctest.h>

#include <string>

#include "redis/cluster_slots.hpp"
#include "redis/resp.hpp"
#include "reply_bytes.hpp"

using namespace podrelay::redis;

TEST_CASE("CRC16 and key slots match Redis") {
  CHECK(crc16_xmodem("123456789") == 0x31C3);  // the reference check value of CRC16/XMODEM
  CHECK(key_slot("foo") == 12182);             // CLUSTER KEYSLOT foo
  CHECK(key_slot("bar") == 5061);              // CLUSTER KEYSLOT bar
  CHECK(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
  CHECK(key_slot("{user1000}.following") == key_slot("user1000"));
  CHECK(key_slot("foo{}{bar}") == key_slot("foo{}{bar}"));  // empty tag: whole key
  CHECK(key_slot("foo{}{bar}") != key_slot("bar"));
  CHECK(key_slot("foo{{bar}}zap") == key_slot("{bar"));
  CHECK(key_slot("") == 0);
}

TEST_CASE("CLUSTER SLOTS replies become a slot map") {
  std::string const bytes =
      "*2\r\n"
      "*3\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
      "*4\r\n:8192\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
      "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n";
  auto const parsed = SlotMap::parse(*parse_reply(bytes));
  REQUIRE(parsed);
  auto const& map = *parsed;
  CHECK(map.covers_all_slots());
  CHECK(map.owner(0)->port == 7000);
  CHECK(map.owner(8191)->port == 7000);
  CHECK(map.owner(8192)->port == 7001);
  CHECK(map.owner(16383)->port == 7001);
  CHECK(map.masters().size() == 2);
}

TEST_CASE("gaps and garbage in CLUSTER SLOTS") {
  std::string const gap = "*1\r\n*3\r\n:0\r\n:100\r\n*2\r\n$1\r\nh\r\n:1\r\n";
  auto const parsed = SlotMap::parse(*parse_reply(gap));
  REQUIRE(parsed);
  CHECK_FALSE(parsed->covers_all_slots());
  CHECK_FALSE(parsed->owner(101).has_value());

  std::string const bad = "*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n";  // last < first
  auto const invalid = SlotMap::parse(*parse_reply(bad));
  REQUIRE_FALSE(invalid);
  CHECK(invalid.error().code == podrelay::errc::slot_map_invalid);
  CHECK(invalid.error().reason == "CLUSTER SLOTS: slot range or port out of bounds");

  std::string const refused = "-ERR This instance has cluster support disabled\r\n";
  auto const disabled = SlotMap::parse(*parse_reply(refused));
  REQUIRE_FALSE(disabled);
  CHECK(disabled.error().reason ==
        "CLUSTER SLOTS failed: ERR This instance has cluster support disabled");
}

TEST_CASE("CLUSTER SLOTS: an empty endpoint is the node asked, \"?\" is a gap") {
  // A one-node cluster whose node never met another reports "" as its own address.
  std::string const bytes =
      "*2\r\n"
      "*3\r\n:0\r\n:8191\r\n*3\r\n$0\r\n\r\n:7000\r\n$2\r\nid\r\n"
      "*3\r\n:8192\r\n:16383\r\n*3\r\n$1\r\n?\r\n:7001\r\n$2\r\nid\r\n";
  auto const parsed = SlotMap::parse(*parse_reply(bytes), "redis-0.redis");
  REQUIRE(parsed);
  REQUIRE(parsed->owner(0));
  CHECK(parsed->owner(0)->host == "redis-0.redis");
  CHECK(parsed->owner(0)->port == 7000);
  CHECK_FALSE(parsed->owner(8192).has_value());
  CHECK_FALSE(parsed->covers_all_slots());
}

TEST_CASE("MOVED and ASK redirects") {
  auto m = parse_redirect("MOVED 3999 127.0.0.1:6381");
  REQUIRE(m);
  CHECK_FALSE(m->ask);
  CHECK(m->slot == 3999);
  CHECK(m->target.port == 6381);
  auto a = parse_redirect("ASK 1 [::1]:7000");
  REQUIRE(a);
  CHECK(a->ask);
  CHECK(a->target.host == "::1");
  CHECK_FALSE(parse_redirect("ERR nope"));
  CHECK_FALSE(parse_redirect("MOVED x h:1"));
  CHECK_FALSE(parse_redirect("MOVED 99999 h:1"));
}
