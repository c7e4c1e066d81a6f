// The stream reader's state, without I/O: the durable channels this pod reads (those with
// local subscribers), the last id delivered for each (kept across reconnects, so after
// any reconnect or failover reading resumes exactly there: nothing Redis still holds is
// missed or delivered twice), which channels still need their start position, and the
// XREAD command over all of them. Names are Redis channel names; each maps to its stream
// key. Single-threaded; owned by the stream reader.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/stream_id.hpp"

namespace podrelay::core {

class StreamCursor {
 public:
  // A channel got its first local subscriber. True when its position is known already
  // (it was read before and not given up): it can be confirmed at once.
  bool want(std::string const& channel, std::string stream_key);
  // The last local subscriber left: the channel is no longer read and its position is
  // forgotten (a later subscriber starts from the stream's end at that time).
  void unwant(std::string const& channel);
  // After a reconnect: channels not in `wanted` are forgotten.
  void retain_only(std::vector<std::string> const& wanted);

  // Channels whose start position is still to be fetched, each once (marks them fetching).
  std::vector<std::string> take_unpositioned();
  // The start position arrived (the stream's last entry; 0-0 when there is no stream yet)
  // with the stream's epoch then (empty: none yet). False when the channel is no longer
  // wanted.
  bool set_position(std::string const& channel, StreamId id, std::string_view epoch = {});

  // After a reconnect, what Redis says now about a positioned channel's stream: its epoch,
  // its last entry, and `held`, the newest entry it holds at or before this reader's
  // position (0-0: none). `recreated`: the epoch is not the one read before (the stream
  // expired, was deleted, or was lost with Redis' data, so entries this reader had not read
  // yet may be gone): reading goes on from the last entry. `rolled_back`: same epoch, but
  // the entry read last is gone and an older one is there (Redis came back from an older
  // snapshot, without entries it had acknowledged); judged by the entry itself, not by the
  // last one, which a publish after the restart makes newer again. Reading goes on after
  // `held`, so what was published since the restart is read. `trimmed`: same epoch, no
  // entry at or before the position is left (MAXLEN trimmed past it while this reader was
  // away, or the stream was deleted): entries it had not read may be gone; reading goes on
  // from the last entry. The epoch becomes the current one. A reserved epoch ("p:" + token)
  // counts as its token.
  enum class Continuity { intact, recreated, rolled_back, trimmed };
  Continuity recheck(std::string_view channel, std::string_view epoch, StreamId last,
                     StreamId held);
  // Every positioned channel (what a reconnect rechecks).
  std::vector<std::string> positioned_channels() const;
  // The epoch read at positioning or at the last recheck ("" when none).
  std::string const& epoch(std::string_view channel) const;
  // A delivered entry. False when the channel is not read (any more) or the id is not
  // after its position (a stale reply): the entry must not be delivered.
  bool advance(std::string_view channel, StreamId id);
  // Refetch positions that were being fetched when the connection broke.
  void on_disconnected();

  // Every channel has its position: the XREAD can cover them all.
  bool ready() const noexcept { return fetching_ == 0 && unpositioned_ == 0; }
  bool empty() const noexcept { return channels_.empty(); }
  std::size_t size() const noexcept { return channels_.size(); }
  // Bumped on every change of the set, so the reader knows its blocked XREAD is stale.
  std::size_t generation() const noexcept { return generation_; }
  bool wanted(std::string_view channel) const { return channels_.find(channel) != channels_.end(); }
  // A read channel whose start position arrived (its subscription was confirmed).
  bool positioned(std::string_view channel) const;
  // The position of a read channel (0-0 when unknown).
  StreamId position(std::string_view channel) const;
  // The channel of a stream key (the XREAD reply names keys); empty when not read.
  std::string const* channel_of_key(std::string_view key) const;

  // XREAD BLOCK <block_ms> COUNT <count> STREAMS k1 .. kn id1 .. idn over every positioned
  // channel, as arguments.
  std::vector<std::string> xread_args(std::size_t block_ms, std::size_t count) const;

 private:
  enum class State { unpositioned, fetching, positioned };
  struct Channel {
    std::string key;
    StreamId id{};
    State state = State::unpositioned;
    std::string epoch;  // as read, without a reservation's "p:"
  };
  std::map<std::string, Channel, std::less<>> channels_;
  std::map<std::string, std::string, std::less<>> by_key_;
  std::size_t fetching_ = 0;
  std::size_t unpositioned_ = 0;
  std::size_t generation_ = 0;
};

}  // namespace podrelay::core
