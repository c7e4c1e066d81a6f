#include "server/connection.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <vector>

#include "server/relay.hpp"
#include "util/endpoint_text.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::server {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
// A busy connection's reads: 4 KiB, doubling while reads fill the buffer, up to 64 KiB,
// and back down when they come back less than a quarter full. A 4 KiB read is four 1 KiB
// frames per wake-up and syscall; a saturated app's socket holds far more.
constexpr std::size_t read_chunk_min = 4096;
constexpr std::size_t read_chunk_max = std::size_t{64} * 1024;
constexpr std::chrono::milliseconds linger{1000};
// Where closing connections drop what their clients still send. One for the process (one
// thread; the bytes are never read): a buffer in each reader's coroutine frame would cost
// every connection 4 KiB for its whole life.
std::array<char, 4096> discarded;

}  // namespace

Connection::Connection(Socket socket, Relay& relay, std::uint64_t id, std::string peer)
    : relay_(relay),
      peer_(std::move(peer)),
      socket_(std::move(socket)),
      id_(id),
      wake_(socket_.get_executor()),
      close_deadline_(socket_.get_executor()),
      soft_timer_(socket_.get_executor()) {}

Connection::~Connection() = default;

std::string Connection::local_address() const {
  boost::system::error_code ec;
  auto const endpoint = socket_.local_endpoint(ec);
  return ec ? std::string() : util::endpoint_text(endpoint);
}

std::string Connection::peer_address() const {
  boost::system::error_code ec;
  auto const endpoint = socket_.remote_endpoint(ec);
  auto text = ec ? std::string() : util::endpoint_text(endpoint);
  // A Unix client's end has no name: Redis shows the listening socket's path for both.
  return text.empty() ? local_address() : text;
}

void Connection::start() {
  auto self = shared_from_this();
  // Synchronous writes at a batch's end (write_now) must never block the event loop.
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  slot_ = relay_.attach(self);
  asio::co_spawn(socket_.get_executor(), reader(), [self](std::exception_ptr e) {
    if (e) {
      log::error("connection reader failed", {{"conn", self->id_}});
      self->close();
    }
  });
  asio::co_spawn(socket_.get_executor(), writer(), [self](std::exception_ptr e) {
    if (e) {
      log::error("connection writer failed", {{"conn", self->id_}});
      self->close();
    }
  });
  on_started();
}

asio::awaitable<void> Connection::reader() {
  // Last read was shorter than its buffer: the socket had nothing more.
  bool drained = true;
  std::size_t chunk = read_chunk_min;
  while (!closing_) {
    std::size_t want = chunk;
    if (read_buffered() == 0 && drained) {
      // Idle: wait with a read into a small buffer the protocol keeps (idle_read_bytes), not
      // with async_wait: Asio re-arms the descriptor (epoll_ctl) for every async_wait, while
      // a read is first tried speculatively (after a short read that try returns EAGAIN)
      // and then waits for the next edge of the descriptor's standing registration. A
      // message arriving on an idle connection costs one recvmsg, plus that failed try.
      read_idle(idle_read_bytes);
      want = idle_read_bytes;
    }
    auto const space = read_space(want);
    auto [ec, n] =
        co_await socket_.async_read_some(asio::buffer(space.data(), space.size()), use_tuple);
    if (ec || closing_) break;  // closing meanwhile: what was read is dropped, never answered
    drained = n < space.size();
    if (want == chunk) {  // not an idle read
      if (!drained) {
        chunk = std::min(chunk * 2, read_chunk_max);
      } else if (n < chunk / 4) {
        chunk = std::max(chunk / 2, read_chunk_min);
      }
    }
    // What the requests of this read queue (replies, PUBLISHes to Redis) is written once
    // at its end.
    util::WriteBatch batch;
    if (!on_read(n)) break;
  }
  if (!closing_) {
    reader_done_ = true;
    half_closed();  // the app sent EOF (or the connection broke)
    co_return;
  }
  // Closing: whatever the client still sends is read and dropped, never answered. Closing
  // with unread bytes would make the kernel reset the connection and destroy replies the
  // client has not read yet, so the connection closes at the client's EOF (or the deadline).
  read_done();
  while (!closed_) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(discarded), use_tuple);
    if (ec) break;
  }
  reader_done_ = true;
  if (writer_done_) close();
}

