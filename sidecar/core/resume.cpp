#include "core/resume.hpp"

namespace podrelay::core {

void Resume::on_subscribed(StreamId reader_position) {
  reader_position_ = reader_position;
  phase_ = Phase::checking;
}

Resume::Outcome Resume::on_info(StreamInfo const& info) {
  epoch_ = info.epoch;
  phase_ = Phase::replaying;
  // Whatever the outcome, the app gets everything after the reader's position at the
  // subscription (so nothing between the subscription and the switch to live is lost); a
  // recovery starts at the app's own id instead: further back, or further on when the app
  // comes from a pod whose reader was ahead of this one's (it has those entries already).
  last_ = reader_position_;
  auto const zero = StreamId{};
  if (!since_) {
    outcome_ = Outcome::fresh;
  } else if (!info.last) {
    // No stream. An app that subscribed before anything was published holds 0-0 and the
    // epoch reserved then: while that epoch is still the reserved one, nothing was ever
    // published in it, so nothing was missed. Anything else held entries that are gone.
    bool const unused =
        info.reserved && *since_ == zero && !client_epoch_.empty() && client_epoch_ == info.epoch;
    outcome_ = unused ? Outcome::recovered : Outcome::stream_gone;
    if (unused) last_ = *since_;  // a publish racing this resume is replayed, not missed
  } else if (info.epoch.empty()) {
    outcome_ = Outcome::stream_gone;
  } else if (!client_epoch_.empty() && client_epoch_ != info.epoch) {
    outcome_ = Outcome::epoch_changed;
  } else if (*since_ > *info.last) {
    outcome_ = Outcome::unknown_id;
  } else if (info.whole_history && info.first && *since_ < *info.first && *since_ != zero) {
    // Nothing was ever removed from this stream, so every id it held is at or after its
    // first entry: an older one (but 0-0, "from the start") comes from a stream that was
    // lost and created anew, which an app resuming without an epoch cannot tell us.
    outcome_ = Outcome::unknown_id;
  } else if (!info.whole_history && (info.first ? *since_ < *info.first : *since_ != *info.last)) {
    // Trimming removes entries from the front only, so when the app's id is still at or
    // after the first entry, everything after it is still held. Before it, something the
    // app never saw may have been trimmed (unless nothing ever was): say so, not guess.
    outcome_ = Outcome::trimmed;
  } else {
    outcome_ = Outcome::recovered;
    last_ = *since_;
  }
  return outcome_;
}

bool Resume::on_live(StreamId id) {
  if (phase_ != Phase::live || id <= last_) return false;
  last_ = id;
  return true;
}

bool Resume::on_replayed(StreamId id) {
  if (phase_ != Phase::replaying || id <= last_) return false;
  last_ = id;
  ++replayed_;
  return true;
}

bool Resume::page_done(std::size_t entries, std::size_t count, StreamId reader_position) {
  // A full page may have more behind it. And the reader may have delivered (to others,
  // not to us: before the switch the replay covers them) entries past our last one while
  // the page was on its way; the page and the reader use two connections, so an entry
  // appended after the page's XRANGE ran can reach the hub before the page does. An empty
  // page therefore ends the replay only when the reader did not move since it was asked
  // for (then the stream holds nothing after our last id that the reader saw: entries it
  // saw before were deleted with the stream); otherwise the next page fetches them.
  bool const behind = last_ < reader_position;
  if (entries >= count || (behind && (entries > 0 || asked_at_ < reader_position))) return true;
  phase_ = Phase::live;
  return false;
}

char const* outcome_name(Resume::Outcome outcome) noexcept {
  switch (outcome) {
    case Resume::Outcome::fresh: return "fresh";
    case Resume::Outcome::recovered: return "recovered";
    case Resume::Outcome::epoch_changed: return "epoch_changed";
    case Resume::Outcome::trimmed: return "trimmed";
    case Resume::Outcome::stream_gone: return "stream_gone";
    case Resume::Outcome::unknown_id: return "unknown_id";
  }
  return "unknown";
}

}  // namespace podrelay::core
