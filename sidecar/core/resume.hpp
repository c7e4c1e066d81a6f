// The recovery of one resumed durable subscription (RSUB, proto/PROTOCOL.md section 9),
// without I/O: decide from the stream's metadata whether the history still covers what
// the app missed, replay it page by page, then switch to live delivery with no gap and no
// duplicate. Live messages that arrive before the switch are not delivered (the replay
// pages on until it has caught up with the stream reader's position, so it covers them);
// after the switch, ids at or below the last one delivered are skipped.
// A plain value owned by one session, single-threaded.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "core/stream_id.hpp"

namespace podrelay::core {

// What Redis says about a stream when a resume starts.
struct StreamInfo {
  // Empty: none (a stream whose epoch key was deleted). Without a stream, the epoch the
  // resume reserved for the stream to come (`reserved`): no publish has used it yet.
  std::string epoch;
  std::optional<StreamId> first;  // the oldest entry still held; none: empty stream
  std::optional<StreamId> last;   // the last id Redis generated; none: no stream
  // Nothing was ever trimmed or deleted (Redis >= 7: entries-added equals the length), so
  // every entry the stream ever held is still there: `0-0` asks for the whole history.
  bool whole_history = false;
  bool reserved = false;
};

class Resume {
 public:
  enum class Phase { subscribing, checking, replaying, live };
  enum class Outcome { fresh, recovered, epoch_changed, trimmed, stream_gone, unknown_id };

  // `since`: the last id the app has (none: just subscribe). `epoch`: the epoch the app
  // saw that id in (empty: not checked).
  Resume(std::optional<StreamId> since, std::string epoch)
      : since_(since), client_epoch_(std::move(epoch)) {}

  // The subscription is confirmed; `reader_position` is where the stream reader stands for
  // this channel (every later entry reaches the hub).
  void on_subscribed(StreamId reader_position);
  // The stream's metadata: decides the outcome; replay() then says where to page from.
  Outcome on_info(StreamInfo const& info);
  StreamId replay_after() const noexcept { return last_; }

  // A live message from the stream reader: true when it is to be delivered.
  bool on_live(StreamId id);
  // A replayed entry: true when it is to be delivered (ids only grow).
  bool on_replayed(StreamId id);
  // A page is asked for now; `reader_position` is where the stream reader stands.
  void page_asked(StreamId reader_position) noexcept { asked_at_ = reader_position; }
  // The page of `entries` (asked with `count`) is done. True: ask for another page after
  // replay_after(); false: the replay caught up and the subscription is live now.
  bool page_done(std::size_t entries, std::size_t count, StreamId reader_position);

  Phase phase() const noexcept { return phase_; }
  Outcome outcome() const noexcept { return outcome_; }
  bool recovered() const noexcept {
    return outcome_ == Outcome::fresh || outcome_ == Outcome::recovered;
  }
  std::string const& epoch() const noexcept { return epoch_; }
  StreamId last() const noexcept { return last_; }
  std::size_t replayed() const noexcept { return replayed_; }

 private:
  std::optional<StreamId> since_;
  std::string client_epoch_;
  std::string epoch_;
  StreamId reader_position_{};
  StreamId asked_at_{};  // the reader's position when the page in flight was asked for
  StreamId last_{};
  Phase phase_ = Phase::subscribing;
  Outcome outcome_ = Outcome::fresh;
  std::size_t replayed_ = 0;
};

char const* outcome_name(Resume::Outcome outcome) noexcept;

}  // namespace podrelay::core
