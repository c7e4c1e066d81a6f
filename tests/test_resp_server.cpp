// Tests of the RESP front end's sans-I/O parts: the request parser (every split point,
// byte by byte, every limit and error, inline quoting, pipelines), the reply encoders and
// the command state machine. Expected reply bytes marked "captured" were captured once from
// redis-server 7.0.15 on loopback (a raw socket, the request pipelined as listed) and pasted
// here; no test opens a socket.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "resp_server/command.hpp"
#include "resp_server/reply_writer.hpp"
#include "resp_server/request_parser.hpp"

using namespace podrelay::resp_server;
using namespace std::literals;

namespace {

using Argv = std::vector<std::string>;

struct Parsed {
  std::vector<Argv> requests;
  ParseError error = ParseError::none;
  std::string error_text;
  bool operator==(Parsed const&) const = default;
};

// Takes every complete request out of `p`; stops at need_more or error.
void drain(RequestParser& p, Parsed& into) {
  for (;;) {
    auto const r = p.next();
    if (r.status == RequestParser::Status::need_more) return;
    if (r.status == RequestParser::Status::error) {
      into.error = r.error;
      into.error_text = std::string(r.error_text);
      return;
    }
    REQUIRE_FALSE(r.argv.empty());
    into.requests.emplace_back(r.argv.begin(), r.argv.end());
  }
}

Parsed parse_whole(std::string_view bytes, Limits limits = {}) {
  RequestParser p(limits);
  Parsed out;
  p.feed(bytes);
  drain(p, out);
  return out;
}

Parsed parse_bytewise(std::string_view bytes, Limits limits = {}) {
  RequestParser p(limits);
  Parsed out;
  for (char const c : bytes) {
    p.feed(std::string_view(&c, 1));
    drain(p, out);
    if (out.error != ParseError::none) break;
  }
  return out;
}

Parsed parse_split(std::string_view bytes, std::size_t cut, Limits limits = {}) {
  RequestParser p(limits);
  Parsed out;
  p.feed(bytes.substr(0, cut));
  drain(p, out);
  if (out.error == ParseError::none) {
    p.feed(bytes.substr(cut));
    drain(p, out);
  }
  return out;
}

// The same result whole, byte by byte and cut at every point.
Parsed parse_every_way(std::string_view bytes, Limits limits = {}) {
  auto const whole = parse_whole(bytes, limits);
  CHECK(parse_bytewise(bytes, limits) == whole);
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    CAPTURE(cut);
    CHECK(parse_split(bytes, cut, limits) == whole);
  }
  return whole;
}

std::string multibulk(std::initializer_list<std::string_view> args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (auto const a : args) {
    s += "$" + std::to_string(a.size()) + "\r\n";
    s.append(a);
    s += "\r\n";
  }
  return s;
}

std::string error_of(std::string_view bytes, Limits limits = {}) {
  auto const r = parse_every_way(bytes, limits);
  return r.error_text;
}

}  // namespace

TEST_CASE("parser: a pipeline of multibulk and inline requests, split every way") {
  std::string const binary("\0\r\n\xff", 4);
  std::string stream = multibulk({"SUBSCRIBE", "a", "b"});
  stream += multibulk({"PUBLISH", "news", binary});
  stream += "*0\r\n*-1\r\n";  // empty requests are skipped, as Redis does
  stream += multibulk({"ECHO", ""});
  stream += "PING\r\n\r\n\n   \r\nping  \"a b\"  'c d'\n";
  stream += multibulk({"QUIT"});
  auto const r = parse_every_way(stream);
  CHECK(r.error == ParseError::none);
  std::vector<Argv> const expected = {{"SUBSCRIBE", "a", "b"},
                                      {"PUBLISH", "news", binary},
                                      {"ECHO", ""},
                                      {"PING"},
                                      {"ping", "a b", "c d"},
                                      {"QUIT"}};
  CHECK(r.requests == expected);
}

TEST_CASE("parser: argv views point into the buffer and stay valid until the next call") {
  RequestParser p;
  p.feed(multibulk({"PUBLISH", "c", "payload"}));
  auto const r = p.next();
  REQUIRE(r.status == RequestParser::Status::request);
  REQUIRE(r.argv.size() == 3);
  CHECK(r.argv[2] == "payload");
  CHECK(p.next().status == RequestParser::Status::need_more);
  CHECK(p.buffered() == 0);
}

TEST_CASE("parser: Redis skips the two bytes after a bulk and after a header's CR unchecked") {
  // Captured: redis-server 7.0.15 answers both of these with "-ERR unknown command 'abc'"
  // then "+PONG", and "+PONG" (it never looks at those two bytes).
  CHECK(parse_every_way("*1\r\n$3\r\nabcXYPING\r\n").requests ==
        std::vector<Argv>{{"abc"}, {"PING"}});
  CHECK(parse_every_way("*1\rX$4\r\nPING\r\n").requests == std::vector<Argv>{{"PING"}});
}

TEST_CASE("parser: inline quoting follows sdssplitargs") {
  auto const one = [](std::string_view line) {
    auto const r = parse_every_way(std::string(line) + "\r\n");
    REQUIRE(r.error == ParseError::none);
    REQUIRE(r.requests.size() == 1);
    return r.requests[0];
  };
  CHECK(one("echo \"a\\x41\\q\\n\"") == Argv{"echo", "aAq\n"});  // captured: $4 aAq\n
  CHECK(one("echo \"\\r\\t\\b\\a\\\\\\\"\"") == Argv{"echo", "\r\t\b\a\\\""});
  CHECK(one("echo \"\\xZZ\" \"\\x4\"") == Argv{"echo", "xZZ", "x4"});  // not two hex digits
  CHECK(one("echo \"\\x00\\xfF\"") == Argv{"echo", std::string("\0\xff", 2)});
  CHECK(one("echo 'a\\'b' 'c\\nd'") == Argv{"echo", "a'b", "c\\nd"});  // only \' in '...'
  CHECK(one("echo \"\" ''") == Argv{"echo", "", ""});                  // captured: $0
  CHECK(one("\t echo\ta  b ") == Argv{"echo", "a", "b"});
  // A quote inside a word opens a quoted part (captured: echo a"b c" -> $4 ab c).
  CHECK(one("echo a\"b c\" x'y z'") == Argv{"echo", "ab c", "xy z"});
  // \v and \f separate arguments only where blanks are skipped, not inside a word
  // (captured: " \v PING\vx" is the unknown command 'PING\vx').
  CHECK(one(" \v PING\vx") == Argv{"PING\vx"});
  CHECK(one("PING\r") == Argv{"PING"});        // "PING\r\r\n": captured +PONG
  CHECK(one("PI\0NG x"sv) == Argv{"PI"});      // the line ends at a NUL
  CHECK(one("\"a\"\t'b'") == Argv{"a", "b"});  // a closing quote followed by a blank
}