void Connection::half_closed() {
  // A half-closed client still reads: it gets the answer to every request read before the
  // EOF (for at most 5 s: a client that is gone entirely must not hold its slot long), and
  // no more messages; then the connection closes.
  closing_ = true;
  wait_for_replies_ = true;
  on_half_closed();
  close_after(std::chrono::seconds(5));
  wake_writer();
}

void Connection::fail(std::string last_words) {
  if (closing_) return;
  append_reply([&](std::string& out) { out += last_words; });
  last_words_ = true;
  closing_ = true;
  detach();
  close_after(std::chrono::seconds(2));
  wake_writer();
}

void Connection::detach() {
  detached_ = true;
  relay_.detach(*this);
}

void Connection::append_shared(core::SharedFrame const& frame) {
  if (closed_ || last_words_) return;
  // An idle writer sends the frame at the end of this I/O completion (if the socket is full
  // then, flush_batch() unpins it); a busy one copies what would pin a block while it waits.
  queue_.append_shared(frame, !writer_waiting_);
  queued();
}

void Connection::queued() {
  wake_writer();
  if (over_limit_posted_ || closing_) return;
  auto const& cfg = relay_.config();
  if (queue_.bytes() > cfg.max_queue_bytes) {
    slow_consumer("outbound queue exceeded max_queue_bytes (" +
                  std::to_string(cfg.max_queue_bytes) + "); read faster or subscribe to less");
    return;
  }
  if (queue_.bytes() > cfg.soft_queue_bytes && over_soft_since_ == Clock::time_point{}) {
    // Over the soft limit: tolerated for a window, as Redis' client-output-buffer-limit
    // does; a timer enforces it even if nothing more is queued.
    over_soft_since_ = Clock::now();
    check_soft_limit();
  }
}

void Connection::check_soft_limit() {
  if (over_limit_posted_ || closing_ || over_soft_since_ == Clock::time_point{}) return;
  auto const& cfg = relay_.config();
  auto const over_for = Clock::now() - over_soft_since_;
  if (over_for >= cfg.soft_queue_window) {
    slow_consumer("outbound queue stayed above soft_queue_bytes (" +
                  std::to_string(cfg.soft_queue_bytes) + ") for longer than " +
                  std::to_string(cfg.soft_queue_window.count()) + " ms; read faster");
    return;
  }
  soft_timer_.expires_after(cfg.soft_queue_window - over_for);
  soft_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->check_soft_limit();
  });
}

void Connection::slow_consumer(std::string reason) {
  // Usually called from inside a fan-out: the hub is iterating, so the disconnect waits for
  // the next turn of the event loop. Until then nothing more is queued here.
  over_limit_posted_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this(), reason = std::move(reason)] {
    self->relay_.metrics().slow_consumer_disconnects.Increment();
    static log::RateLimit limit;
    log::warn_limited(limit, "disconnecting slow consumer",
                      {{"conn", self->id_},
                       {"client", self->client_name_},
                       {"queued_bytes", self->queue_.bytes()},
                       {"reason", reason}});
    self->goaway(proto::ErrorCode::slow_consumer, reason);
  });
}

void Connection::wake_writer() {
  // Cancelling a timer costs a trip through the timer queue; a fan-out to thousands of
  // connections must only pay it for writers that are actually asleep.
  if (!writer_waiting_) return;
  if (!closing_ && defer_to_batch()) return;
  writer_waiting_ = false;
  wake_.cancel();
}

