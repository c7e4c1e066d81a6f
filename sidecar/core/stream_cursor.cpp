#include "core/stream_cursor.hpp"

#include <algorithm>
#include <unordered_set>

namespace podrelay::core {

bool StreamCursor::want(std::string const& channel, std::string stream_key) {
  auto const it = channels_.find(channel);
  if (it != channels_.end()) return it->second.state == State::positioned;
  by_key_[stream_key] = channel;
  channels_.emplace(channel, Channel{std::move(stream_key), {}, State::unpositioned, {}});
  ++unpositioned_;
  ++generation_;
  return false;
}

void StreamCursor::unwant(std::string const& channel) {
  auto const it = channels_.find(channel);
  if (it == channels_.end()) return;
  if (it->second.state == State::fetching) --fetching_;
  if (it->second.state == State::unpositioned) --unpositioned_;
  by_key_.erase(it->second.key);
  channels_.erase(it);
  ++generation_;
}

void StreamCursor::retain_only(std::vector<std::string> const& wanted) {
  std::unordered_set<std::string_view> keep(wanted.begin(), wanted.end());
  std::vector<std::string> gone;
  for (auto const& [name, ch] : channels_) {
    if (!keep.contains(name)) gone.push_back(name);
  }
  for (auto const& name : gone) unwant(name);
}

std::vector<std::string> StreamCursor::take_unpositioned() {
  std::vector<std::string> out;
  if (unpositioned_ == 0) return out;
  for (auto& [name, ch] : channels_) {
    if (ch.state != State::unpositioned) continue;
    ch.state = State::fetching;
    out.push_back(name);
  }
  unpositioned_ = 0;
  fetching_ += out.size();
  return out;
}

namespace {

std::string_view unreserved(std::string_view epoch) {
  return epoch.starts_with("p:") ? epoch.substr(2) : epoch;
}

}  // namespace

bool StreamCursor::set_position(std::string const& channel, StreamId id, std::string_view epoch) {
  auto const it = channels_.find(channel);
  if (it == channels_.end() || it->second.state != State::fetching) return false;
  it->second.id = id;
  it->second.epoch = unreserved(epoch);
  it->second.state = State::positioned;
  --fetching_;
  ++generation_;
  return true;
}

bool StreamCursor::advance(std::string_view channel, StreamId id) {
  auto const it = channels_.find(channel);
  if (it == channels_.end() || it->second.state != State::positioned || id <= it->second.id) {
    return false;
  }
  it->second.id = id;
  return true;
}

void StreamCursor::on_disconnected() {
  for (auto& [name, ch] : channels_) {
    if (ch.state == State::fetching) {
      ch.state = State::unpositioned;
      --fetching_;
      ++unpositioned_;
    }
  }
}

StreamCursor::Continuity StreamCursor::recheck(std::string_view channel, std::string_view epoch,
                                               StreamId last, StreamId held) {
  auto const it = channels_.find(channel);
  if (it == channels_.end() || it->second.state != State::positioned) return Continuity::intact;
  auto& ch = it->second;
  auto const now = unreserved(epoch);
  auto result = Continuity::intact;
  auto next = ch.id;
  if (!ch.epoch.empty() && ch.epoch != now) {
    result = Continuity::recreated;
    next = last;
  } else if (ch.id != StreamId{} && held != ch.id) {
    // 0-0: positioned on an empty stream, nothing read yet; nothing read can be gone.
    result = held == StreamId{} ? Continuity::trimmed : Continuity::rolled_back;
    // Trimmed: the position is no entry now, so a later recheck would say it again; its
    // subscribers are cut off and resume by their own ids.
    next = result == Continuity::rolled_back ? held : last;
  }
  // A stream first seen without an epoch (created after positioning) takes the one it has.
  ch.epoch = now;
  if (next != ch.id) {
    ch.id = next;
    ++generation_;
  }
  return result;
}

std::vector<std::string> StreamCursor::positioned_channels() const {
  std::vector<std::string> out;
  for (auto const& [name, ch] : channels_) {
    if (ch.state == State::positioned) out.push_back(name);
  }
  return out;
}

std::string const& StreamCursor::epoch(std::string_view channel) const {
  static std::string const none;
  auto const it = channels_.find(channel);
  return it == channels_.end() ? none : it->second.epoch;
}

bool StreamCursor::positioned(std::string_view channel) const {
  auto const it = channels_.find(channel);
  return it != channels_.end() && it->second.state == State::positioned;
}

StreamId StreamCursor::position(std::string_view channel) const {
  auto const it = channels_.find(channel);
  return it == channels_.end() ? StreamId{} : it->second.id;
}

std::string const* StreamCursor::channel_of_key(std::string_view key) const {
  auto const it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : &it->second;
}

std::vector<std::string> StreamCursor::xread_args(std::size_t block_ms, std::size_t count) const {
  std::vector<std::string> args{
      "XREAD", "BLOCK", std::to_string(block_ms), "COUNT", std::to_string(count), "STREAMS"};
  args.reserve(args.size() + 2 * channels_.size());
  for (auto const& [name, ch] : channels_) {
    if (ch.state == State::positioned) args.push_back(ch.key);
  }
  for (auto const& [name, ch] : channels_) {
    if (ch.state == State::positioned) args.push_back(ch.id.to_string());
  }
  return args;
}

}  // namespace podrelay::core
