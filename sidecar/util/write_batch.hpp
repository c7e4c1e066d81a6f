// Writes deferred to the end of the current I/O completion. A completion handler that may
// queue output for many sockets (a batch of messages read from Redis fanned out to app
// connections, the requests of one app read turned into PUBLISHes and replies) opens a
// WriteBatch; a writer that would be woken meanwhile registers instead, and when the
// outermost batch closes each registered writer writes once, right there, with a
// non-blocking write. Without it, every wake is a timer cancel, a posted completion, a
// coroutine resumption and an extra zero-timeout epoll_wait before the write, and one more
// posted completion after it; with it the bytes leave before the handler returns, and a
// burst still reaches each socket in one gathered write.
//
// Outside a batch nothing is deferred (the caller wakes its writer as before), so a place
// without a batch is only slower, never stuck. Single-threaded (the io_context thread):
// the registry is per thread.
#pragma once

#include <cstddef>
#include <vector>

namespace podrelay::util {

class WriteBatch {
 public:
  // Something with output to write at the end of the batch.
  class Writer {
   public:
    Writer(Writer const&) = delete;
    Writer& operator=(Writer const&) = delete;
    // The batch is closing: write what is queued now (or wake the asynchronous writer).
    virtual void flush_batch() noexcept = 0;

   protected:
    Writer() = default;
    // A writer that goes away before the batch closes is never called.
    virtual ~Writer() { WriteBatch::forget(this); }
    // Inside a batch: flush_batch() is called once when it closes (however often this is
    // called meanwhile), and true; outside one: false, the caller wakes its writer itself.
    bool defer_to_batch() {
      if (!WriteBatch::active()) return false;
      if (!deferred_) {
        deferred_ = true;
        WriteBatch::defer(this);
      }
      return true;
    }

   private:
    friend class WriteBatch;
    bool deferred_ = false;
  };

  WriteBatch() noexcept { ++depth(); }
  ~WriteBatch() { close(); }
  WriteBatch(WriteBatch const&) = delete;
  WriteBatch& operator=(WriteBatch const&) = delete;

  static bool active() noexcept { return depth() > 0; }
  static void forget(Writer* w) noexcept;
  static std::size_t pending() noexcept { return writers().size(); }

 private:
  static void defer(Writer* w);
  void close() noexcept;
  static int& depth() noexcept;
  static std::vector<Writer*>& writers() noexcept;
};

}  // namespace podrelay::util