TEST_CASE("parser: unbalanced quotes") {
  constexpr std::string_view text = "Protocol error: unbalanced quotes in request";
  CHECK(error_of("\"abc\r\n") == text);         // captured
  CHECK(error_of("set \"a\"b c\r\n") == text);  // captured: closing quote then a letter
  CHECK(error_of("echo ''x\r\n") == text);      // captured
  CHECK(error_of("echo 'abc\r\n") == text);
  CHECK(error_of("echo \"abc\\\"\r\n") == text);  // the escaped quote does not close
  CHECK(error_of("echo \"ab\\\r\n") == text);     // a backslash at the end
  CHECK(error_of("echo \"a\0\"\r\n"sv) == text);  // the NUL ends the line inside quotes
  CHECK(error_of("echo a\"b c\"d\r\n") == text);  // a closing quote then a letter
}

TEST_CASE("parser: empty inline lines and empty multibulk requests are skipped") {
  auto const r = parse_every_way("\r\n\n \t \r\n*0\r\n*-1\r\n*-5\r\nPING\r\n");
  CHECK(r.requests == std::vector<Argv>{{"PING"}});  // captured: "*-1\r\n*0\r\nPING" -> +PONG
}

TEST_CASE("parser: multibulk count errors, with Redis 7's texts") {
  constexpr std::string_view invalid = "Protocol error: invalid multibulk length";
  // All captured from redis-server 7.0.15.
  CHECK(error_of("*x\r\n") == invalid);
  CHECK(error_of("*3000000000\r\n") == invalid);  // above INT_MAX
  CHECK(error_of("*01\r\n") == invalid);
  CHECK(error_of("*+1\r\n") == invalid);
  CHECK(error_of("*\r\n") == invalid);
  CHECK(error_of("*1 \r\n") == invalid);
  CHECK(error_of("*99999999999999999999\r\n") == invalid);
  CHECK(error_of(std::string("*1\0\r\n", 5)) == invalid);
  // podrelay's limit: Redis 7 would wait for the bytes of *999999999 (Redis 6 refused
  // above 1,048,576 with this text).
  CHECK(error_of("*999999999\r\n") == invalid);
  CHECK(error_of("*1048577\r\n") == invalid);
  Limits small;
  small.max_args = 3;
  CHECK(error_of("*4\r\n", small) == invalid);
  CHECK(parse_every_way(multibulk({"a", "b", "c"}), small).requests.size() == 1);
}

TEST_CASE("parser: a header count allocates nothing before the bytes arrive") {
  RequestParser p;
  p.feed("*1048576\r\n");
  CHECK(p.next().status == RequestParser::Status::need_more);
  CHECK(p.capacity() < 64);
  p.feed("$1\r\na\r\n");
  CHECK(p.next().status == RequestParser::Status::need_more);
  CHECK(p.capacity() < 64);
}

TEST_CASE("parser: bulk length errors, with Redis 7's texts") {
  constexpr std::string_view invalid = "Protocol error: invalid bulk length";
  // Captured from redis-server 7.0.15.
  CHECK(error_of("*1\r\n$x\r\n") == invalid);
  CHECK(error_of("*1\r\n$-1\r\n") == invalid);
  CHECK(error_of("*1\r\n$01\r\n") == invalid);
  CHECK(error_of("*1\r\n$\r\n") == invalid);
  CHECK(error_of("*2\r\n$4\r\nPING\r\n$2000000000\r\n") == invalid);
  CHECK(error_of("*1\r\n$" + std::to_string(Limits{}.max_bulk_bytes + 1) + "\r\n") == invalid);
  CHECK(error_of("*1\r\nx\r\n") == "Protocol error: expected '$', got 'x'");
  CHECK(error_of("*1\r\n:1\r\n") == "Protocol error: expected '$', got ':'");
  CHECK(error_of("*1\r\n\r\n") == "Protocol error: expected '$', got ' '");  // CR shown as space
  // %c of a NUL ends Redis' C string there.
  CHECK(error_of(std::string("*1\r\n\0\r\n", 7)) == "Protocol error: expected '$', got '");
}

TEST_CASE("parser: a 2 GB bulk length fails before any of its bytes is buffered") {
  RequestParser p;
  p.feed("*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$2147483648\r\n");
  auto const r = p.next();
  CHECK(r.status == RequestParser::Status::error);
  CHECK(r.error == ParseError::invalid_bulk_length);
  CHECK(p.capacity() < 128);
  // Failed for good.
  p.feed("PING\r\n");
  CHECK(p.next().status == RequestParser::Status::error);
  CHECK(p.failed());
}

TEST_CASE("parser: the bulk limit is inclusive") {
  Limits l;
  l.max_bulk_bytes = 10;
  CHECK(parse_every_way(multibulk({"ECHO", "0123456789"}), l).requests.size() == 1);
  CHECK(parse_whole(multibulk({"ECHO", "0123456789x"}), l).error ==
        ParseError::invalid_bulk_length);
}

TEST_CASE("parser: the request limit counts every wire byte of one request") {
  Limits l;
  l.max_request_bytes = 41;
  auto const fits = multibulk({"PUBLISH", "c", "0123456789"});  // 41 bytes
  REQUIRE(fits.size() == 41);
  CHECK(parse_every_way(fits + fits, l).requests.size() == 2);  // per request, not per stream
  auto const over = multibulk({"PUBLISH", "c", "01234567890"});
  CHECK(error_of(over, l) == "Protocol error: too big request for podrelay");
  auto const derived = Limits::for_max_frame_bytes(1 << 20);
  CHECK(derived.max_bulk_bytes == Limits{}.max_bulk_bytes);
  CHECK(derived.max_request_bytes == Limits{}.max_request_bytes);
  CHECK(derived.max_request_bytes > 2 * derived.max_bulk_bytes);
}

