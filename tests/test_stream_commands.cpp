// The durable publish command as it goes on the wire: the script whole (EVAL) until the
// publisher's connection has loaded it, its SHA1 (EVALSHA) after; and the stream reader's
// recheck of the entry it read last.
#include <doctest/doctest.h>

#include <string>

#include "redis/resp.hpp"
#include "redis/stream_commands.hpp"

using namespace podrelay::redis;

namespace {

// The arguments of the one command in `bytes`, decoded by a RESP reader (a command is an
// array of bulk strings, as a reply would be).
std::vector<std::string> arguments(std::string const& bytes) {
  ReplyReader reader;
  reader.feed(bytes.data(), bytes.size());
  ReplyPtr reply;
  REQUIRE(reader.next(reply) == ReplyReader::Status::reply);
  REQUIRE(reply->type == REDIS_REPLY_ARRAY);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < reply->elements; ++i) {
    out.emplace_back(reply_string(*reply->element[i]));
  }
  ReplyPtr more;
  CHECK(reader.next(more) == ReplyReader::Status::need_more);  // exactly one command
  return out;
}

DurablePublish publish() {
  DurablePublish p;
  p.stream_key = "podrelay:durable:{chat}";
  p.epoch_key = "podrelay:durable-epoch:{chat}";
  p.max_len = 10000;
  p.payload = std::string_view("hi\0there", 8);
  p.new_epoch = "0123456789abcdef";
  p.refresh_ttl = true;
  p.ttl = std::chrono::seconds(86400);
  return p;
}

}  // namespace

TEST_CASE("durable publish: EVAL with the whole script while no SHA1 is known") {
  auto const args = arguments([] {
    std::string out;
    append_durable_publish(out, publish());
    return out;
  }());
  REQUIRE(args.size() == 10);
  CHECK(args[0] == "EVAL");
  CHECK(args[1] == durable_publish_script());
  CHECK(args[2] == "2");
  CHECK(args[3] == "podrelay:durable:{chat}");
  CHECK(args[4] == "podrelay:durable-epoch:{chat}");
  CHECK(args[5] == "10000");
  CHECK(args[6] == std::string("hi\0there", 8));  // binary payloads pass untouched
  CHECK(args[7] == "0123456789abcdef");
  CHECK(args[8] == "1");
  CHECK(args[9] == "86400");
}

TEST_CASE("durable publish: EVALSHA names the loaded script, same keys and arguments") {
  auto p = publish();
  std::string eval;
  append_durable_publish(eval, p);
  p.script_sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db";
  std::string evalsha;
  append_durable_publish(evalsha, p);
  auto const a = arguments(eval);
  auto const b = arguments(evalsha);
  REQUIRE(b.size() == a.size());
  CHECK(b[0] == "EVALSHA");
  CHECK(b[1] == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  for (std::size_t i = 2; i < a.size(); ++i) CHECK(b[i] == a[i]);
  // The point of it: the script's bytes stay off the wire and out of the publish buffer.
  CHECK(durable_publish_script().size() > 500);
  CHECK(evalsha.size() + durable_publish_script().size() < eval.size() + 60);

  SUBCASE("Redis Cluster: the wake channel is a third key") {
    p.wake_channel = "podrelay:durable-wake:{chat}";
    std::string out;
    append_durable_publish(out, p);
    auto const c = arguments(out);
    REQUIRE(c.size() == 11);
    CHECK(c[0] == "EVALSHA");
    CHECK(c[2] == "3");
    CHECK(c[5] == "podrelay:durable-wake:{chat}");
    CHECK(c[6] == "10000");
  }
}

TEST_CASE("a reader's recheck asks for the entry at or before its position, not the last") {
  std::string out;
  append_entry_at_or_before(out, "podrelay:{chat}", podrelay::core::StreamId{1700000000123, 4});
  CHECK(arguments(out) == std::vector<std::string>{"XREVRANGE", "podrelay:{chat}",
                                                   "1700000000123-4", "-", "COUNT", "1"});
}

TEST_CASE("the bound on a reply of stream entries: every entry at the frame limit, or 256 MiB") {
  constexpr std::size_t mib = std::size_t{1} << 20;
  // Small pages and small frames: the floor, so entries a pod with larger frames wrote
  // still get through to be counted as too large.
  CHECK(max_entries_reply(1, 1 * mib) == 256 * mib);
  CHECK(max_entries_reply(max_page_entries, 64 * 1024) == 256 * mib);
  // A page of the largest frames: each entry's payload plus 1 KiB of id and field names.
  CHECK(max_entries_reply(max_page_entries, 64 * mib) == max_page_entries * (64 * mib + 1024));
  // An XREAD over many streams scales with them.
  CHECK(max_entries_reply(10 * max_page_entries, 1 * mib) == 10 * max_page_entries * (mib + 1024));
}
