// Where fan-out frames live. Each message from Redis is encoded once per wire format, and
// the frames are laid back to back in shared blocks, so the frames of one read from Redis
// sit contiguously: a connection that receives a run of them queues one slice of the
// block (one iovec, no copy, no reference count per frame) instead of one buffer or one
// copy per message, and the kernel copies every connection's bytes out of the same few
// cache-hot kilobytes. Bytes in a block never change once placed (the arena only writes
// past them); a block is reused from its start once nothing refers to it any more, so a
// fan-out that the sockets take at once keeps touching the same memory.
//
// Used only from the io_context thread: local() is the thread's arena.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace podrelay::core {

class FrameBlock {
 public:
  explicit FrameBlock(std::size_t capacity)
      : storage_(std::make_unique_for_overwrite<char[]>(capacity)),
        base_(storage_.get()),
        capacity_(capacity) {}
  // A block that is one whole frame: takes the encoded bytes over without copying them.
  explicit FrameBlock(std::string&& frame)
      : whole_(std::move(frame)),
        base_(whole_.data()),
        capacity_(whole_.size()),
        used_(capacity_) {}
  FrameBlock(FrameBlock const&) = delete;
  FrameBlock& operator=(FrameBlock const&) = delete;
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  friend class FrameArena;
  std::unique_ptr<char[]> storage_;
  std::string whole_;
  char* base_;
  std::size_t capacity_;
  std::size_t used_ = 0;
};

// A frame, or a run of consecutive frames, in a block it keeps alive. Null when there is
// no frame (see Delivery).
class SharedFrame {
 public:
  SharedFrame() = default;
  SharedFrame(std::shared_ptr<FrameBlock const> block, std::string_view bytes) noexcept
      : block_(std::move(block)), bytes_(bytes) {}

  explicit operator bool() const noexcept { return block_ != nullptr; }
  std::string_view bytes() const noexcept { return bytes_; }
  char const* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }
  // When `next` starts where this ends, in the same block, this becomes the run of both
  // (and true); otherwise nothing changes.
  bool extend(SharedFrame const& next) noexcept {
    if (!block_ || next.block_ != block_ || next.bytes_.data() != bytes_.data() + bytes_.size()) {
      return false;
    }
    bytes_ = std::string_view(bytes_.data(), bytes_.size() + next.bytes_.size());
    return true;
  }
  // Whether this keeps alive a block more than four times its own size: a queue that holds
  // it for long should copy it instead (a slow connection must not pin whole blocks for a
  // few bytes each).
  bool pins_block() const noexcept { return block_ && bytes_.size() * 4 < block_->capacity(); }

 private:
  std::shared_ptr<FrameBlock const> block_;
  std::string_view bytes_;
};

class FrameArena {
 public:
  static constexpr std::size_t block_bytes = std::size_t{64} * 1024;
  // A frame above this gets a block of its own, exactly its size.
  static constexpr std::size_t own_block_above = block_bytes / 4;

  static FrameArena& local();

  // The bytes `encode(out)` appends to an empty string, placed in a block. A frame above
  // own_block_above becomes its block as encoded, with no copy.
  template <class Encode>
  SharedFrame encode(Encode&& encode) {
    scratch_.clear();
    std::forward<Encode>(encode)(scratch_);
    if (scratch_.size() > own_block_above) return own_block(std::exchange(scratch_, {}));
    return place(scratch_);
  }
  SharedFrame place(std::string_view bytes);

 private:
  static SharedFrame own_block(std::string&& frame);

  std::shared_ptr<FrameBlock> current_;
  std::string scratch_;  // keeps its capacity (up to own_block_above): no allocation per frame
};

}  // namespace podrelay::core
