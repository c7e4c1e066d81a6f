// Redis Cluster routing, without sockets: the hash slot of a key (CRC16/XMODEM of the key,
// or of its {hash tag}, modulo 16384, exactly as Redis computes it) and the slot map that
// CLUSTER SLOTS describes (slot ranges -> master endpoint).
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "redis/endpoint.hpp"
#include "util/error.hpp"

namespace podrelay::redis {

inline constexpr std::uint16_t cluster_slots = 16384;

std::uint16_t crc16_xmodem(std::string_view data) noexcept;
std::uint16_t key_slot(std::string_view key) noexcept;

class SlotMap {
 public:
  struct Range {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    Endpoint master;
  };

  // From a CLUSTER SLOTS reply that `answered_by` (a host) gave; slot_map_invalid with the
  // reason when the reply is not one. As Redis documents the endpoint: an empty one is
  // the host asked (a node that never learned its own address, as in a one-node cluster),
  // and "?" is unknown, so that range stays a gap.
  static Expected<SlotMap> parse(redisReply const& reply, std::string_view answered_by = {});

  std::optional<Endpoint> owner(std::uint16_t slot) const;
  std::vector<Endpoint> masters() const;  // distinct, in slot order
  bool empty() const noexcept { return ranges_.empty(); }
  bool covers_all_slots() const;
  std::vector<Range> const& ranges() const noexcept { return ranges_; }

 private:
  std::vector<Range> ranges_;  // sorted by first slot
};

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" as Redis Cluster answers.
struct Redirect {
  bool ask = false;
  std::uint16_t slot = 0;
  Endpoint target;
};
std::optional<Redirect> parse_redirect(std::string_view error_text);

}  // namespace podrelay::redis