TEST_CASE("parser: inline lines up to 64 KiB, whatever the chunking") {
  Limits l;
  l.max_inline_bytes = 16;  // the same code path as 64 KiB, with every split point testable
  CHECK(parse_every_way(std::string(15, 'a') + "\r\n", l).requests.size() == 1);  // 16 with CR
  CHECK(error_of(std::string(16, 'a') + "\r\n", l) == "Protocol error: too big inline request");
  CHECK(parse_every_way(std::string(16, 'a') + "\n", l).requests.size() == 1);
  // 16 bytes without a newline wait; the 17th fails.
  CHECK(parse_whole(std::string(16, 'a'), l).error == ParseError::none);
  CHECK(parse_whole(std::string(17, 'a'), l).error == ParseError::too_big_inline_request);
}

TEST_CASE("parser: an unterminated 10 MB inline request fails after 64 KiB") {
  RequestParser p;
  std::string const chunk(16 * 1024, 'x');
  std::size_t fed = 0;
  RequestParser::Result r;
  while (fed < 10 * 1024 * 1024) {
    p.feed(chunk);
    fed += chunk.size();
    r = p.next();
    if (r.status != RequestParser::Status::need_more) break;
  }
  CHECK(r.status == RequestParser::Status::error);
  CHECK(r.error_text == "Protocol error: too big inline request");  // captured text
  CHECK(fed == 5 * chunk.size());  // 80 KiB: the first read past 64 KiB
  CHECK(p.capacity() < 128 * 1024);
}

TEST_CASE("parser: header lines longer than the inline limit") {
  Limits l;
  l.max_inline_bytes = 16;
  CHECK(error_of("*" + std::string(16, '1'), l) == "Protocol error: too big mbulk count string");
  CHECK(error_of("*1\r\n$" + std::string(16, '1'), l) ==
        "Protocol error: too big bulk count string");
  // Shorter: refused as a number, when the CR arrives.
  CHECK(error_of("*" + std::string(15, '1') + "\r\n", l) ==
        "Protocol error: invalid multibulk length");
  // The limit is per line, not per request.
  l.max_inline_bytes = 8;
  CHECK(parse_every_way(multibulk({"a", "b", "c", "d", "e"}), l).requests.size() == 1);
}

TEST_CASE("parser: before authentication Redis 7's small limits apply") {
  // Captured from redis-server 7.0.15 with requirepass set.
  auto const unauth = [](std::string_view bytes) {
    RequestParser p;
    p.set_authenticated(false);
    Parsed out;
    p.feed(bytes);
    drain(p, out);
    return out;
  };
  CHECK(unauth("*11\r\n").error_text == "Protocol error: unauthenticated multibulk length");
  CHECK(unauth("*10\r\n$16385\r\n").error_text == "Protocol error: unauthenticated bulk length");
  CHECK(unauth("*2\r\n$16384\r\n").error == ParseError::none);
  CHECK(unauth(multibulk({"AUTH", "token"})).requests.size() == 1);
  // Once authenticated, the normal limits.
  RequestParser p;
  p.set_authenticated(false);
  p.feed(multibulk({"AUTH", "t"}));
  REQUIRE(p.next().status == RequestParser::Status::request);
  p.set_authenticated(true);
  p.feed("*11\r\n");
  CHECK(p.next().status == RequestParser::Status::need_more);
}

TEST_CASE("parser: a large argument is read in few prepares and the buffer is given back") {
  RequestParser p;
  std::string const payload(1 << 20, 'p');
  auto const bytes = multibulk({"PUBLISH", "c", payload});
  auto const head = bytes.substr(0, 40);
  p.feed(head);
  CHECK(p.next().status == RequestParser::Status::need_more);
  auto const space = p.prepare(16);
  CHECK(space.size() >= bytes.size() - head.size());  // room for the whole rest at once
  std::copy(bytes.begin() + static_cast<std::ptrdiff_t>(head.size()), bytes.end(), space.data());
  p.commit(bytes.size() - head.size());
  auto const r = p.next();
  REQUIRE(r.status == RequestParser::Status::request);
  CHECK(r.argv[2].size() == payload.size());
  CHECK(p.next().status == RequestParser::Status::need_more);
  p.shrink_if_idle(4096);
  CHECK(p.capacity() == 0);
  p.feed("PING\r\n");  // still usable
  CHECK(p.next().status == RequestParser::Status::request);
}

TEST_CASE("parser: a partial request keeps its buffer") {
  RequestParser p;
  p.feed("*2\r\n$4\r\nECHO\r\n");
  CHECK(p.next().status == RequestParser::Status::need_more);
  p.shrink_if_idle(0);
  CHECK(p.capacity() > 0);
  p.feed("$2\r\nhi\r\n");
  auto const r = p.next();
  REQUIRE(r.status == RequestParser::Status::request);
  CHECK(r.argv[1] == "hi");
}

TEST_CASE("parse_integer is Redis' string2ll") {
  std::int64_t v = 0;
  CHECK((parse_integer("0", v) && v == 0));
  CHECK((parse_integer("-1", v) && v == -1));
  CHECK((parse_integer("9223372036854775807", v) && v == INT64_MAX));
  CHECK((parse_integer("-9223372036854775808", v) && v == INT64_MIN));
  for (auto const bad : {"", "-", "+1", "01", "-0", "1x", " 1", "9223372036854775808",
                         "-9223372036854775809", "18446744073709551616"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_integer(bad, v));
  }
}

