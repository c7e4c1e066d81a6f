#include "core/frame_arena.hpp"

#include <cstring>

namespace podrelay::core {

FrameArena& FrameArena::local() {
  thread_local FrameArena arena;
  return arena;
}

SharedFrame FrameArena::own_block(std::string&& frame) {
  auto block = std::make_shared<FrameBlock>(std::move(frame));
  std::string_view const bytes(block->base_, block->used_);
  return SharedFrame(std::move(block), bytes);
}

SharedFrame FrameArena::place(std::string_view bytes) {
  auto const size = bytes.size();
  if (size > own_block_above) return own_block(std::string(bytes));
  // Nothing refers to the current block any more: start it over (its memory is hot).
  if (current_ && current_.use_count() == 1) current_->used_ = 0;
  if (!current_ || current_->capacity_ - current_->used_ < size) {
    current_ = std::make_shared<FrameBlock>(block_bytes);
  }
  std::shared_ptr<FrameBlock> block = current_;
  char* at = block->base_ + block->used_;
  if (size > 0) std::memcpy(at, bytes.data(), size);
  block->used_ += size;
  return SharedFrame(std::move(block), std::string_view(at, size));
}

}  // namespace podrelay::core
