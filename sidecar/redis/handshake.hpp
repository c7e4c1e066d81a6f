// The Redis connection handshake, without sockets: the pipelined AUTH / SELECT / CLIENT
// SETNAME / ROLE commands a new connection sends, and the check of each reply. The
// connection writes `Handshake::bytes` at once and hands the replies, in order, to
// check_handshake_reply. Pure functions; unit tested in tests/test_redis_handshake.cpp.
#pragma once

#include <hiredis/hiredis.h>

#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace podrelay::redis {

struct HandshakeOptions {
  std::string_view username;     // AUTH username password (Redis 6 ACL) when set
  std::string_view password;     // empty: no AUTH
  int db = 0;                    // 0: no SELECT
  std::string_view client_name;  // empty: no CLIENT SETNAME
  bool require_master = false;   // ROLE must say "master" (Sentinel mode)
  std::string_view load_script;  // SCRIPT LOAD it, last (empty: not); see loaded_script_sha
};

enum class HandshakeStep { auth, select, client_setname, role, script_load };
std::string_view step_name(HandshakeStep step) noexcept;  // "AUTH", "CLIENT SETNAME", ...

struct Handshake {
  std::string bytes;                 // every command, in RESP, in the order of `steps`
  std::vector<HandshakeStep> steps;  // empty: nothing to send
};

Handshake build_handshake(HandshakeOptions const& options);

// The reply to `step` from `peer`: an error (auth_failed, not_master) with a one-line
// reason, or none. Redis' own error text ("WRONGPASS invalid username-password pair")
// holds no secret and is quoted. A refused SCRIPT LOAD is not an error: the script is then
// sent whole (EVAL).
Error check_handshake_reply(HandshakeStep step, redisReply const& reply, std::string_view peer);
// The SHA1 in the reply to SCRIPT LOAD; empty when Redis refused it (an ACL without
// SCRIPT, say) or answered something else.
std::string_view loaded_script_sha(redisReply const& reply) noexcept;
// Why a SCRIPT LOAD answer has no SHA1 (loaded_script_sha empty), for the log: Redis' error
// text (an ACL's NOPERM), or "not a SHA1".
std::string script_load_refusal(redisReply const& reply);

}  // namespace podrelay::redis