TEST_CASE("writer: scalars and aggregate headers in RESP2 and RESP3") {
  std::string s;
  append_simple(s, "OK");
  append_error(s, "ERR bad\r\nthing\n");  // CR and LF become spaces
  append_integer(s, -42);
  append_bulk(s, std::string_view("a\0b", 3));
  append_bulk(s, "");
  CHECK(s == "+OK\r\n-ERR bad  thing \r\n:-42\r\n$3\r\na\0b\r\n$0\r\n\r\n"sv);
  auto const both = [](auto&& f) {
    std::string r2, r3;
    f(r2, Protocol::resp2);
    f(r3, Protocol::resp3);
    return std::pair{r2, r3};
  };
  CHECK(both([](std::string& o, Protocol p) { append_null(o, p); }) ==
        std::pair<std::string, std::string>{"$-1\r\n", "_\r\n"});
  CHECK(both([](std::string& o, Protocol p) { append_null_array(o, p); }) ==
        std::pair<std::string, std::string>{"*-1\r\n", "_\r\n"});
  CHECK(both([](std::string& o, Protocol p) { append_map_header(o, p, 7); }) ==
        std::pair<std::string, std::string>{"*14\r\n", "%7\r\n"});
  CHECK(both([](std::string& o, Protocol p) { append_set_header(o, p, 2); }) ==
        std::pair<std::string, std::string>{"*2\r\n", "~2\r\n"});
  CHECK(both([](std::string& o, Protocol p) { append_push_header(o, p, 3); }) ==
        std::pair<std::string, std::string>{"*3\r\n", ">3\r\n"});
  CHECK(both([](std::string& o, Protocol p) { append_bool(o, p, true); }) ==
        std::pair<std::string, std::string>{":1\r\n", "#t\r\n"});
  CHECK(both([](std::string& o, Protocol p) { append_double(o, p, 1.5); }) ==
        std::pair<std::string, std::string>{"$3\r\n1.5\r\n", ",1.5\r\n"});
  CHECK(both([](std::string& o, Protocol p) { append_double(o, p, -1.0 / 0.0); }) ==
        std::pair<std::string, std::string>{"$4\r\n-inf\r\n", ",-inf\r\n"});
  // Captured: INFO keyspace answers "$12\r\n# Keyspace\r\n\r\n"; RESP3 INFO is verbatim
  // ("=584\r\ntxt:# Server...").
  CHECK(both([](std::string& o, Protocol p) { append_verbatim(o, p, "# Keyspace\r\n"); }) ==
        std::pair<std::string, std::string>{"$12\r\n# Keyspace\r\n\r\n",
                                            "=16\r\ntxt:# Keyspace\r\n\r\n"});
  std::string big;
  append_array_header(big, 1234567);
  append_integer(big, INT64_MIN);
  CHECK(big == "*1234567\r\n:-9223372036854775808\r\n");
}

TEST_CASE("writer: message pushes are Redis 7's bytes") {
  // Captured from redis-server 7.0.15: a RESP2 and a RESP3 (HELLO 3) subscriber of ch, c*
  // and shard channel sh while another client ran PUBLISH ch hi, SPUBLISH sh yo, PUBLISH ch "".
  std::string r2, r3;
  for (auto const p : {Protocol::resp2, Protocol::resp3}) {
    auto& s = p == Protocol::resp2 ? r2 : r3;
    append_message(s, p, "ch", "hi");
    append_pmessage(s, p, "c*", "ch", "hi");
    append_smessage(s, p, "sh", "yo");
    append_message(s, p, "ch", "");
    append_pmessage(s, p, "c*", "ch", "");
  }
  CHECK(r2 ==
        "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\n"
        "ch\r\n$2\r\nhi\r\n*3\r\n$8\r\nsmessage\r\n$2\r\nsh\r\n$2\r\nyo\r\n*3\r\n$7\r\nmessage\r\n"
        "$2\r\nch\r\n$0\r\n\r\n*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n");
  CHECK(r3 ==
        ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n>4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\n"
        "ch\r\n$2\r\nhi\r\n>3\r\n$8\r\nsmessage\r\n$2\r\nsh\r\n$2\r\nyo\r\n>3\r\n$7\r\nmessage\r\n"
        "$2\r\nch\r\n$0\r\n\r\n>4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n");
}

TEST_CASE("writer: message_size is the encoded size") {
  std::string const payload(12345, 'x');
  for (auto const sharded : {false, true}) {
    std::string s;
    if (sharded)
      append_smessage(s, Protocol::resp3, "channel", payload);
    else
      append_message(s, Protocol::resp2, "channel", payload);
    CHECK(s.size() == message_size({}, "channel", payload, sharded));
  }
  std::string s;
  append_pmessage(s, Protocol::resp2, "ch*", "channel", payload);
  CHECK(s.size() == message_size("ch*", "channel", payload, false));
}

TEST_CASE("writer: subscription counts as Redis shows them") {
  CHECK(subscription_count(SubKind::channel, 2, 1, 5) == 3);
  CHECK(subscription_count(SubKind::pattern, 2, 1, 5) == 3);
  CHECK(subscription_count(SubKind::shard, 2, 1, 5) == 5);
}

namespace {

// What the session does with the machine's actions, reduced to the bookkeeping Redis does
// per client (insertion-ordered names per kind), so whole exchanges can be compared with
// Redis' bytes. PUBLISH is answered with 0 receivers, as Redis did in the captures.
struct Exchange {
  Config config;
  CommandMachine machine;
  std::map<SubKind, std::vector<std::string>> subs;
  std::string out;
  bool closed = false;
  std::vector<Action> actions;

  explicit Exchange(Config c = {}, std::int64_t id = 7)
      : config(std::move(c)), machine(config, id) {}

  CommandMachine::Counts counts() const {
    auto n = [&](SubKind k) {
      auto const it = subs.find(k);
      return it == subs.end() ? std::int64_t{0} : static_cast<std::int64_t>(it->second.size());
    };
    return {n(SubKind::channel), n(SubKind::pattern), n(SubKind::shard)};
  }
  std::int64_t shown(SubKind k) const {
    auto const c = counts();
    return subscription_count(k, c.channels, c.patterns, c.shards);
  }

  void run(std::vector<std::string_view> argv) {
    auto action = machine.handle(argv, out);
    auto const p = machine.protocol();
    if (auto const* s = std::get_if<Subscribe>(&action)) {
      for (auto const n : s->names) {
        auto& v = subs[s->kind];
        if (std::find(v.begin(), v.end(), n) == v.end()) v.emplace_back(n);
        append_subscribed(out, p, s->kind, n, shown(s->kind));
      }
    } else if (auto const* u = std::get_if<Unsubscribe>(&action)) {
      auto& v = subs[u->kind];
      std::vector<std::string> names(u->names.begin(), u->names.end());
      if (names.empty()) names = v;
      if (names.empty()) append_unsubscribed(out, p, u->kind, std::nullopt, shown(u->kind));
      for (auto const& n : names) {
        std::erase(v, n);
        append_unsubscribed(out, p, u->kind, n, shown(u->kind));
      }
    } else if (std::holds_alternative<Publish>(action)) {
      append_integer(out, 0);
    } else if (std::holds_alternative<Reset>(action)) {
      subs.clear();
    } else if (std::holds_alternative<Close>(action)) {
      closed = true;
    }
    machine.set_subscriptions(counts());
    actions.push_back(std::move(action));
  }
  void run_all(std::vector<std::vector<std::string_view>> const& requests) {
    for (auto const& r : requests) run(r);
  }
};

}  // namespace

