#include "redis/cluster_slots.hpp"

#include <algorithm>
#include <charconv>

#include "redis/resp.hpp"

namespace podrelay::redis {

std::uint16_t crc16_xmodem(std::string_view data) noexcept {
  // Polynomial 0x1021, initial value 0, no reflection: the CRC Redis Cluster uses.
  std::uint16_t crc = 0;
  for (unsigned char const byte : data) {
    crc = static_cast<std::uint16_t>(crc ^ (byte << 8));
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::uint16_t key_slot(std::string_view key) noexcept {
  // Only the part between the first '{' and the next '}' counts, if it is not empty.
  auto const open = key.find('{');
  if (open != std::string_view::npos) {
    auto const close = key.find('}', open + 1);
    if (close != std::string_view::npos && close != open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16_xmodem(key) & (cluster_slots - 1);
}

Expected<SlotMap> SlotMap::parse(redisReply const& reply, std::string_view answered_by) {
  auto invalid = [](std::string reason) {
    return Error(errc::slot_map_invalid, std::move(reason));
  };
  SlotMap out;
  if (reply.type == REDIS_REPLY_ERROR) {
    return invalid("CLUSTER SLOTS failed: " + std::string(reply_string(reply)));
  }
  if (reply.type != REDIS_REPLY_ARRAY) {
    return invalid("CLUSTER SLOTS: unexpected reply type");
  }
  for (std::size_t i = 0; i < reply.elements; ++i) {
    auto const* r = reply.element[i];
    // [first, last, [host, port, id, ...], replicas...]
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements < 2) {
      return invalid("CLUSTER SLOTS: malformed slot range");
    }
    auto const* node = r->element[2];
    if (node->element[0]->type != REDIS_REPLY_STRING ||
        node->element[1]->type != REDIS_REPLY_INTEGER) {
      return invalid("CLUSTER SLOTS: malformed node");
    }
    auto const first = r->element[0]->integer;
    auto const last = r->element[1]->integer;
    auto const port = node->element[1]->integer;
    if (first < 0 || last < first || last >= cluster_slots || port <= 0 || port > 65535) {
      return invalid("CLUSTER SLOTS: slot range or port out of bounds");
    }
    auto host = reply_string(*node->element[0]);
    if (host == "?") continue;  // the endpoint is unknown: a gap until it is known
    if (host.empty()) host = answered_by;
    out.ranges_.push_back(Range{static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last),
                                Endpoint{std::string(host), static_cast<std::uint16_t>(port)}});
  }
  std::sort(out.ranges_.begin(), out.ranges_.end(),
            [](Range const& a, Range const& b) { return a.first < b.first; });
  return out;
}

std::optional<Endpoint> SlotMap::owner(std::uint16_t slot) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), slot,
                             [](std::uint16_t s, Range const& r) { return s < r.first; });
  if (it == ranges_.begin()) return std::nullopt;
  --it;
  if (slot > it->last) return std::nullopt;
  return it->master;
}

std::vector<Endpoint> SlotMap::masters() const {
  std::vector<Endpoint> out;
  for (auto const& r : ranges_) {
    if (std::find(out.begin(), out.end(), r.master) == out.end()) out.push_back(r.master);
  }
  return out;
}

bool SlotMap::covers_all_slots() const {
  std::uint32_t next = 0;
  for (auto const& r : ranges_) {
    if (r.first != next) return false;
    next = static_cast<std::uint32_t>(r.last) + 1;
  }
  return next == cluster_slots;
}

std::optional<Redirect> parse_redirect(std::string_view text) {
  Redirect r;
  if (text.starts_with("MOVED ")) {
    text.remove_prefix(6);
  } else if (text.starts_with("ASK ")) {
    r.ask = true;
    text.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  auto const sp = text.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  auto const [p, ec] = std::from_chars(text.data(), text.data() + sp, slot);
  if (ec != std::errc{} || p != text.data() + sp || slot >= cluster_slots) return std::nullopt;
  r.slot = static_cast<std::uint16_t>(slot);
  std::string err;
  if (!parse_host_port(text.substr(sp + 1), 6379, r.target, err)) return std::nullopt;
  return r;
}

}  // namespace podrelay::redis
