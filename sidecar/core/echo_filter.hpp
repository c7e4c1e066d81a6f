// Which message coming back from Redis is the echo of a PUBX (protocol version 3: publish,
// but not back to me), so that the fan-out skips the connection that sent it.
//
// Redis gives the message no sender, so the filter recognises the echo by its channel and
// payload: each PUBX whose sender holds a subscription of that exact channel is remembered
// (the payload's hash and length, in publish order, per channel). Redis keeps the order of
// one connection's publishes, and every publish of this sidecar on a channel goes through one
// publisher link, so the echoes arrive in the order remembered. A message that matches an
// entry is that entry's echo; the entries before it will never come back (their publish
// failed, or the subscription was not active yet in Redis) and are dropped. So a lost echo
// costs nothing, and memory is bounded by the publishes in flight (with a hard cap).
// Entries of a channel whose last local subscription ends, or of a receiver that goes away,
// are dropped.
//
// Best effort by design: a payload byte-identical to a pending one, published by someone
// else, may be the copy withheld instead (the sender then gets the other one: the same
// bytes), and an entry dropped by the cap lets its echo through. Sans-I/O, single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/hub.hpp"
#include "core/receiver.hpp"

namespace podrelay::core {

class EchoFilter {
 public:
  // At most `max_pending` remembered publishes in all; reaching it forgets them all.
  explicit EchoFilter(std::size_t max_pending = 65536) noexcept : max_pending_(max_pending) {}

  // Quiet bytes pending at most: an echo beyond it is expected loud.
  static constexpr std::size_t max_quiet_bytes = std::size_t{64} * 1024;

  // `sender` published `payload` on `redis_channel` and holds a subscription of it.
  // `quiet_bytes` (0: loud): the size of its echo, when nobody else would receive it.
  // Returns whether the entry counts as quiet (false over max_quiet_bytes).
  bool expect(std::string_view redis_channel, std::string_view payload, Receiver const* sender,
              std::size_t quiet_bytes = 0);

  // A message arrived on a channel subscription: the receiver it must not reach, or null.
  Receiver const* take(std::string_view redis_channel, std::string_view payload);

  // `r` is going away: none of its entries may match (another receiver could reuse the
  // address).
  void forget(Receiver const* r);
  // This sidecar no longer subscribes `redis_channel`: no echo of it can come.
  void drop(std::string_view redis_channel);
  // The subscriber link was lost or re-established: no pending echo can still come.
  void clear() noexcept;
  // The quiet spell is over: the pending entries stay, but no longer count as quiet.
  void end_quiet_spell() noexcept;

  bool empty() const noexcept { return pending_ == 0; }
  std::size_t pending() const noexcept { return pending_; }
  // The echo bytes of this spell's quiet entries still to come.
  std::size_t quiet_bytes() const noexcept { return quiet_bytes_; }
  // Echoes withheld so far, and entries given up (never matched, or over the cap).
  std::uint64_t withheld() const noexcept { return withheld_; }
  std::uint64_t abandoned() const noexcept { return abandoned_; }

 private:
  struct Entry {
    std::size_t hash;
    std::size_t size;
    Receiver const* sender;
    std::uint32_t quiet;  // echo bytes, 0 when loud
    std::uint32_t spell;  // the quiet spell it counts in
  };
  void gone(Entry const& e) noexcept {  // an entry leaves the filter
    if (e.quiet != 0 && e.spell == spell_) quiet_bytes_ -= e.quiet;
  }
  using Map = std::unordered_map<std::string, std::deque<Entry>, StringHash, std::equal_to<>>;

  std::size_t max_pending_;
  std::size_t pending_ = 0;
  std::uint64_t withheld_ = 0;
  std::uint64_t abandoned_ = 0;
  std::size_t quiet_bytes_ = 0;
  std::uint32_t spell_ = 0;
  Map channels_;
};

}  // namespace podrelay::core
