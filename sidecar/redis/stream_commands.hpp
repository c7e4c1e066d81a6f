// The Redis commands of durable channels, encoded, and the parsing of their replies; byte
// buffers only (no sockets). A durable publish is one EVAL so that creating the stream,
// its epoch and their TTL happen atomically with the XADD, in the order the publishes were
// pipelined (see stream_commands.cpp for why not XADD NOMKSTREAM plus a retry).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "core/resume.hpp"
#include "redis/resp.hpp"

namespace podrelay::redis {

struct DurablePublish {
  std::string_view stream_key;
  std::string_view epoch_key;
  std::size_t max_len = 0;
  std::string_view payload;
  std::string_view new_epoch;  // the epoch token if this publish creates the stream
  bool refresh_ttl = false;    // EXPIRE both keys (a created stream always gets its TTL)
  std::chrono::seconds ttl{0};
  std::string_view wake_channel;  // Redis Cluster: SPUBLISH the id there (empty: not)
  // The SHA1 Redis gave for durable_publish_script() (SCRIPT LOAD): EVALSHA instead of EVAL
  // (the ~600-byte script off the wire and out of the publish buffer). Empty: EVAL.
  std::string_view script_sha;
};
// EVAL (or EVALSHA): creates stream + epoch when the stream is missing, XADD MAXLEN ~ N * d
// <payload>, EXPIRE when due, SPUBLISH of the id on the wake channel when given. Replies
// with the id.
void append_durable_publish(std::string& out, DurablePublish const& p);
// The script append_durable_publish runs, for SCRIPT LOAD.
std::string_view durable_publish_script() noexcept;

// EVAL replying {epoch, last-generated-id, first-entry-id, whole history '1'/'0'}, or
// {reserved epoch} when there is no stream: it reserves `new_epoch` (for `ttl`) for the
// stream to come unless one is reserved already ('' for what is missing).
void append_stream_info(std::string& out, std::string_view stream_key, std::string_view epoch_key,
                        std::string_view new_epoch, std::chrono::seconds ttl);
core::StreamInfo parse_stream_info(redisReply const& reply);

// The most entries podrelay asks for in one XRANGE (a resume's replay page, a cluster
// poll): bounds the size of a reply to one (redis::Publisher::reply_limit).
inline constexpr std::size_t max_page_entries = 512;

// The most bytes a reply of up to `entries` stream entries may take, where an entry is a
// payload of at most `max_frame` bytes plus its id and field names (1 KiB). At least
// 256 MiB, so that the larger entries a pod with a larger --max-frame-bytes wrote still
// reach this one's hub (which counts them as too large) in all but extreme cases. A reply
// past it is no answer to the command, and drops the connection.
constexpr std::size_t max_entries_reply(std::size_t entries, std::size_t max_frame) noexcept {
  constexpr std::size_t at_least = std::size_t{256} << 20;
  auto const bound = entries * (max_frame + 1024);
  return bound > at_least ? bound : at_least;
}

// XRANGE key (after + COUNT n: the entries after `after`.
void append_xrange_after(std::string& out, std::string_view stream_key, std::string_view after,
                         std::size_t count);
// XREVRANGE key + - COUNT 1: the last entry (for a reader's start position), and the id in
// its reply (0-0 when the stream has no entry or does not exist).
void append_last_entry(std::string& out, std::string_view stream_key);
core::StreamId last_entry_id(redisReply const& reply);
// XREVRANGE key <at> - COUNT 1: the newest entry at or before `at` (a reader's recheck: is
// the entry it read last still there?); its reply reads with last_entry_id().
void append_entry_at_or_before(std::string& out, std::string_view stream_key, core::StreamId at);

// The payload of an entry's field list: the value of field "d" (what podrelay writes), else
// the first value (an entry another writer added); false when there is none.
bool entry_payload(redisReply const& fields, std::string_view& payload);
// Calls `on_entry(id, payload)` for each [id, [field, value, ...]] of an XRANGE-style
// array; returns how many entries the array held (also those without a payload).
std::size_t for_each_entry(redisReply const& entries,
                           std::function<void(std::string_view, std::string_view)> const& on_entry);

}  // namespace podrelay::redis
