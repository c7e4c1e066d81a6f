// A minimal single-threaded epoll loop for the bench's client connections. Level-triggered;
// nanosecond poll timeouts (epoll_pwait2) so paced senders are not rounded to milliseconds.
// Handlers must outlive their registration; nothing is destroyed while poll() dispatches.
// Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

namespace bench {

class EventLoop {
 public:
  class Handler {
   public:
    virtual void on_ready(std::uint32_t events) = 0;

   protected:
    Handler() = default;
    Handler(Handler const&) = default;
    Handler& operator=(Handler const&) = default;
    ~Handler() = default;
  };

  EventLoop();
  ~EventLoop();
  EventLoop(EventLoop const&) = delete;
  EventLoop& operator=(EventLoop const&) = delete;

  void add(int fd, std::uint32_t events, Handler* handler);
  void modify(int fd, std::uint32_t events, Handler* handler);
  void remove(int fd);

  // Waits at most `timeout` (0: do not wait) and dispatches ready handlers; returns how many
  // were ready.
  int poll(std::chrono::nanoseconds timeout);

  // One read buffer shared by every connection: reads are consumed before the next one.
  std::span<char> scratch() noexcept { return scratch_; }

 private:
  int epfd_ = -1;
  std::vector<char> scratch_;
};

}  // namespace bench
