// Durable channels on Redis Cluster, without I/O: which streams to read now. A blocking
// XREAD cannot span streams of different slots there, so each durable publish also sends a
// wake-up on a shard channel of its stream's slot, and the pod reads (XRANGE from its last
// id, non-blocking, on the shard's publisher connection) each stream that was woken. A
// wake-up lost while a subscriber link was down can only delay a read, never lose an
// entry: every (re)confirmed wake subscription reads from the last id, and the last id is
// kept per channel while any local subscriber remains, also when the channel's slot moves
// to another master. Names are Redis channel names. Single-threaded; owned by the relay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/stream_id.hpp"

namespace podrelay::core {

class StreamPolls {
 public:
  // A request's ticket: replies for a channel that was forgotten since are stale.
  struct Ticket {
    std::string channel;
    std::uint64_t serial = 0;
  };

  // The channel's wake subscription is confirmed (first time, or again after a reconnect,
  // a failover or a slot move). True when its position is known: the subscription can be
  // confirmed at once (a catch-up read is queued); false: a position fetch is queued, and
  // set_position() says when to confirm.
  bool on_wake_confirmed(std::string const& channel, std::string const& stream_key);
  // An entry was appended (or may have been): read the stream.
  void on_wake(std::string_view channel);
  // No local subscriber is left: the position is forgotten.
  void forget(std::string const& channel);

  // Positions to fetch (XREVRANGE + - COUNT 1), each once until it answers or fails.
  std::vector<Ticket> take_fetches();
  // The stream's last entry (0-0: no stream yet). True when the channel is to be confirmed.
  bool set_position(Ticket const& t, StreamId id);
  // Reads to send (XRANGE after position()), at most one in flight per channel.
  std::vector<Ticket> take_reads();
  // An entry read: true when it is to be delivered (ids only grow; stale replies skip).
  bool advance(Ticket const& t, StreamId id);
  // A read answered with `entries` of at most `count`: a full page reads again.
  void read_done(Ticket const& t, std::size_t entries, std::size_t count);
  // A fetch or read that failed (the link broke, MOVED, CLUSTERDOWN): held back until
  // retry(), so a shard that keeps refusing is not asked in a loop.
  void failed(Ticket const& t);
  // Something failed and waits: the caller calls retry() after a pause.
  bool retry_due() const noexcept { return held_ > 0; }
  void retry();

  bool wanted(std::string_view channel) const { return channels_.find(channel) != channels_.end(); }
  StreamId position(std::string_view channel) const;
  std::string const* stream_key(std::string_view channel) const;
  std::size_t size() const noexcept { return channels_.size(); }

 private:
  enum class State { unpositioned, fetching, positioned };
  struct Channel {
    std::string key;
    std::uint64_t serial = 0;
    StreamId id{};
    State state = State::unpositioned;
    bool dirty = false;    // read again when the read in flight (if any) is done
    bool reading = false;  // a read is in flight
    bool held = false;     // failed: nothing is sent for it until retry()
  };
  Channel* current(Ticket const& t);

  std::map<std::string, Channel, std::less<>> channels_;
  std::uint64_t next_serial_ = 1;
  std::size_t held_ = 0;
};

}  // namespace podrelay::core
