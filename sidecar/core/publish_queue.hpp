// The publisher's bookkeeping, without sockets: encoded PUBLISH commands waiting to be
// written (coalesced into one buffer), commands written and waiting for Redis' reply (in
// order: Redis answers a connection's commands in order), the byte bound, and the timeout
// for commands that wait too long while Redis is away.
// `Tag` is what the caller needs back to answer the publisher (e.g. who asked for an ack).
// A command is `awaited` when someone waits for its reply (an ack, a query); the queue
// counts those it holds, so the publisher knows when Redis' replies may be read lazily
// (see redis/publisher.hpp). Sans-I/O, single-threaded.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/ring.hpp"

namespace podrelay::core {

template <class Tag>
class PublishQueue {
 public:
  using Clock = std::chrono::steady_clock;
  struct Item {
    Tag tag;
    std::size_t bytes = 0;
    Clock::time_point enqueued{};
    Clock::time_point written{};
    bool awaited = false;  // someone waits for the reply
    bool lazy = false;     // written while replies were read lazily: `written` is no RTT start
  };

  PublishQueue(std::size_t max_bytes, Clock::duration timeout)
      : max_bytes_(max_bytes), timeout_(timeout) {}

  // Appends one encoded command. False (nothing queued) when it would cross the byte bound.
  bool push(std::string_view command, Tag tag, Clock::time_point now, bool awaited = false) {
    if (bytes_ + command.size() > max_bytes_) return false;
    unwritten_.append(command);
    items_.push_back(Item{std::move(tag), command.size(), now, {}, awaited, false});
    bytes_ += command.size();
    awaited_ += awaited ? 1 : 0;
    return true;
  }

  // Like push(), but `write(buffer)` appends exactly `size` bytes itself: the command is
  // encoded straight into the write buffer, with no copy in between.
  template <class Write>
  bool push_with(std::size_t size, Tag tag, Clock::time_point now, Write&& write,
                 bool awaited = false) {
    if (bytes_ + size > max_bytes_) return false;
    write(unwritten_);
    items_.push_back(Item{std::move(tag), size, now, {}, awaited, false});
    bytes_ += size;
    awaited_ += awaited ? 1 : 0;
    return true;
  }

  bool has_unwritten() const noexcept { return items_.size() > in_flight_; }
  // The command whose reply comes next, or null when none is in flight.
  Tag const* oldest_in_flight() const noexcept {
    return in_flight_ == 0 ? nullptr : &items_.front().tag;
  }

  // Moves every unwritten command into `out` (swapped, so the caller's buffer is reused)
  // and marks them in flight; `lazy`: their replies will be read lazily.
  void take_unwritten(std::string& out, Clock::time_point now, bool lazy = false) {
    out.clear();
    out.swap(unwritten_);
    for (auto i = in_flight_; i < items_.size(); ++i) {
      items_[i].written = now;
      items_[i].lazy = lazy;
    }
    in_flight_ = items_.size();
  }

  // Redis answered the oldest command in flight. False if none was in flight (a protocol
  // violation by the server; the caller drops the connection).
  bool on_reply(Item& out) {
    if (in_flight_ == 0) return false;
    out = items_.take_front();
    --in_flight_;
    forget(out);
    return true;
  }

  // The connection broke: commands in flight have an unknown outcome. Unwritten ones stay.
  std::vector<Item> on_disconnect() {
    std::vector<Item> lost;
    lost.reserve(in_flight_);
    for (; in_flight_ > 0; --in_flight_) {
      lost.push_back(items_.take_front());
      forget(lost.back());
    }
    return lost;
  }

  // Unwritten commands older than the timeout, removed from the queue.
  std::vector<Item> expire(Clock::time_point now) {
    std::vector<Item> expired;
    std::size_t cut = 0;
    while (in_flight_ + expired.size() < items_.size() &&
           now - items_[in_flight_ + expired.size()].enqueued >= timeout_) {
      auto& item = items_[in_flight_ + expired.size()];
      cut += item.bytes;
      forget(item);
      expired.push_back(std::move(item));
    }
    if (expired.empty()) return expired;
    // Close the gap: the commands in flight (usually none: Redis is away) move up behind it.
    for (auto i = in_flight_; i-- > 0;) items_[i + expired.size()] = std::move(items_[i]);
    for (std::size_t i = 0; i < expired.size(); ++i) items_.pop_front();
    unwritten_.erase(0, cut);
    return expired;
  }

  // The unwritten commands, removed from the queue (to move them to another connection).
  std::vector<Item> take_unwritten_items() {
    std::vector<Item> out;
    out.reserve(items_.size() - in_flight_);
    for (auto i = in_flight_; i < items_.size(); ++i) {
      forget(items_[i]);
      out.push_back(std::move(items_[i]));
    }
    while (items_.size() > in_flight_) items_.pop_back();
    unwritten_.clear();
    return out;
  }

  // Everything left, unwritten first-come first, for shutdown.
  std::vector<Item> drain_all() {
    auto out = on_disconnect();
    for (std::size_t i = 0; i < items_.size(); ++i) out.push_back(std::move(items_[i]));
    items_.clear();
    unwritten_.clear();
    bytes_ = 0;
    awaited_ = 0;
    return out;
  }

  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t unwritten_count() const noexcept { return items_.size() - in_flight_; }
  std::size_t in_flight_count() const noexcept { return in_flight_; }
  // Awaited commands (see push) in the queue, written or not.
  std::size_t awaited() const noexcept { return awaited_; }
  bool empty() const noexcept { return items_.empty(); }
  std::size_t max_bytes() const noexcept { return max_bytes_; }
  Clock::duration timeout() const noexcept { return timeout_; }
  // When the oldest unwritten command expires; time_point::max() when none waits.
  Clock::time_point next_expiry() const noexcept {
    return has_unwritten() ? items_[in_flight_].enqueued + timeout_ : Clock::time_point::max();
  }

 private:
  std::size_t max_bytes_;
  Clock::duration timeout_;
  std::string unwritten_;
  // Every command, in order: the first in_flight_ are written and wait for their replies
  // (Redis answers in order), the rest are unwritten. One ring: writing a batch moves no
  // item, and a steady stream allocates nothing.
  Ring<Item> items_;
  std::size_t in_flight_ = 0;
  std::size_t bytes_ = 0;
  std::size_t awaited_ = 0;

  // `item` leaves the queue.
  void forget(Item const& item) noexcept {
    bytes_ -= item.bytes;
    awaited_ -= item.awaited ? 1 : 0;
  }
};

}  // namespace podrelay::core