TEST_CASE("commands: RESP2 subscribed mode, byte for byte as Redis 7") {
  Exchange x;
  x.run_all({{"SUBSCRIBE", "a", "b"},
             {"PING"},
             {"PING", "hi"},
             {"GET", "x"},
             {"ECHO", "x"},
             {"CLIENT", "ID"},
             {"PSUBSCRIBE", "p*"},
             {"SSUBSCRIBE", "s"},
             {"UNSUBSCRIBE", "b"},
             {"UNSUBSCRIBE", "a"},
             {"PUNSUBSCRIBE"},
             {"SUNSUBSCRIBE"},
             {"PING"},
             {"UNSUBSCRIBE"},
             {"PUNSUBSCRIBE"},
             {"SUNSUBSCRIBE"},
             {"UNSUBSCRIBE", "x", "y"}});
  // Captured from redis-server 7.0.15 (the same pipeline).
  CHECK(x.out ==
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n"
        "$1\r\nb\r\n:2\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\n"
        "pong\r\n$2\r\nhi\r\n"
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
        "are allowed in this context\r\n"
        "-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
        "are allowed in this context\r\n"
        "-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        "RESET are allowed in this context\r\n"
        "*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n*3\r\n$10\r\n"
        "ssubscribe\r\n$1\r\ns\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n"
        ":2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$12\r\n"
        "punsubscribe\r\n$2\r\np*\r\n:0\r\n*3\r\n$12\r\nsunsubscribe\r\n$1\r\n"
        "s\r\n:0\r\n+PONG\r\n*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n*3\r\n"
        "$12\r\npunsubscribe\r\n$-1\r\n:0\r\n*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n"
        ":0\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:0\r\n*3\r\n$11\r\n"
        "unsubscribe\r\n$1\r\ny\r\n:0\r\n");
}

TEST_CASE("commands: RESP3 pushes and HELLO, byte for byte as Redis 7") {
  Exchange x({}, 108);  // the client id Redis gave in the capture
  x.run_all({{"HELLO", "3"},
             {"SUBSCRIBE", "a"},
             {"PING"},
             {"PING", "hi"},
             {"SSUBSCRIBE", "s"},
             {"UNSUBSCRIBE"},
             {"UNSUBSCRIBE"},
             {"SUNSUBSCRIBE", "s"},
             {"HELLO", "2"},
             {"PING"}});
  // Captured from redis-server 7.0.15 (the same pipeline).
  CHECK(x.out ==
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n"
        "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:108\r\n$4\r\nmode\r\n$10\r\n"
        "standalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n+PONG\r\n$2\r\nhi\r\n"
        ">3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n>3\r\n$11\r\n"
        "unsubscribe\r\n$1\r\na\r\n:0\r\n>3\r\n$11\r\nunsubscribe\r\n_\r\n"
        ":0\r\n>3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n*14\r\n$6\r\n"
        "server\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\n"
        "proto\r\n:2\r\n$2\r\nid\r\n:108\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
        "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n+PONG\r\n");
  CHECK(x.machine.protocol() == Protocol::resp2);
}

TEST_CASE("commands: connection commands and their errors, byte for byte as Redis 7") {
  Exchange x;
  x.run_all({{"PING"},
             {"PING", "hi"},
             {"ECHO", "hi"},
             {"SELECT", "0"},
             {"SELECT", "16"},
             {"SELECT", "x"},
             {"CLIENT", "GETNAME"},
             {"CLIENT", "SETNAME", "app"},
             {"CLIENT", "GETNAME"},
             {"CLIENT", "SETNAME", "a b"},
             {"CLIENT", "NO-EVICT", "on"},
             {"CLIENT", "NO-EVICT", "maybe"},
             {"CLIENT", "FOO"},
             {"CLIENT"},
             {"CLIENT", "SETNAME"},
             {"PING", "a", "b"},
             {"ECHO"},
             {"SUBSCRIBE"},
             {"PUBLISH", "a"},
             {"HELLO", "4"},
             {"HELLO", "x"},
             {"HELLO", "3", "FOO"},
             {"HELLO", "3", "AUTH", "u"},
             {"HELLO", "3", "SETNAME", "a b"},
             {"COMMAND", "FOO"},
             {"COMMAND", "DOCS", "nosuch"},
             {"COMMAND", "INFO", "nosuch"},
             {"PUBSUB", "FOO"},
             {"PUBSUB"},
             {"PUBSUB", "NUMPAT", "x"},
             {"AUTH", "a", "b", "c"},
             {"AUTH"},
             {"RESET"},
             {"QUIT"}});
  // Captured from redis-server 7.0.15 (the same pipeline; Redis then closed).
  CHECK(x.out ==
        "+PONG\r\n$2\r\nhi\r\n$2\r\nhi\r\n+OK\r\n-ERR DB index is out of range\r\n"
        "-ERR value is not an integer or out of range\r\n$-1\r\n+OK\r\n$3\r\napp\r\n"
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n+OK\r\n"
        "-ERR syntax error\r\n-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"
        "-ERR wrong number of arguments for 'client' command\r\n"
        "-ERR wrong number of arguments for 'client|setname' command\r\n"
        "-ERR wrong number of arguments for 'ping' command\r\n"
        "-ERR wrong number of arguments for 'echo' command\r\n"
        "-ERR wrong number of arguments for 'subscribe' command\r\n"
        "-ERR wrong number of arguments for 'publish' command\r\n"
        "-NOPROTO unsupported protocol version\r\n"
        "-ERR Protocol version is not an integer or out of range\r\n"
        "-ERR Syntax error in HELLO option 'FOO'\r\n"
        "-ERR Syntax error in HELLO option 'AUTH'\r\n"
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n*0\r\n*1\r\n$-1\r\n"
        "-ERR unknown subcommand 'FOO'. Try PUBSUB HELP.\r\n"
        "-ERR wrong number of arguments for 'pubsub' command\r\n"
        "-ERR wrong number of arguments for 'pubsub|numpat' command\r\n-ERR syntax error\r\n"
        "-ERR wrong number of arguments for 'auth' command\r\n+RESET\r\n+OK\r\n");
  CHECK(x.closed);
  CHECK(std::holds_alternative<Close>(x.actions.back()));
}

