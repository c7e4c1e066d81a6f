#include "core/echo_filter.hpp"

#include <algorithm>
#include <functional>
#include <iterator>

namespace podrelay::core {

bool EchoFilter::expect(std::string_view redis_channel, std::string_view payload,
                        Receiver const* sender, std::size_t quiet_bytes) {
  // Over the cap (echoes that never came, on channels nobody publishes to again): start
  // afresh. Their echoes, should they still come, are delivered, which the protocol allows.
  if (pending_ >= max_pending_) clear();
  auto it = channels_.find(redis_channel);
  if (it == channels_.end()) {
    it = channels_.emplace(std::string(redis_channel), Map::mapped_type{}).first;
  }
  if (quiet_bytes > max_quiet_bytes - quiet_bytes_) quiet_bytes = 0;
  it->second.push_back(Entry{std::hash<std::string_view>{}(payload), payload.size(), sender,
                             static_cast<std::uint32_t>(quiet_bytes), spell_});
  quiet_bytes_ += quiet_bytes;
  ++pending_;
  return quiet_bytes != 0;
}

Receiver const* EchoFilter::take(std::string_view redis_channel, std::string_view payload) {
  if (pending_ == 0) return nullptr;
  auto it = channels_.find(redis_channel);
  if (it == channels_.end()) return nullptr;
  auto& entries = it->second;
  auto const hash = std::hash<std::string_view>{}(payload);
  auto const match = std::find_if(entries.begin(), entries.end(), [&](Entry const& e) {
    return e.hash == hash && e.size == payload.size();
  });
  if (match == entries.end()) return nullptr;  // someone else's message
  auto const* sender = match->sender;
  // The entries before the match were published earlier on the same link: their echoes
  // would have come first, so they will not come at all.
  auto const dropped = static_cast<std::size_t>(match - entries.begin());
  abandoned_ += dropped;
  for (auto e = entries.begin(); e != match + 1; ++e) gone(*e);
  entries.erase(entries.begin(), match + 1);
  pending_ -= dropped + 1;
  if (entries.empty()) channels_.erase(it);
  ++withheld_;
  return sender;
}

void EchoFilter::forget(Receiver const* r) {
  if (pending_ == 0) return;
  // Its echoes, should they come, go to the channel's other receivers like any message.
  for (auto it = channels_.begin(); it != channels_.end();) {
    auto const n = std::erase_if(it->second, [&](Entry const& e) {
      if (e.sender != r) return false;
      gone(e);
      return true;
    });
    pending_ -= n;
    abandoned_ += n;
    it = it->second.empty() ? channels_.erase(it) : std::next(it);
  }
}

void EchoFilter::drop(std::string_view redis_channel) {
  auto it = channels_.find(redis_channel);
  if (it == channels_.end()) return;
  for (auto const& e : it->second) gone(e);
  pending_ -= it->second.size();
  abandoned_ += it->second.size();
  channels_.erase(it);
}

void EchoFilter::clear() noexcept {
  abandoned_ += pending_;
  pending_ = 0;
  channels_.clear();
  end_quiet_spell();
}

void EchoFilter::end_quiet_spell() noexcept {
  ++spell_;
  quiet_bytes_ = 0;
}

}  // namespace podrelay::core
