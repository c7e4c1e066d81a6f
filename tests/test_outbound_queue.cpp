#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/frame_arena.hpp"
#include "server/outbound_queue.hpp"

using podrelay::core::FrameArena;
using podrelay::core::SharedFrame;
using podrelay::server::OutboundQueue;

namespace {

SharedFrame put(FrameArena& arena, std::string const& bytes) {
  return arena.encode([&](std::string& out) { out += bytes; });
}

void reply(OutboundQueue& q, std::string const& bytes) {
  q.append_owned([&](std::string& out) { out += bytes; });
}

// What the next gathered write would send.
std::string next_write(OutboundQueue const& q, std::size_t* buffers = nullptr) {
  std::vector<boost::asio::const_buffer> bufs;
  auto const n = q.gather(bufs);
  std::string out;
  for (auto const& b : bufs) out.append(static_cast<char const*>(b.data()), b.size());
  CHECK(out.size() == n);
  if (buffers) *buffers = bufs.size();
  return out;
}

// Everything still queued, in order, written `step` bytes at a time.
std::string drain(OutboundQueue& q, std::size_t step = 1 << 30) {
  std::string out;
  while (!q.empty()) {
    auto const chunk = next_write(q);
    auto const n = std::min(step, chunk.size());
    out += chunk.substr(0, n);
    q.written(n);
  }
  CHECK(q.bytes() == 0);
  return out;
}

}  // namespace

TEST_CASE("outbound queue: a run of fan-out frames is one buffer, replies coalesce") {
  FrameArena arena;
  OutboundQueue q;
  reply(q, "r1");
  reply(q, "r2");
  for (int i = 0; i < 100; ++i) q.append_shared(put(arena, "m" + std::to_string(i)), false);
  std::size_t buffers = 0;
  auto const all = next_write(q, &buffers);
  CHECK(buffers == 2);  // "r1r2" and one slice of the arena
  CHECK(all.starts_with("r1r2m0m1m2"));
  CHECK(q.bytes() == all.size());
  CHECK(drain(q) == all);
}

TEST_CASE("outbound queue: a busy connection copies what would pin a block") {
  FrameArena arena;
  OutboundQueue q;
  auto const a = put(arena, "aa");
  auto const other = put(arena, "--");  // for someone else: breaks the run
  auto const b = put(arena, "bb");
  q.append_shared(a, true);
  q.append_shared(b, true);
  std::size_t buffers = 0;
  CHECK(next_write(q, &buffers) == "aabb");
  CHECK(buffers == 1);  // both copied into one owned buffer
  (void)other;
  // A frame worth its block is queued shared even then.
  std::string const big(FrameArena::block_bytes / 2, 'B');
  q.append_shared(put(arena, big), true);
  CHECK(drain(q) == "aabb" + big);
}

TEST_CASE("outbound queue: unpin keeps the order, the bytes and a front written in part") {
  FrameArena arena;
  OutboundQueue q;
  std::string want;
  auto add_reply = [&](std::string const& s) {
    reply(q, s);
    want += s;
  };
  auto add_frame = [&](std::string const& s) {
    q.append_shared(put(arena, s), false);
    want += s;
  };
  add_frame("f1");
  add_frame("f2");
  add_reply("R1");
  (void)put(arena, "elsewhere");  // the next frame starts a new slice
  add_frame("f3");
  std::string const big(FrameArena::block_bytes / 2, 'B');
  add_frame(big);  // a block of its own: stays a slice
  add_reply("R2");
  add_frame("f4");
  q.written(1);  // "f" of f1 is on the wire
  std::size_t buffers = 0;
  next_write(q, &buffers);
  CHECK(buffers == 6);  // f1f2 | R1 | f3 | big | R2 | f4
  auto const before = q.bytes();
  q.unpin();
  CHECK(q.bytes() == before);
  next_write(q, &buffers);
  CHECK(buffers == 4);  // f1f2 (copied in place) | R1f3 | big | R2f4
  CHECK(drain(q, 7) == want.substr(1));
}

TEST_CASE("outbound queue: chunks held by a write are never extended, moved or dropped") {
  FrameArena arena;
  OutboundQueue q;
  auto const m1 = put(arena, "m1");
  auto const m2 = put(arena, "m2");
  q.append_shared(m1, false);
  q.begin_write();
  auto const in_flight = next_write(q);
  CHECK(in_flight == "m1");
  q.append_shared(m2, false);  // adjacent, but m1's buffer is held: a new chunk
  reply(q, "r");
  q.unpin();
  q.drop_unsent();
  CHECK(next_write(q) == "m1");  // only the held chunk is left
  q.end_write();
  q.written(2);
  CHECK(q.empty());
  CHECK(q.bytes() == 0);
}

TEST_CASE("outbound queue: drop_unsent keeps a frame written in part") {
  OutboundQueue q;
  reply(q, "abcdef");
  q.written(2);
  FrameArena arena;
  q.append_shared(put(arena, "later"), false);
  q.drop_unsent();
  CHECK(drain(q) == "cdef");
}

TEST_CASE("outbound queue: a gathered write takes at most max_gather buffers") {
  FrameArena arena;
  OutboundQueue q;
  std::string want;
  for (std::size_t i = 0; i < OutboundQueue::max_gather * 2; ++i) {
    auto const s = std::to_string(i) + ";";
    q.append_shared(put(arena, s), false);
    (void)put(arena, "x");  // never adjacent: one buffer each
    want += s;
  }
  std::size_t buffers = 0;
  next_write(q, &buffers);
  CHECK(buffers == OutboundQueue::max_gather);
  CHECK(drain(q) == want);
}

TEST_CASE("outbound queue: appending nothing leaves nothing to write") {
  // A RESP connection's GOAWAY is empty: the queue must still read empty, or the writer
  // of a draining connection waits on a chunk no write ever takes.
  OutboundQueue q;
  CHECK(q.append_owned([](std::string&) {}) == 0);
  CHECK(q.empty());
  CHECK(q.chunks() == 0);
  FrameArena arena;
  q.append_shared(put(arena, "MSG"), false);
  q.append_owned([](std::string&) {});
  CHECK(q.chunks() == 1);
  reply(q, "ok");
  q.append_owned([](std::string&) {});
  CHECK(drain(q) == "MSGok");
  CHECK(q.empty());
}