TEST_CASE("commands: NOAUTH, WRONGPASS and AUTH with a token, byte for byte as Redis 7") {
  Config c;
  c.auth_token = "sekret";
  Exchange x(c);
  x.run_all({{"PING"},
             {"SUBSCRIBE", "a"},
             {"HELLO", "3"},
             {"HELLO", "2", "AUTH", "default", "bad"},
             {"AUTH", "bad"},
             {"AUTH", "x", "y"},
             {"CLIENT", "ID"},
             {"INFO"},
             {"RESET"},
             {"QUIT"}});
  // Captured from redis-server 7.0.15 with requirepass sekret.
  CHECK(x.out ==
        "-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
        "AUTH <user> <pass> option can be used to authenticate the client and select the RESP "
        "protocol version at the same time\r\n"
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        "-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n+RESET\r\n"
        "+OK\r\n");
  CHECK_FALSE(x.machine.authenticated());

  Exchange y(c, 28);
  y.run_all({{"AUTH", "sekret"},
             {"PING"},
             {"RESET"},
             {"PING"},
             {"HELLO", "3", "AUTH", "default", "sekret"},
             {"PING"}});
  // Captured likewise: RESET takes the authentication back.
  CHECK(y.out ==
        "+OK\r\n+PONG\r\n+RESET\r\n-NOAUTH Authentication required.\r\n%7\r\n$6\r\n"
        "server\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\n"
        "proto\r\n:3\r\n$2\r\nid\r\n:28\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
        "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n+PONG\r\n");
}

TEST_CASE("commands: HELLO SETNAME, a failed HELLO keeps the protocol, RESET clears the name") {
  Exchange x({}, 110);
  x.run_all({{"HELLO", "3", "SETNAME", "app"},
             {"CLIENT", "GETNAME"},
             {"COMMAND", "DOCS", "nosuch"},
             {"HELLO", "2", "SETNAME", "a b"},
             {"CLIENT", "GETNAME"},
             {"HELLO"},
             {"RESET"},
             {"CLIENT", "GETNAME"}});
  // Captured from redis-server 7.0.15 (the same pipeline).
  CHECK(x.out ==
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n"
        "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:110\r\n$4\r\nmode\r\n$10\r\n"
        "standalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        "$3\r\napp\r\n%0\r\n"
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n$3\r\n"
        "app\r\n%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n"
        "7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:110\r\n$4\r\nmode\r\n"
        "$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n"
        "*0\r\n+RESET\r\n$-1\r\n");
}

TEST_CASE("commands: pub/sub actions carry the request's views") {
  Exchange x;
  std::vector<std::string_view> const pub = {"publish", "news", "hello"};
  auto const a = x.machine.handle(pub, x.out);
  auto const* p = std::get_if<Publish>(&a);
  REQUIRE(p);
  CHECK(p->channel.data() == pub[1].data());
  CHECK(p->payload == "hello");
  CHECK_FALSE(p->sharded);
  CHECK(x.out.empty());  // answered later, with Redis' integer

  std::vector<std::string_view> const spub = {"SPublish", "s", ""};
  auto const sa = x.machine.handle(spub, x.out);
  REQUIRE(std::get_if<Publish>(&sa));
  CHECK(std::get<Publish>(sa).sharded);

  struct Case {
    std::vector<std::string_view> argv;
    bool subscribe;
    SubKind kind;
  };
  for (auto const& c : std::vector<Case>{{{"subscribe", "a", "b"}, true, SubKind::channel},
                                         {{"PSUBSCRIBE", "p*"}, true, SubKind::pattern},
                                         {{"ssubscribe", "s"}, true, SubKind::shard},
                                         {{"unsubscribe"}, false, SubKind::channel},
                                         {{"PUNSUBSCRIBE", "p*"}, false, SubKind::pattern},
                                         {{"sunsubscribe", "s", "t"}, false, SubKind::shard}}) {
    CAPTURE(c.argv[0]);
    auto const action = x.machine.handle(c.argv, x.out);
    std::span<std::string_view const> names;
    if (c.subscribe) {
      REQUIRE(std::holds_alternative<Subscribe>(action));
      CHECK(std::get<Subscribe>(action).kind == c.kind);
      names = std::get<Subscribe>(action).names;
    } else {
      REQUIRE(std::holds_alternative<Unsubscribe>(action));
      CHECK(std::get<Unsubscribe>(action).kind == c.kind);
      names = std::get<Unsubscribe>(action).names;
    }
    CHECK(names.size() == c.argv.size() - 1);
    CHECK(std::equal(names.begin(), names.end(), c.argv.begin() + 1));
  }
  CHECK(x.out.empty());
}

TEST_CASE("commands: PUBSUB queries go to Redis with their whole argv") {
  Exchange x;
  std::vector<std::string_view> const q = {"pubsub", "NUMSUB", "a", "b"};
  auto const a = x.machine.handle(q, x.out);
  REQUIRE(std::holds_alternative<PubsubQuery>(a));
  CHECK(std::get<PubsubQuery>(a).argv.size() == 4);
  for (auto const sub : {"CHANNELS", "numpat", "SHARDCHANNELS", "shardnumsub", "help"}) {
    CAPTURE(sub);
    std::vector<std::string_view> const argv = {"PUBSUB", sub};
    CHECK(std::holds_alternative<PubsubQuery>(x.machine.handle(argv, x.out)));
  }
  CHECK(x.out.empty());
  // Not in RESP2 subscribed mode (Redis: 'pubsub|numsub').
  x.run({"SUBSCRIBE", "a"});
  x.out.clear();
  x.run({"PUBSUB", "NUMSUB", "a"});
  CHECK(x.out.starts_with("-ERR Can't execute 'pubsub|numsub': only"));
}

TEST_CASE("commands: SELECT of any of Redis' 16 default databases is accepted") {
  // Pub/sub does not depend on the database; Redis' own range and errors stay.
  Exchange x;
  x.run({"SELECT", "1"});
  x.run({"SELECT", "15"});
  x.run({"SELECT", "-1"});
  x.run({"SELECT", "16"});
  CHECK(x.out ==
        "+OK\r\n+OK\r\n-ERR DB index is out of range\r\n-ERR DB index is out of range\r\n");
}