void Connection::flush_batch() noexcept {
  if (!writer_waiting_ || closed_) return;  // woken meanwhile: the writer has it
  // Closing (GOAWAY, EOF, a protocol error) is the writer's: it knows when to stop.
  if (!closing_ && !write_now()) {
    close();
    return;
  }
  if (!queue_.empty() || closing_) {
    queue_.unpin();
    writer_waiting_ = false;
    wake_.cancel();  // the socket took only part: the writer waits for room
  }
}

void Connection::written(std::size_t n) {
  queue_.written(n);
  if (queue_.bytes() <= relay_.config().soft_queue_bytes) over_soft_since_ = {};
  if (low_mark_ != 0 && queue_.bytes() <= low_mark_) post_below_mark();
}

void Connection::notify_when_below(std::size_t bytes) {
  if (queue_.bytes() <= bytes) return post_below_mark();
  low_mark_ = std::max<std::size_t>(bytes, 1);
}

void Connection::post_below_mark() {
  low_mark_ = 0;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (!self->closed_) self->on_queue_below_mark();
  });
}

bool Connection::write_now() {
  thread_local std::vector<asio::const_buffer> bufs;
  while (!queue_.empty()) {
    auto const bytes = queue_.gather(bufs);
    boost::system::error_code ec;
    auto const n = socket_.write_some(bufs, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return true;
    if (ec) return false;
    written(n);
    if (n < bytes) return true;  // the socket buffer is full: the writer waits for room
  }
  return true;
}

void Connection::close_after(std::chrono::steady_clock::duration grace) {
  close_deadline_.expires_after(grace);
  close_deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->close();
  });
}

void Connection::goaway(proto::ErrorCode code, std::string_view text, bool wait_for_replies) {
  if (closing_) return;
  closing_ = true;
  wait_for_replies_ = wait_for_replies;
  detach();
  if (!wait_for_replies) {
    // Whatever is not on the wire yet will not be read in time anyway (a chunk already
    // written in part stays: the app must get whole frames before the GOAWAY).
    queue_.drop_unsent();
  }
  queue_.append_owned([&](std::string& out) { append_goaway(out, code, text); });
  // Cut off (not a drain): no reply or message may follow the GOAWAY.
  last_words_ = !wait_for_replies;
  close_after(wait_for_replies ? relay_.config().drain_timeout + std::chrono::seconds(1)
                               : std::chrono::milliseconds(2000));
  wake_writer();
}

asio::awaitable<void> Connection::writer() {
  std::vector<asio::const_buffer> bufs;
  bufs.reserve(OutboundQueue::max_gather);
  while (!closed_) {
    if (queue_.empty()) {
      if (closing_ && (!wait_for_replies_ || !owes_replies())) break;
      wake_.expires_at(Clock::time_point::max());
      writer_waiting_ = true;
      co_await wake_.async_wait(use_tuple);
      writer_waiting_ = false;
      continue;
    }
    queue_.begin_write();
    auto const bytes = queue_.gather(bufs);
    auto [ec, n] = co_await asio::async_write(socket_, bufs, use_tuple);
    (void)n;
    queue_.end_write();
    written(bytes);
    if (ec) {
      close();
      co_return;
    }
  }
  if (closed_) co_return;
  writer_done_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_send, ignored);
  if (reader_done_ || !wait_for_replies_) {
    // After a protocol error or a slow-consumer GOAWAY the last words are out; nothing the
    // client still sends matters (as before: a reset is possible).
    close();
    co_return;
  }
  // Replies owed were just written (drain, half-close): the reader closes at the client's
  // EOF, so unread bytes never make the kernel reset the connection over them; a client
  // that keeps the connection open gets a short linger.
  close_after(linger);
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  closing_ = true;
  detach();
  slot_.reset();
  boost::system::error_code ignored;
  socket_.close(ignored);
  wake_.cancel();
  close_deadline_.cancel();
  soft_timer_.cancel();
}

}  // namespace podrelay::server
