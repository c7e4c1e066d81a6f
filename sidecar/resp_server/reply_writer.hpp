// Encoders of Redis-protocol replies for the RESP front end: RESP2 and RESP3 scalars and
// aggregate headers, and the pub/sub pushes and (un)subscribe confirmations, each byte for
// byte as Redis 7.0 sends them. Plain functions that append to a std::string; no state,
// safe from any thread on distinct strings.
//
// Design note. Where RESP2 and RESP3 differ the encoder takes the connection's Protocol:
// a map is a flat array of 2N elements in RESP2 and `%N` in RESP3, a push is `*N` or `>N`,
// null is `$-1` or `_`, a verbatim string is a plain bulk in RESP2. A pub/sub message is
// encoded once per protocol and the same bytes are shared by every receiver (see
// message_size() to reserve). Error texts carry their own code ("ERR ...", "NOAUTH ...");
// CR and LF inside them become spaces, as Redis does, so a reply never breaks the stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace podrelay::resp_server {

enum class Protocol : std::uint8_t { resp2 = 2, resp3 = 3 };

// What a (un)subscription is about: SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE.
enum class SubKind : std::uint8_t { channel, pattern, shard };

void append_simple(std::string& out, std::string_view s);                   // +OK
void append_error(std::string& out, std::string_view text);                 // -ERR text
void append_integer(std::string& out, std::int64_t v);                      // :42
void append_bulk(std::string& out, std::string_view s);                     // $2\r\nhi
void append_null(std::string& out, Protocol p);                             // $-1 | _
void append_null_array(std::string& out, Protocol p);                       // *-1 | _
void append_array_header(std::string& out, std::size_t n);                  // *n
void append_push_header(std::string& out, Protocol p, std::size_t n);       // *n | >n
void append_map_header(std::string& out, Protocol p, std::size_t pairs);    // *2n | %n
void append_set_header(std::string& out, Protocol p, std::size_t n);        // *n | ~n
void append_bool(std::string& out, Protocol p, bool v);                     // :1 | #t
void append_double(std::string& out, Protocol p, double v);                 // $.. | ,..
void append_verbatim(std::string& out, Protocol p, std::string_view text);  // $.. | =..txt:

// Pushes of a subscribed connection: message, pmessage and smessage.
void append_message(std::string& out, Protocol p, std::string_view channel,
                    std::string_view payload);
void append_pmessage(std::string& out, Protocol p, std::string_view pattern,
                     std::string_view channel, std::string_view payload);
void append_smessage(std::string& out, Protocol p, std::string_view channel,
                     std::string_view payload);
// Bytes of a message push, for one reserve() before encoding: pattern empty for message
// and smessage (`sharded` picks the 8-byte verb).
std::size_t message_size(std::string_view pattern, std::string_view channel,
                         std::string_view payload, bool sharded) noexcept;

// Confirmations: `subscribe`/`psubscribe`/`ssubscribe` with the name and the count after it.
// Redis counts channels + patterns for the first two and shard channels alone for the
// third (see subscription_count()).
void append_subscribed(std::string& out, Protocol p, SubKind kind, std::string_view name,
                       std::int64_t count);
// `unsubscribe`/`punsubscribe`/`sunsubscribe`. No name: the answer to an argument-less
// UNSUBSCRIBE while nothing of that kind is subscribed (a null channel and the count).
void append_unsubscribed(std::string& out, Protocol p, SubKind kind,
                         std::optional<std::string_view> name, std::int64_t count);

// The count a confirmation of `kind` shows, given the connection's subscriptions.
constexpr std::int64_t subscription_count(SubKind kind, std::int64_t channels,
                                          std::int64_t patterns, std::int64_t shards) noexcept {
  return kind == SubKind::shard ? shards : channels + patterns;
}

}  // namespace podrelay::resp_server