TEST_CASE("commands: a refused MULTI runs none of its commands, and its EXEC fails") {
  // node-redis' multi().publish().exec() pipelines these: before, the PUBLISH ran although
  // the transaction failed, so an app that retried published twice.
  Exchange x;
  std::vector<std::string_view> const multi = {"MULTI"};
  std::vector<std::string_view> const publish = {"PUBLISH", "c", "m"};
  std::vector<std::string_view> const exec = {"EXEC"};
  CHECK(std::holds_alternative<NoAction>(x.machine.handle(multi, x.out)));
  CHECK(std::holds_alternative<NoAction>(x.machine.handle(publish, x.out)));
  CHECK(std::holds_alternative<NoAction>(x.machine.handle(exec, x.out)));
  CHECK(x.out ==
        "-ERR podrelay supports only pub/sub commands: 'MULTI'\r\n"
        "-ERR 'PUBLISH' was not run: podrelay refused the MULTI before it (pub/sub commands "
        "only); send EXEC or DISCARD\r\n"
        "-EXECABORT Transaction discarded because of previous errors (podrelay supports only "
        "pub/sub commands, not MULTI)\r\n");
  // After EXEC (or DISCARD) commands run again; EXEC without a MULTI is unknown as before.
  x.out.clear();
  CHECK(std::holds_alternative<Publish>(x.machine.handle(publish, x.out)));
  x.run({"multi"});
  x.run({"discard"});
  x.run({"EXEC"});
  CHECK(x.out ==
        "-ERR podrelay supports only pub/sub commands: 'multi'\r\n"
        "+OK\r\n"
        "-ERR podrelay supports only pub/sub commands: 'EXEC'\r\n");
}

TEST_CASE("commands: what podrelay does not carry gets one clear error, in any case") {
  Exchange x;
  x.run({"GET", "k"});
  x.run({"set", "k", "v"});
  x.run({std::string_view("FL\r\nUSHALL")});
  x.run({std::string(300, 'X')});
  CHECK(x.out ==
        "-ERR podrelay supports only pub/sub commands: 'GET'\r\n"
        "-ERR podrelay supports only pub/sub commands: 'set'\r\n"
        "-ERR podrelay supports only pub/sub commands: 'FL  USHALL'\r\n"
        "-ERR podrelay supports only pub/sub commands: '" +
            std::string(128, 'X') + "'\r\n");
  CHECK_FALSE(x.closed);
  x.out.clear();
  x.run({"pInG"});
  x.run({"Echo", "x"});
  CHECK(x.out == "+PONG\r\n$1\r\nx\r\n");
  // In RESP2 subscribed mode the context error, with the name lowercased as Redis does.
  x.run({"SUBSCRIBE", "a"});
  x.out.clear();
  x.run({"GET", "k"});
  CHECK(x.out.starts_with("-ERR Can't execute 'get': only (P|S)SUBSCRIBE"));
  // RESP3 subscribed: everything is allowed again.
  x.out.clear();
  x.run({"HELLO", "3"});
  CHECK(x.out.starts_with("-ERR Can't execute 'hello'"));  // HELLO itself is not (captured)
  x.run({"RESET"});
  x.run({"HELLO", "3"});
  x.run({"SUBSCRIBE", "a"});
  x.out.clear();
  x.run({"ECHO", "x"});
  x.run({"GET", "k"});
  CHECK(x.out == "$1\r\nx\r\n-ERR podrelay supports only pub/sub commands: 'GET'\r\n");
}

TEST_CASE("commands: HTTP sent to the port closes without a reply, as Redis does") {
  for (auto const verb : {"POST", "post", "Host:"}) {
    Exchange x;
    x.run({verb, "/", "HTTP/1.1"});
    CHECK(x.closed);
    CHECK(x.out.empty());
  }
  Exchange x;
  x.run({"GET", "/", "HTTP/1.1"});  // GET is a Redis command: the usual error
  CHECK_FALSE(x.closed);
}

TEST_CASE("commands: without a token every AUTH is accepted") {
  Exchange x;
  CHECK(x.machine.authenticated());
  x.run({"AUTH", "anything"});  // Redis without a password: an error; see README
  x.run({"AUTH", "bob", "pw"});
  x.run({"HELLO", "3", "AUTH", "bob", "pw", "SETNAME", "n"});
  CHECK(x.out.starts_with("+OK\r\n+OK\r\n%7\r\n"));
  CHECK(x.machine.client_name() == "n");
}

TEST_CASE("commands: with a token, the password is compared and the user ignored") {
  Config c;
  c.auth_token = "tok";
  for (auto const& [argv, ok] : std::vector<std::pair<std::vector<std::string_view>, bool>>{
           {{"AUTH", "tok"}, true},
           {{"auth", "anyone", "tok"}, true},
           {{"AUTH", "to"}, false},
           {{"AUTH", "toke"}, false},
           {{"AUTH", ""}, false},
           {{"AUTH", "tok", "x"}, false},
           {{"HELLO", "3", "AUTH", "u", "tok"}, true},
           {{"HELLO", "3", "AUTH", "u", "TOK"}, false}}) {
    CAPTURE(argv.size());
    CAPTURE(argv.back());
    Exchange x(c);
    x.run(argv);
    CHECK(x.machine.authenticated() == ok);
    if (!ok) CHECK(x.out.starts_with("-WRONGPASS"));
  }
  // Everything but AUTH, HELLO, QUIT and RESET answers NOAUTH first.
  Exchange x(c);
  for (std::vector<std::string_view> argv : {std::vector<std::string_view>{"PUBLISH", "c", "m"},
                                             {"SUBSCRIBE", "c"},
                                             {"ECHO", "x"},
                                             {"SELECT", "0"},
                                             {"CLIENT", "SETNAME", "x"},
                                             {"COMMAND"},
                                             {"PUBSUB", "NUMPAT"}}) {
    CAPTURE(argv[0]);
    x.out.clear();
    auto const a = x.machine.handle(argv, x.out);
    CHECK(std::holds_alternative<NoAction>(a));
    CHECK(x.out == "-NOAUTH Authentication required.\r\n");
  }
  // Arity is checked before authentication, as Redis does.
  x.out.clear();
  x.run({"PUBLISH", "c"});
  CHECK(x.out == "-ERR wrong number of arguments for 'publish' command\r\n");
  // An AUTH that fails after a success leaves the connection authenticated (as Redis).
  x.run({"AUTH", "tok"});
  x.run({"AUTH", "bad"});
  CHECK(x.machine.authenticated());
}

