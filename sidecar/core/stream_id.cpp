#include "core/stream_id.hpp"

#include <charconv>

namespace podrelay::core {
namespace {

bool parse_u64(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty()) return false;
  auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

}  // namespace

std::optional<StreamId> StreamId::parse(std::string_view text) noexcept {
  StreamId id;
  auto const dash = text.find('-');
  if (dash == std::string_view::npos) {
    if (!parse_u64(text, id.ms)) return std::nullopt;
    return id;
  }
  if (!parse_u64(text.substr(0, dash), id.ms) || !parse_u64(text.substr(dash + 1), id.seq)) {
    return std::nullopt;
  }
  return id;
}

std::string StreamId::to_string() const { return std::to_string(ms) + "-" + std::to_string(seq); }

}  // namespace podrelay::core
