// Redis stream entry ids ("<ms>-<seq>", both unsigned 64-bit): parsing, order, text. Ids
// are compared numerically, never as strings ("10-0" comes after "9-0"). Pure values.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace podrelay::core {

struct StreamId {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;

  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads a defaulted <=> (0 literal)
  auto operator<=>(StreamId const&) const = default;

  // "<ms>-<seq>" or "<ms>" (seq 0); nullopt for anything else (empty, signs, spaces,
  // overflow, a third part).
  static std::optional<StreamId> parse(std::string_view text) noexcept;
  std::string to_string() const;
};

}  // namespace podrelay::core
