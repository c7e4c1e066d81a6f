// Redis glob matching (the semantics of Redis' stringmatchlen(): `*` any run of bytes, `?`
// one byte, `[abc]`, `[^a]`, `[a-z]` a byte class, `\x` the literal byte x), so
// `--durable` patterns select channels exactly as a PSUBSCRIBE with the same pattern
// would. Pure function; byte-wise, case-sensitive.
#pragma once

#include <string_view>

namespace podrelay::core {

bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace podrelay::core
