// Counts the open app connections against --max-connections and gives freed heap back to
// the kernel after a burst. A Slot is held by each connection for its lifetime (RAII), so
// the count cannot drift. Single-threaded; owned by the relay.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>

namespace podrelay::server {

class ConnectionSlots {
 public:
  class Slot {
   public:
    Slot() = default;
    explicit Slot(ConnectionSlots& owner) : owner_(&owner) { owner.opened(); }
    Slot(Slot&& o) noexcept : owner_(o.owner_) { o.owner_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept {
      if (this != &o) {
        reset();
        owner_ = o.owner_;
        o.owner_ = nullptr;
      }
      return *this;
    }
    Slot(Slot const&) = delete;
    Slot& operator=(Slot const&) = delete;
    ~Slot() { reset(); }
    void reset() {
      if (owner_ != nullptr) owner_->closed();
      owner_ = nullptr;
    }

   private:
    ConnectionSlots* owner_ = nullptr;
  };

  ConnectionSlots(boost::asio::any_io_executor ex, std::size_t max) : max_(max), trim_timer_(ex) {}

  bool available() const noexcept { return open_ < max_; }
  Slot take() { return Slot(*this); }
  std::size_t open() const noexcept { return open_; }

 private:
  void opened() noexcept;
  void closed();

  std::size_t max_;
  std::size_t open_ = 0;
  std::size_t peak_ = 0;     // of the current burst
  std::size_t trim_at_ = 0;  // trim when the count falls to this
  boost::asio::steady_timer trim_timer_;
  bool trim_armed_ = false;
};

}  // namespace podrelay::server
