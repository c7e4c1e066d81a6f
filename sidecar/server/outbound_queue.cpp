#include "server/outbound_queue.hpp"

#include <algorithm>

namespace podrelay::server {

namespace {

// Whether owned bytes may be appended to `c` (an owned chunk with room left).
template <class Chunk>
bool takes_owned(Chunk const& c) noexcept {
  return !c.shared && c.owned.size() < OutboundQueue::owned_limit;
}

}  // namespace

std::string& OutboundQueue::owned_tail() {
  if (chunks_.size() > writing_ && takes_owned(chunks_.back())) {
    return chunks_.back().owned;
  }
  chunks_.push_back(Chunk{});
  return chunks_.back().owned;
}

void OutboundQueue::append_shared(core::SharedFrame const& frame, bool copy_if_pinning) {
  bytes_ += frame.size();
  if (chunks_.size() > writing_ && chunks_.back().shared.extend(frame)) return;
  if (copy_if_pinning && frame.pins_block()) {
    owned_tail().append(frame.bytes());
    return;
  }
  chunks_.push_back(Chunk{frame, {}});
}

std::size_t OutboundQueue::kept() const noexcept {
  return std::max(writing_, std::size_t{front_written_ > 0 ? 1U : 0U});
}

void OutboundQueue::unpin() {
  auto const from = chunks_.begin() + static_cast<std::ptrdiff_t>(writing_);
  if (std::none_of(from, chunks_.end(), [](Chunk const& c) { return c.shared.pins_block(); })) {
    return;
  }
  // Rebuilt in order. A front chunk written in part keeps its place (front_written_ counts
  // into it) but may become a copy of the same bytes; after it, copies and owned bytes
  // coalesce, and slices worth their block stay slices.
  std::deque<Chunk> rebuilt;
  auto const keep = kept();
  for (std::size_t i = 0; i < chunks_.size(); ++i) {
    auto& c = chunks_[i];
    if (i < keep) {
      if (i >= writing_ && c.shared.pins_block()) c = Chunk{{}, std::string(c.shared.bytes())};
      rebuilt.push_back(std::move(c));
      continue;
    }
    if (c.shared && !c.shared.pins_block()) {
      rebuilt.push_back(std::move(c));
      continue;
    }
    auto const bytes = c.shared ? c.shared.bytes() : std::string_view(c.owned);
    if (rebuilt.size() > keep && takes_owned(rebuilt.back())) {
      rebuilt.back().owned.append(bytes);
    } else if (c.shared) {
      rebuilt.push_back(Chunk{{}, std::string(bytes)});
    } else {
      rebuilt.push_back(std::move(c));
    }
  }
  chunks_ = std::move(rebuilt);
}

std::size_t OutboundQueue::gather(std::vector<boost::asio::const_buffer>& bufs) const {
  bufs.clear();
  std::size_t bytes = 0;
  auto const n = std::min(chunks_.size(), max_gather);
  for (std::size_t i = 0; i < n; ++i) {
    auto const skip = i == 0 ? front_written_ : 0;
    bufs.emplace_back(chunks_[i].data() + skip, chunks_[i].size() - skip);
    bytes += chunks_[i].size() - skip;
  }
  return bytes;
}

void OutboundQueue::written(std::size_t n) {
  // Whole chunks leave; a chunk written in part stays with its offset.
  bytes_ -= n;
  while (n > 0) {
    auto const left = chunks_.front().size() - front_written_;
    if (n < left) {
      front_written_ += n;
      break;
    }
    n -= left;
    front_written_ = 0;
    chunks_.pop_front();
    if (writing_ > 0) --writing_;
  }
}

void OutboundQueue::drop_unsent() {
  auto const keep = kept();
  while (chunks_.size() > keep) {
    bytes_ -= chunks_.back().size();
    chunks_.pop_back();
  }
}

}  // namespace podrelay::server