TEST_CASE("commands: CLIENT SETINFO, NO-TOUCH, INFO and HELP") {
  Exchange x;
  x.run({"CLIENT", "SETINFO", "LIB-NAME", "redis-py"});
  x.run({"client", "setinfo", "lib-ver", "5.0.1"});
  x.run({"CLIENT", "SETINFO", "lib-foo", "x"});
  x.run({"CLIENT", "SETINFO", "lib-name", "a b"});
  x.run({"CLIENT", "SETINFO", "lib-name"});
  x.run({"CLIENT", "NO-TOUCH", "OFF"});
  CHECK(x.out ==
        "+OK\r\n+OK\r\n-ERR Unrecognized option 'lib-foo'\r\n"
        "-ERR lib-name cannot contain spaces, newlines or special characters.\r\n"
        "-ERR wrong number of arguments for 'client|setinfo' command\r\n+OK\r\n");
  CHECK(x.machine.lib_name() == "redis-py");
  CHECK(x.machine.lib_version() == "5.0.1");

  x.out.clear();
  x.machine.set_addresses("127.0.0.1:5000", "127.0.0.1:6379");
  x.run({"CLIENT", "SETNAME", "web"});
  x.run({"SUBSCRIBE", "a"});
  x.run({"HELLO", "3"});  // refused in RESP2 subscribed mode
  x.run({"UNSUBSCRIBE"});
  x.run({"HELLO", "3"});
  x.run({"PSUBSCRIBE", "p*"});
  x.out.clear();
  x.run({"CLIENT", "INFO"});
  CHECK(x.out.starts_with("="));
  CHECK(x.out.find("txt:id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 name=web flags=P db=0 "
                   "sub=0 psub=1 ssub=0") != std::string::npos);
  CHECK(x.out.find(" lib-name=redis-py lib-ver=5.0.1 resp=3\n\r\n") != std::string::npos);

  Config c;
  c.podrelay_version = "0.1.0";
  Exchange info(c);
  info.run({"INFO"});
  CHECK(info.out.starts_with("$"));
  CHECK(info.out.find("\r\n# Server\r\nredis_version:7.0.15\r\n") != std::string::npos);
  CHECK(info.out.find("\r\npodrelay_version:0.1.0\r\n") != std::string::npos);
  info.out.clear();
  info.run({"info", "KEYSPACE"});
  CHECK(info.out == "$0\r\n\r\n");  // captured: INFO nosuch -> $0
  info.out.clear();
  info.run({"INFO", "clients", "Server"});
  CHECK(info.out.find("redis_version") != std::string::npos);

  Exchange help;
  help.run({"CLIENT", "HELP"});
  help.run({"COMMAND", "HELP"});
  CHECK(help.out.starts_with("*"));
  CHECK(help.out.find("-ERR") == std::string::npos);
}

TEST_CASE("commands: COMMAND as clients call it at start") {
  Exchange x;
  x.run({"COMMAND"});
  x.run({"COMMAND", "COUNT"});
  x.run({"COMMAND", "DOCS"});
  x.run({"COMMAND", "INFO", "get", "publish"});
  x.run({"COMMAND", "LIST"});
  CHECK(x.out == "*0\r\n:0\r\n*0\r\n*2\r\n$-1\r\n$-1\r\n*0\r\n");
  x.out.clear();
  x.run({"HELLO", "3"});
  x.out.clear();
  x.run({"COMMAND", "DOCS"});
  x.run({"COMMAND", "INFO", "get"});
  CHECK(x.out == "%0\r\n*1\r\n_\r\n");  // captured: HELLO 3; COMMAND DOCS nosuch -> %0
}

TEST_CASE("commands: PSUBSCRIBE answers an error where patterns are not available") {
  Config c;
  c.patterns_allowed = false;
  Exchange x(c);
  x.run({"PSUBSCRIBE", "p*"});
  CHECK(std::holds_alternative<NoAction>(x.actions.back()));
  CHECK(x.out.starts_with("-ERR podrelay: PSUBSCRIBE is not available with Redis Cluster"));
  x.out.clear();
  x.run({"PUNSUBSCRIBE"});  // still answered: nothing to unsubscribe
  CHECK(x.out == "*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n");
}

TEST_CASE("commands: RESET drops subscriptions silently and restores the defaults") {
  Exchange x;
  x.run({"HELLO", "3", "SETNAME", "n"});
  x.run({"SUBSCRIBE", "a"});
  x.run({"SSUBSCRIBE", "s"});
  x.out.clear();
  x.run({"RESET"});
  CHECK(x.out == "+RESET\r\n");  // captured: SUBSCRIBE a; RESET -> no unsubscribe pushes
  CHECK(std::holds_alternative<Reset>(x.actions.back()));
  CHECK(x.machine.protocol() == Protocol::resp2);
  CHECK(x.machine.client_name().empty());
  CHECK_FALSE(x.machine.subscriptions().any());
  x.out.clear();
  x.run({"PING"});
  CHECK(x.out == "+PONG\r\n");
}

TEST_CASE("commands: QUIT answers OK and closes, with any arguments and before AUTH") {
  Config c;
  c.auth_token = "t";
  Exchange x(c);
  x.run({"quit", "now"});
  CHECK(x.out == "+OK\r\n");
  CHECK(x.closed);
}

TEST_CASE("parser and machine together: the session's loop over a pipelined read") {
  Config c;
  c.auth_token = "t";
  Exchange x(c);
  RequestParser p;
  std::string const stream = multibulk({"AUTH", "t"}) + "PING\r\n" +
                             multibulk({"SUBSCRIBE", "news", "sport"}) + "PING hi\r\n" +
                             multibulk({"QUIT"}) + multibulk({"PING"});
  for (char const ch : stream) {
    p.feed(std::string_view(&ch, 1));
    for (;;) {
      p.set_authenticated(x.machine.authenticated());
      auto const r = p.next();
      if (r.status != RequestParser::Status::request) break;
      if (x.closed) break;
      x.run(std::vector<std::string_view>(r.argv.begin(), r.argv.end()));
    }
  }
  CHECK(x.out ==
        "+OK\r\n+PONG\r\n*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n"
        "$5\r\nsport\r\n:2\r\n*2\r\n$4\r\npong\r\n$2\r\nhi\r\n+OK\r\n");
  CHECK(x.closed);
}
