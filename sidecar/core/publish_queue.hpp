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
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
    unwritten_items_.push_back(Item{std::move(tag), command.size(), now, {}, awaited, false});
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
    unwritten_items_.push_back(Item{std::move(tag), size, now, {}, awaited, false});
    bytes_ += size;
    awaited_ += awaited ? 1 : 0;
    return true;
  }

  bool has_unwritten() const noexcept { return !unwritten_items_.empty(); }

  // Moves every unwritten command into `out` (swapped, so the caller's buffer is reused)
  // and marks them in flight; `lazy`: their replies will be read lazily.
  void take_unwritten(std::string& out, Clock::time_point now, bool lazy = false) {
    out.clear();
    out.swap(unwritten_);
    for (auto& item : unwritten_items_) {
      item.written = now;
      item.lazy = lazy;
      in_flight_.push_back(std::move(item));
    }
    unwritten_items_.clear();
  }

  // Redis answered the oldest command in flight. False if none was in flight (a protocol
  // violation by the server; the caller drops the connection).
  bool on_reply(Item& out) {
    if (in_flight_.empty()) return false;
    out = std::move(in_flight_.front());
    in_flight_.pop_front();
    forget(out);
    return true;
  }

  // The connection broke: commands in flight have an unknown outcome. Unwritten ones stay.
  std::vector<Item> on_disconnect() {
    std::vector<Item> lost(std::make_move_iterator(in_flight_.begin()),
                           std::make_move_iterator(in_flight_.end()));
    in_flight_.clear();
    for (auto const& item : lost) forget(item);
    return lost;
  }

  // Unwritten commands older than the timeout, removed from the queue.
  std::vector<Item> expire(Clock::time_point now) {
    std::vector<Item> expired;
    std::size_t cut = 0;
    while (!unwritten_items_.empty() && now - unwritten_items_.front().enqueued >= timeout_) {
      cut += unwritten_items_.front().bytes;
      forget(unwritten_items_.front());
      expired.push_back(std::move(unwritten_items_.front()));
      unwritten_items_.pop_front();
    }
    if (cut > 0) unwritten_.erase(0, cut);
    return expired;
  }

  // The unwritten commands, removed from the queue (to move them to another connection).
  std::vector<Item> take_unwritten_items() {
    std::vector<Item> out(std::make_move_iterator(unwritten_items_.begin()),
                          std::make_move_iterator(unwritten_items_.end()));
    for (auto const& item : out) forget(item);
    unwritten_items_.clear();
    unwritten_.clear();
    return out;
  }

  // Everything left, unwritten first-come first, for shutdown.
  std::vector<Item> drain_all() {
    auto out = on_disconnect();
    for (auto& item : unwritten_items_) out.push_back(std::move(item));
    unwritten_items_.clear();
    unwritten_.clear();
    bytes_ = 0;
    awaited_ = 0;
    return out;
  }

  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t unwritten_count() const noexcept { return unwritten_items_.size(); }
  std::size_t in_flight_count() const noexcept { return in_flight_.size(); }
  // Awaited commands (see push) in the queue, written or not.
  std::size_t awaited() const noexcept { return awaited_; }
  bool empty() const noexcept { return unwritten_items_.empty() && in_flight_.empty(); }
  std::size_t max_bytes() const noexcept { return max_bytes_; }
  Clock::duration timeout() const noexcept { return timeout_; }
  // When the oldest unwritten command expires; time_point::max() when none waits.
  Clock::time_point next_expiry() const noexcept {
    return unwritten_items_.empty() ? Clock::time_point::max()
                                    : unwritten_items_.front().enqueued + timeout_;
  }

 private:
  std::size_t max_bytes_;
  Clock::duration timeout_;
  std::string unwritten_;
  std::deque<Item> unwritten_items_;
  std::deque<Item> in_flight_;
  std::size_t bytes_ = 0;
  std::size_t awaited_ = 0;

  // `item` leaves the queue.
  void forget(Item const& item) noexcept {
    bytes_ -= item.bytes;
    awaited_ -= item.awaited ? 1 : 0;
  }
};

}  // namespace podrelay::core
