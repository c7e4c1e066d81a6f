#include "core/stream_polls.hpp"

namespace podrelay::core {

bool StreamPolls::on_wake_confirmed(std::string const& channel, std::string const& stream_key) {
  auto [it, added] = channels_.try_emplace(channel);
  auto& ch = it->second;
  if (added) {
    ch.key = stream_key;
    ch.serial = next_serial_++;
  }
  if (ch.state != State::positioned) return false;
  // Wake-ups may have been lost while the subscription was away: read from the last id.
  ch.dirty = true;
  return true;
}

void StreamPolls::on_wake(std::string_view channel) {
  auto const it = channels_.find(channel);
  if (it != channels_.end()) it->second.dirty = true;
}

void StreamPolls::forget(std::string const& channel) {
  auto const it = channels_.find(channel);
  if (it == channels_.end()) return;
  if (it->second.held) --held_;
  channels_.erase(it);
}

std::vector<StreamPolls::Ticket> StreamPolls::take_fetches() {
  std::vector<Ticket> out;
  for (auto& [name, ch] : channels_) {
    if (ch.state != State::unpositioned || ch.held) continue;
    ch.state = State::fetching;
    out.push_back({name, ch.serial});
  }
  return out;
}

StreamPolls::Channel* StreamPolls::current(Ticket const& t) {
  auto const it = channels_.find(t.channel);
  return it == channels_.end() || it->second.serial != t.serial ? nullptr : &it->second;
}

bool StreamPolls::set_position(Ticket const& t, StreamId id) {
  auto* ch = current(t);
  if (!ch || ch->state != State::fetching) return false;
  ch->id = id;
  ch->state = State::positioned;
  return true;
}

std::vector<StreamPolls::Ticket> StreamPolls::take_reads() {
  std::vector<Ticket> out;
  for (auto& [name, ch] : channels_) {
    if (ch.state != State::positioned || !ch.dirty || ch.reading || ch.held) continue;
    ch.dirty = false;
    ch.reading = true;
    out.push_back({name, ch.serial});
  }
  return out;
}

bool StreamPolls::advance(Ticket const& t, StreamId id) {
  auto* ch = current(t);
  if (!ch || ch->state != State::positioned || id <= ch->id) return false;
  ch->id = id;
  return true;
}

void StreamPolls::read_done(Ticket const& t, std::size_t entries, std::size_t count) {
  auto* ch = current(t);
  if (!ch) return;
  ch->reading = false;
  if (entries >= count) ch->dirty = true;
}

void StreamPolls::failed(Ticket const& t) {
  auto* ch = current(t);
  if (!ch) return;
  if (ch->state == State::fetching) ch->state = State::unpositioned;
  if (ch->reading) {
    ch->reading = false;
    ch->dirty = true;
  }
  if (!ch->held) {
    ch->held = true;
    ++held_;
  }
}

void StreamPolls::retry() {
  for (auto& [name, ch] : channels_) ch.held = false;
  held_ = 0;
}

StreamId StreamPolls::position(std::string_view channel) const {
  auto const it = channels_.find(channel);
  return it == channels_.end() ? StreamId{} : it->second.id;
}

std::string const* StreamPolls::stream_key(std::string_view channel) const {
  auto const it = channels_.find(channel);
  return it == channels_.end() ? nullptr : &it->second.key;
}

}  // namespace podrelay::core
