#include "redis/handshake.hpp"

#include "redis/resp.hpp"

namespace podrelay::redis {

std::string_view step_name(HandshakeStep step) noexcept {
  switch (step) {
    case HandshakeStep::auth: return "AUTH";
    case HandshakeStep::select: return "SELECT";
    case HandshakeStep::client_setname: return "CLIENT SETNAME";
    case HandshakeStep::role: return "ROLE";
    case HandshakeStep::script_load: return "SCRIPT LOAD";
  }
  return "?";
}

Handshake build_handshake(HandshakeOptions const& options) {
  Handshake hs;
  if (!options.password.empty()) {
    if (options.username.empty()) {
      append_command(hs.bytes, {"AUTH", options.password});
    } else {
      append_command(hs.bytes, {"AUTH", options.username, options.password});
    }
    hs.steps.push_back(HandshakeStep::auth);
  }
  if (options.db != 0) {
    append_command(hs.bytes, {"SELECT", std::to_string(options.db)});
    hs.steps.push_back(HandshakeStep::select);
  }
  if (!options.client_name.empty()) {
    append_command(hs.bytes, {"CLIENT", "SETNAME", options.client_name});
    hs.steps.push_back(HandshakeStep::client_setname);
  }
  if (options.require_master) {
    append_command(hs.bytes, {"ROLE"});
    hs.steps.push_back(HandshakeStep::role);
  }
  if (!options.load_script.empty()) {
    append_command(hs.bytes, {"SCRIPT", "LOAD", options.load_script});
    hs.steps.push_back(HandshakeStep::script_load);
  }
  return hs;
}

Error check_handshake_reply(HandshakeStep step, redisReply const& reply, std::string_view peer) {
  if (step == HandshakeStep::script_load) return {};  // see loaded_script_sha
  if (reply.type == REDIS_REPLY_ERROR) {
    return {errc::auth_failed, std::string(step_name(step)) + " refused by " + std::string(peer) +
                                   ": " + std::string(reply_string(reply))};
  }
  if (step == HandshakeStep::role) {
    bool const master = reply.type == REDIS_REPLY_ARRAY && reply.elements > 0 &&
                        reply.element[0]->type == REDIS_REPLY_STRING &&
                        reply_string(*reply.element[0]) == "master";
    if (!master) {
      return {errc::not_master,
              std::string(peer) + " is not a master (ROLE); the sentinels' view is stale"};
    }
  }
  return {};
}

std::string_view loaded_script_sha(redisReply const& reply) noexcept {
  if (reply.type != REDIS_REPLY_STRING && reply.type != REDIS_REPLY_STATUS) return {};
  auto const sha = reply_string(reply);
  if (sha.size() != 40) return {};
  for (char const c : sha) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  }
  return sha;
}

std::string script_load_refusal(redisReply const& reply) {
  return reply.type == REDIS_REPLY_ERROR ? std::string(reply_string(reply)) : "not a SHA1";
}

}  // namespace podrelay::redis
