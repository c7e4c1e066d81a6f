#include "core/glob.hpp"

#include <cstddef>

namespace podrelay::core {
namespace {

// Matches one class starting after its '['; advances `p` past the closing ']' (or to the
// end when it is missing, which Redis treats as the end of the class).
bool class_matches(std::string_view pattern, std::size_t& p, unsigned char c) {
  bool const negate = p < pattern.size() && pattern[p] == '^';
  if (negate) ++p;
  bool match = false;
  while (p < pattern.size() && pattern[p] != ']') {
    if (pattern[p] == '\\' && p + 1 < pattern.size()) {
      ++p;
      if (static_cast<unsigned char>(pattern[p]) == c) match = true;
    } else if (p + 2 < pattern.size() && pattern[p + 1] == '-' && pattern[p + 2] != ']') {
      auto lo = static_cast<unsigned char>(pattern[p]);
      auto hi = static_cast<unsigned char>(pattern[p + 2]);
      if (lo > hi) std::swap(lo, hi);
      if (c >= lo && c <= hi) match = true;
      p += 2;
    } else if (static_cast<unsigned char>(pattern[p]) == c) {
      match = true;
    }
    ++p;
  }
  if (p < pattern.size()) ++p;  // the ']'
  return negate ? !match : match;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  // Iterative with one backtrack point for the last '*': linear in practice, and no
  // recursion depth an operator's pattern could blow up.
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star_p = std::string_view::npos;
  std::size_t star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      auto const c = static_cast<unsigned char>(text[t]);
      switch (pattern[p]) {
        case '*':
          while (p < pattern.size() && pattern[p] == '*') ++p;
          if (p == pattern.size()) return true;
          star_p = p;
          star_t = t;
          continue;
        case '?':
          ++p;
          ++t;
          continue;
        case '[': {
          std::size_t q = p + 1;
          if (class_matches(pattern, q, c)) {
            p = q;
            ++t;
            continue;
          }
          break;
        }
        case '\\':
          if (p + 1 < pattern.size()) {
            if (static_cast<unsigned char>(pattern[p + 1]) == c) {
              p += 2;
              ++t;
              continue;
            }
            break;
          }
          [[fallthrough]];
        default:
          if (static_cast<unsigned char>(pattern[p]) == c) {
            ++p;
            ++t;
            continue;
          }
          break;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace podrelay::core
