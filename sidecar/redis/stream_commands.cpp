#include "redis/stream_commands.hpp"

namespace podrelay::redis {
namespace {

// Why one EVAL rather than `XADD NOMKSTREAM` and, on a nil reply, a second command that
// creates the stream: publishes are pipelined, so the XADDs behind a nil one are already on
// the wire; if another pod creates the stream meanwhile, they succeed while the first is
// retried, and this pod's publishes land out of order. The script keeps them in order and
// makes the stream, its epoch and its TTL one atomic step. Each publisher connection loads
// it once (SCRIPT LOAD, redis/publisher.hpp) and publishes with EVALSHA, so a publish
// carries the 40-byte SHA1, not the script.
// KEYS: stream, epoch[, wake channel]. ARGV: max_len, payload, new epoch, refresh ('1'/'0'),
// ttl seconds. The wake channel is declared as a key so that Redis Cluster checks it is in
// the stream's slot (it is: same hash tag).
// A stream created anew takes the epoch an RSUB reserved for it (the value after 'p:', see
// info_script) or, when there is none, a new one.
constexpr std::string_view publish_script =
    "local refresh = ARGV[4] == '1'\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  local e = redis.call('GET', KEYS[2])\n"
    "  if e and string.sub(e, 1, 2) == 'p:' then e = string.sub(e, 3) else e = ARGV[3] end\n"
    "  redis.call('SET', KEYS[2], e)\n"
    "  refresh = true\n"
    "elseif redis.call('EXISTS', KEYS[2]) == 0 then\n"
    "  redis.call('SET', KEYS[2], ARGV[3])\n"
    "  refresh = true\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'd', ARGV[2])\n"
    "if refresh then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[5])\n"
    "end\n"
    "if KEYS[3] then redis.call('SPUBLISH', KEYS[3], id) end\n"
    "return id\n";

// KEYS: stream, epoch. ARGV: new epoch, ttl seconds.
// A stream that does not exist gets its epoch now, reserved ('p:' + token, expiring after
// the TTL unless another RSUB comes) and taken by the publish that creates the stream: so an
// app that subscribed before the first publish still holds an epoch that tells this stream
// from one created after it was lost. An epoch left without its stream (a stream evicted or
// deleted alone) is replaced: whatever that stream held is gone.
constexpr std::string_view info_script =
    "local e = redis.call('GET', KEYS[2])\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  if not e or string.sub(e, 1, 2) ~= 'p:' then e = 'p:' .. ARGV[1] end\n"
    "  redis.call('SET', KEYS[2], e, 'EX', ARGV[2])\n"
    "  return {e}\n"
    "end\n"
    "e = e or ''\n"
    "local info = redis.call('XINFO', 'STREAM', KEYS[1])\n"
    "local first, last, len, added = '', '', -1, -2\n"
    "for i = 1, #info, 2 do\n"
    "  if info[i] == 'last-generated-id' then last = info[i + 1]\n"
    "  elseif info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1]\n"
    "  elseif info[i] == 'length' then len = info[i + 1]\n"
    "  elseif info[i] == 'entries-added' then added = info[i + 1] end\n"
    "end\n"
    "return {e, last, first, len == added and '1' or '0'}\n";

std::string_view element_string(redisReply const& r, std::size_t i) {
  if (r.type != REDIS_REPLY_ARRAY || i >= r.elements || !r.element[i]) return {};
  return reply_string(*r.element[i]);
}

}  // namespace

void append_durable_publish(std::string& out, DurablePublish const& p) {
  auto const max_len = std::to_string(p.max_len);
  auto const ttl = std::to_string(p.ttl.count());
  bool const sha = !p.script_sha.empty();
  auto const verb = sha ? std::string_view("EVALSHA") : std::string_view("EVAL");
  auto const script = sha ? p.script_sha : publish_script;
  if (p.wake_channel.empty()) {
    append_command(out, {verb, script, "2", p.stream_key, p.epoch_key, max_len, p.payload,
                         p.new_epoch, p.refresh_ttl ? "1" : "0", ttl});
  } else {
    append_command(out, {verb, script, "3", p.stream_key, p.epoch_key, p.wake_channel, max_len,
                         p.payload, p.new_epoch, p.refresh_ttl ? "1" : "0", ttl});
  }
}

std::string_view durable_publish_script() noexcept { return publish_script; }

void append_stream_info(std::string& out, std::string_view stream_key, std::string_view epoch_key,
                        std::string_view new_epoch, std::chrono::seconds ttl) {
  append_command(out, {"EVAL", info_script, "2", stream_key, epoch_key, new_epoch,
                       std::to_string(ttl.count())});
}

core::StreamInfo parse_stream_info(redisReply const& reply) {
  core::StreamInfo info;
  auto epoch = element_string(reply, 0);
  info.reserved = epoch.starts_with("p:");
  if (info.reserved) epoch.remove_prefix(2);
  info.epoch = std::string(epoch);
  info.last = core::StreamId::parse(element_string(reply, 1));
  info.first = core::StreamId::parse(element_string(reply, 2));
  info.whole_history = element_string(reply, 3) == "1";  // Redis < 7 has no entries-added
  return info;
}

void append_xrange_after(std::string& out, std::string_view stream_key, std::string_view after,
                         std::size_t count) {
  // Built by append, not `"(" + std::string(after)`: GCC 12 at -O3 warns on that
  // (-Wrestrict, a false positive, GCC bug 105329), which -Werror makes a Release build fail.
  std::string start;
  start.reserve(after.size() + 1);
  start.push_back('(');
  start.append(after);
  auto const n = std::to_string(count);
  append_command(out, {"XRANGE", stream_key, start, "+", "COUNT", n});
}

core::StreamId last_entry_id(redisReply const& reply) {
  // [[id, fields]] or []: no stream (or an empty one) starts at 0-0.
  if (reply.type == REDIS_REPLY_ARRAY && reply.elements > 0 && reply.element[0]) {
    if (auto id = core::StreamId::parse(element_string(*reply.element[0], 0))) return *id;
  }
  return {};
}

void append_last_entry(std::string& out, std::string_view stream_key) {
  append_command(out, {"XREVRANGE", stream_key, "+", "-", "COUNT", "1"});
}

void append_entry_at_or_before(std::string& out, std::string_view stream_key, core::StreamId at) {
  auto const id = at.to_string();
  append_command(out, {"XREVRANGE", stream_key, id, "-", "COUNT", "1"});
}

bool entry_payload(redisReply const& fields, std::string_view& payload) {
  if (fields.type != REDIS_REPLY_ARRAY || fields.elements < 2) return false;
  for (std::size_t i = 0; i + 1 < fields.elements; i += 2) {
    if (element_string(fields, i) == "d") {
      payload = element_string(fields, i + 1);
      return true;
    }
  }
  payload = element_string(fields, 1);
  return true;
}

std::size_t for_each_entry(
    redisReply const& entries,
    std::function<void(std::string_view, std::string_view)> const& on_entry) {
  if (entries.type != REDIS_REPLY_ARRAY) return 0;
  for (std::size_t i = 0; i < entries.elements; ++i) {
    auto const* e = entries.element[i];
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !e->element[1]) continue;
    std::string_view payload;
    if (entry_payload(*e->element[1], payload)) on_entry(element_string(*e, 0), payload);
  }
  return entries.elements;
}

}  // namespace podrelay::redis
