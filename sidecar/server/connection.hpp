// What every app connection has, whatever protocol it speaks: the socket, a reader that
// hands bytes to the protocol and a writer that sends the outbound queue (this
// connection's replies, coalesced, and shared fan-out buffers) with gathered writes: at
// the end of the I/O completion that queued them (util::WriteBatch, a non-blocking write
// with no coroutine switch) or, when the socket takes only part, from a writer coroutine
// that waits for room; the
// bounded queue with its hard limit and its soft limit held for a window (checked on a
// timer); GOAWAY, half-close and close, and a close that never resets the connection
// while replies are on their way. The protocols (framed Session, RespSession) derive from
// it and supply decoding, replies and message encoding. Owned by shared_ptr (its
// coroutines hold a reference); used only from the io_context thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/receiver.hpp"
#include "proto/error_code.hpp"
#include "redis/publisher.hpp"
#include "server/connection_slots.hpp"
#include "server/outbound_queue.hpp"
#include "util/write_batch.hpp"

namespace podrelay::server {

class Relay;

class Connection : public std::enable_shared_from_this<Connection>,
                   public core::Receiver,
                   public redis::PublishOrigin,
                   private util::WriteBatch::Writer {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;

  Connection(Socket socket, Relay& relay, std::uint64_t id, std::string peer);
  Connection(Connection const&) = delete;
  Connection& operator=(Connection const&) = delete;
  ~Connection() override;

  void start();
  // Stops reading, says goodbye in the protocol's way and closes once queued replies are
  // written (bounded by a deadline). With `wait_for_replies`, replies still owed (publishes
  // waiting for Redis) are written first (drain).
  void goaway(proto::ErrorCode code, std::string_view text, bool wait_for_replies = false);
  void close();

  std::size_t queued_bytes() const noexcept { return queue_.bytes(); }
  std::uint64_t id() const noexcept { return id_; }

 protected:
  // What an idle connection reads into (kept by the protocol's read buffer): a message
  // of this size or less is one read, and a read shorter than this ends the burst.
  static constexpr std::size_t idle_read_bytes = 256;

  // The protocol's part.
  virtual void on_started() {}
  virtual std::span<char> read_space(std::size_t at_least) = 0;
  virtual std::size_t read_buffered() const noexcept = 0;
  // No bytes buffered: give the read buffer back, keeping at most `keep` bytes (the idle
  // read's buffer).
  virtual void read_idle(std::size_t keep) = 0;
  virtual void read_done() = 0;  // nothing more will be parsed: drop the read buffer
  // `n` bytes arrived in read_space(); false: stop reading (the protocol is closing).
  virtual bool on_read(std::size_t n) = 0;
  virtual bool owes_replies() const noexcept = 0;
  // The app half-closed (EOF): no more requests; replies owed are still written.
  virtual void on_half_closed() {}
  virtual void append_goaway(std::string& out, proto::ErrorCode code, std::string_view text) = 0;
  // The outbound queue fell to the mark set by notify_when_below() (called on a later turn
  // of the event loop, not from inside the writer).
  virtual void on_queue_below_mark() {}
  // Asks for one on_queue_below_mark() once at most `bytes` are queued (a pull, such as a
  // replay, waits for it instead of filling the queue up to the slow-consumer limit).
  void notify_when_below(std::size_t bytes);

  // Encodes bytes (`encode(out)` appends them) into the outbound queue.
  // Nothing is queued after the last words of a connection that is being cut off (a
  // protocol error, a slow consumer): the GOAWAY or ERR must be the last frame the app gets.
  template <class Encode>
  void append_reply(Encode&& encode) {
    if (closed_ || last_words_) return;
    queue_.append_owned(std::forward<Encode>(encode));
    queued();
  }
  // Queues a fan-out frame shared with other receivers: the frame right after the last one
  // queued extends its slice; a connection whose writer is busy (the socket is full)
  // copies a frame rather than keep a shared block alive for it (pins_block()).
  void append_shared(core::SharedFrame const& frame);
  // Ends the connection after `last_words` (an error reply) is written: no more reading,
  // subscriptions released, closed within 2 s.
  void fail(std::string last_words);
  // Leaves the relay: subscriptions released, replies still owed by them dropped.
  void detach();
  // Something was queued: inside a WriteBatch it is written when the batch closes,
  // otherwise the writer coroutine is woken.
  void wake_writer();
  bool accepting_messages() const noexcept { return !closing_ && !over_limit_posted_; }
  boost::asio::any_io_executor executor() { return socket_.get_executor(); }
  // The app's and the listener's address as Redis shows them ("127.0.0.1:50412"; a Unix
  // socket's path and ":0" for both ends); "" when the socket cannot tell.
  std::string peer_address() const;
  std::string local_address() const;

  Relay& relay_;
  std::string const peer_;
  std::string client_name_;
  bool closing_ = false;  // GOAWAY, protocol error or EOF: finishing
  bool closed_ = false;
  bool detached_ = false;

 private:
  boost::asio::awaitable<void> reader();
  boost::asio::awaitable<void> writer();
  void flush_batch() noexcept override;
  // Writes what the socket takes now without blocking; false on a write error.
  bool write_now();
  void written(std::size_t n);
  void post_below_mark();  // one on_queue_below_mark(), on the next turn
  void half_closed();
  void queued();  // the queue grew: wake the writer, check the limits
  void check_soft_limit();
  void slow_consumer(std::string reason);
  void close_after(std::chrono::steady_clock::duration grace);

  Socket socket_;
  std::uint64_t id_;
  ConnectionSlots::Slot slot_;
  OutboundQueue queue_;
  boost::asio::steady_timer wake_;
  boost::asio::steady_timer close_deadline_;
  boost::asio::steady_timer soft_timer_;
  bool wait_for_replies_ = false;
  bool over_limit_posted_ = false;
  bool last_words_ = false;   // the final frame is queued: nothing may follow it
  std::size_t low_mark_ = 0;  // notify_when_below()'s mark; 0: none
  bool writer_waiting_ = false;
  bool reader_done_ = false;
  bool writer_done_ = false;
  std::chrono::steady_clock::time_point over_soft_since_{};  // epoch: not over the soft limit
};

}  // namespace podrelay::server
