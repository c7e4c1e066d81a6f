#include <doctest/doctest.h>

#include <string>

#include "redis/handshake.hpp"
#include "redis/resp.hpp"
#include "reply_bytes.hpp"

using namespace podrelay::redis;
using podrelay::errc;

TEST_CASE("handshake: nothing to send without credentials, db, name or ROLE") {
  auto const hs = build_handshake({});
  CHECK(hs.bytes.empty());
  CHECK(hs.steps.empty());
}

TEST_CASE("handshake: AUTH with the password only, or with user and password") {
  HandshakeOptions opts;
  opts.password = "s3cret";
  auto hs = build_handshake(opts);
  CHECK(hs.bytes == "*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n");
  REQUIRE(hs.steps.size() == 1);
  CHECK(hs.steps[0] == HandshakeStep::auth);

  opts.username = "app";
  hs = build_handshake(opts);
  CHECK(hs.bytes == "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$6\r\ns3cret\r\n");

  opts.password = {};  // a user without a password sends no AUTH (the default user)
  CHECK(build_handshake(opts).steps.empty());
}

TEST_CASE("handshake: every step, pipelined in a fixed order") {
  HandshakeOptions opts;
  opts.password = "pw";
  opts.db = 3;
  opts.client_name = "podrelay-pub-n1";
  opts.require_master = true;
  auto const hs = build_handshake(opts);
  CHECK(hs.bytes ==
        "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
        "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
        "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$15\r\npodrelay-pub-n1\r\n"
        "*1\r\n$4\r\nROLE\r\n");
  REQUIRE(hs.steps.size() == 4);
  CHECK(hs.steps[0] == HandshakeStep::auth);
  CHECK(hs.steps[1] == HandshakeStep::select);
  CHECK(hs.steps[2] == HandshakeStep::client_setname);
  CHECK(hs.steps[3] == HandshakeStep::role);
  CHECK(step_name(HandshakeStep::client_setname) == "CLIENT SETNAME");
}

TEST_CASE("handshake: OK replies pass") {
  auto const ok = parse_reply("+OK\r\n");
  CHECK_FALSE(check_handshake_reply(HandshakeStep::auth, *ok, "r:6379"));
  CHECK_FALSE(check_handshake_reply(HandshakeStep::select, *ok, "r:6379"));
  CHECK_FALSE(check_handshake_reply(HandshakeStep::client_setname, *ok, "r:6379"));
}

TEST_CASE("handshake: an error reply refuses the step with Redis' own text") {
  auto const wrongpass =
      parse_reply("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  auto const e = check_handshake_reply(HandshakeStep::auth, *wrongpass, "r:6379");
  CHECK(e.code == errc::auth_failed);
  CHECK(e.reason ==
        "AUTH refused by r:6379: WRONGPASS invalid username-password pair or user is disabled.");

  auto const range = parse_reply("-ERR DB index is out of range\r\n");
  auto const s = check_handshake_reply(HandshakeStep::select, *range, "r:6379");
  CHECK(s.code == errc::auth_failed);
  CHECK(s.reason == "SELECT refused by r:6379: ERR DB index is out of range");
}

TEST_CASE("handshake: ROLE must say master") {
  auto const master = parse_reply("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
  CHECK_FALSE(check_handshake_reply(HandshakeStep::role, *master, "r:6379"));

  auto const replica =
      parse_reply("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:1\r\n");
  auto const e = check_handshake_reply(HandshakeStep::role, *replica, "r:6380");
  CHECK(e.code == errc::not_master);
  CHECK(e.reason == "r:6380 is not a master (ROLE); the sentinels' view is stale");

  auto const odd = parse_reply("+OK\r\n");  // not an array at all
  CHECK(check_handshake_reply(HandshakeStep::role, *odd, "r:6380").code == errc::not_master);
  auto const empty = parse_reply("*0\r\n");
  CHECK(check_handshake_reply(HandshakeStep::role, *empty, "r:6380").code == errc::not_master);
}

TEST_CASE("errc: a std::error_code with its own category") {
  std::error_code const ec = errc::not_master;
  CHECK(ec.category().name() == std::string("podrelay"));
  CHECK(ec.message() == "not a master");
  CHECK(ec == errc::not_master);
  CHECK(ec != errc::auth_failed);
  CHECK_FALSE(podrelay::Error{});
  CHECK(podrelay::Error(errc::bad_reply, "x"));
}

TEST_CASE("handshake: SCRIPT LOAD goes last, and its refusal is not an error") {
  HandshakeOptions opts;
  opts.require_master = true;
  opts.load_script = "return 1";
  auto const hs = build_handshake(opts);
  CHECK(hs.bytes ==
        "*1\r\n$4\r\nROLE\r\n"
        "*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$8\r\nreturn 1\r\n");
  REQUIRE(hs.steps.size() == 2);
  CHECK(hs.steps[1] == HandshakeStep::script_load);
  CHECK(step_name(HandshakeStep::script_load) == "SCRIPT LOAD");

  auto const sha = parse_reply("$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n");
  CHECK_FALSE(check_handshake_reply(HandshakeStep::script_load, *sha, "r:6379"));
  CHECK(loaded_script_sha(*sha) == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");

  // An ACL without SCRIPT: the connection goes on, the script is sent whole (EVAL).
  auto const noperm =
      parse_reply("-NOPERM this user has no permissions to run the 'script|load' command\r\n");
  CHECK_FALSE(check_handshake_reply(HandshakeStep::script_load, *noperm, "r:6379"));
  CHECK(loaded_script_sha(*noperm).empty());
  CHECK(script_load_refusal(*noperm).starts_with("NOPERM this user"));
  CHECK(script_load_refusal(*parse_reply("+OK\r\n")) == "not a SHA1");
  // Anything but 40 lowercase hex digits is not a SHA1 to name the script by.
  CHECK(loaded_script_sha(*parse_reply("+OK\r\n")).empty());
  CHECK(loaded_script_sha(*parse_reply("$4\r\nabcd\r\n")).empty());
  CHECK(loaded_script_sha(*parse_reply("$40\r\nE0E1F9FABFC9D4800C877A703B823AC0578FF8DB\r\n"))
            .empty());
  CHECK(loaded_script_sha(*parse_reply(":1\r\n")).empty());
}
