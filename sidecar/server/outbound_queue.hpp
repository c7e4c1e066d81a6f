// A connection's outbound bytes, in order: its own replies (and copied frames) coalesced
// into owned buffers, and runs of fan-out frames shared with other connections (slices of
// core::FrameArena blocks: consecutive frames of one block grow one slice, one iovec, no
// copy). It says what a gathered write takes next and keeps what a write left. Sans-I/O:
// the Connection does the writing.
#pragma once

#include <boost/asio/buffer.hpp>
#include <cstddef>
#include <deque>
#include <string>
#include <vector>

#include "core/frame_arena.hpp"

namespace podrelay::server {

class OutboundQueue {
 public:
  static constexpr std::size_t max_gather = 64;                       // chunks per gathered write
  static constexpr std::size_t owned_limit = std::size_t{16} * 1024;  // bytes per owned chunk

  bool empty() const noexcept { return chunks_.empty(); }
  std::size_t bytes() const noexcept { return bytes_; }  // queued, not yet written
  std::size_t chunks() const noexcept { return chunks_.size(); }

  // Appends what `encode(out)` appends to the owned tail; returns the bytes added.
  template <class Encode>
  std::size_t append_owned(Encode&& encode) {
    auto& out = owned_tail();
    auto const before = out.size();
    encode(out);
    auto const n = out.size() - before;
    // Nothing appended (a RESP connection has no GOAWAY): no empty chunk, which no write
    // would ever take off the front, so the writer would never see the queue empty.
    if (out.empty()) chunks_.pop_back();
    bytes_ += n;
    return n;
  }
  // A fan-out frame: the one right after the last slice queued extends it; otherwise it
  // is queued as a slice of its own, or copied into the owned tail when `copy_if_pinning`
  // and it would keep a block alive for little (a connection that will hold it a while).
  void append_shared(core::SharedFrame const& frame, bool copy_if_pinning);
  // Slices that pin their blocks become copies (coalesced with owned bytes next to them),
  // for a connection about to wait for socket room. Chunks held by a write stay.
  void unpin();

  // The next write's buffers (at most max_gather chunks, the front one from where the last
  // write stopped); returns their bytes.
  std::size_t gather(std::vector<boost::asio::const_buffer>& bufs) const;
  // An asynchronous write holds the chunks gather() returned until end_write(): they are
  // neither extended, dropped nor moved meanwhile.
  void begin_write() noexcept { writing_ = std::min(chunks_.size(), max_gather); }
  void end_write() noexcept { writing_ = 0; }
  // `n` bytes from the front reached the socket.
  void written(std::size_t n);
  // Drops what has not started leaving (a frame written in part stays whole, and so do
  // chunks held by a write).
  void drop_unsent();

 private:
  struct Chunk {
    core::SharedFrame shared;
    std::string owned;
    std::size_t size() const noexcept { return shared ? shared.size() : owned.size(); }
    char const* data() const noexcept { return shared ? shared.data() : owned.data(); }
  };
  std::string& owned_tail();
  std::size_t kept() const noexcept;  // front chunks that must stay where they are

  std::deque<Chunk> chunks_;
  std::size_t writing_ = 0;        // chunks at the front held by a write
  std::size_t front_written_ = 0;  // bytes of the front chunk already on the wire
  std::size_t bytes_ = 0;
};

}  // namespace podrelay::server
