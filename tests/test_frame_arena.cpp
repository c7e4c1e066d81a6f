#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/frame_arena.hpp"

using podrelay::core::FrameArena;
using podrelay::core::SharedFrame;

namespace {

SharedFrame put(FrameArena& arena, std::string const& bytes) {
  return arena.encode([&](std::string& out) { out += bytes; });
}

}  // namespace

TEST_CASE("frame arena: consecutive frames are adjacent and extend into one run") {
  FrameArena arena;
  auto a = put(arena, "first");
  auto const b = put(arena, "second");
  CHECK(b.data() == a.data() + a.size());
  auto run = a;
  CHECK(run.extend(b));
  CHECK(run.bytes() == "firstsecond");
  CHECK(a.bytes() == "first");  // the copy it started from is unchanged
  // Not adjacent: nothing changes.
  auto const c = put(arena, "third");
  CHECK_FALSE(a.extend(c));
  CHECK(a.bytes() == "first");
  CHECK_FALSE(SharedFrame{}.extend(c));
}

TEST_CASE("frame arena: placed bytes never change while referenced; a free block is reused") {
  FrameArena arena;
  auto const held = put(arena, "held");
  // Far more than one block while `held` is alive: it keeps its bytes, the others fill new
  // blocks.
  std::vector<SharedFrame> all;
  std::string const filler(1000, 'f');
  for (int i = 0; i < 200; ++i) all.push_back(put(arena, filler));
  CHECK(held.bytes() == "held");
  for (auto const& f : all) CHECK(f.bytes() == filler);
  all.clear();
  // Nothing but the arena refers to the current block: the next frame starts it over.
  auto const x = put(arena, "x");
  auto const y = put(arena, "y");
  CHECK(y.data() == x.data() + 1);
  SharedFrame dropped = put(arena, "z");
  char const* z_at = dropped.data();
  dropped = SharedFrame{};
  CHECK(held.bytes() == "held");
  CHECK(z_at == y.data() + 1);  // still in use by x and y: placed after them, not over them
}

TEST_CASE("frame arena: a block nobody holds is written from its start again") {
  FrameArena arena;
  char const* at = nullptr;
  {
    auto const f = put(arena, "abc");
    at = f.data();
  }
  auto const g = put(arena, "def");
  CHECK(g.data() == at);
  CHECK(g.bytes() == "def");
}

TEST_CASE("frame arena: a large frame gets its own block and pins nothing extra") {
  FrameArena arena;
  std::string const big(FrameArena::own_block_above + 1, 'b');
  auto const f = put(arena, big);
  CHECK(f.bytes() == big);
  CHECK_FALSE(f.pins_block());
  auto const small = put(arena, "s");
  CHECK(small.pins_block());  // one byte of a 64 KiB block
  std::string const quarter(FrameArena::block_bytes / 4, 'q');
  CHECK_FALSE(put(arena, quarter).pins_block());
  CHECK_FALSE(SharedFrame{}.pins_block());
}

TEST_CASE("frame arena: a large frame is its block as encoded, not a copy of it") {
  FrameArena arena;
  std::string const big(FrameArena::own_block_above + 100, 'L');
  char const* written_at = nullptr;
  auto const f = arena.encode([&](std::string& out) {
    out += big;
    written_at = out.data();
  });
  CHECK(f.data() == written_at);
  CHECK(f.bytes() == big);
  // The arena still works for small frames after giving its scratch buffer away.
  auto const a = put(arena, "after");
  auto const b = put(arena, "big");
  CHECK(a.bytes() == "after");
  CHECK(b.data() == a.data() + a.size());
  CHECK(f.bytes() == big);
}
