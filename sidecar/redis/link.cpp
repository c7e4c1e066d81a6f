#include "redis/link.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "redis/master_locator.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::redis {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

}  // namespace

Link::Link(asio::any_io_executor ex, Role& role, Options options, log::RateLimit& limit)
    : role_(role), options_(options), limit_(limit), conn_(ex), wake_(ex), retry_(ex) {}

void Link::start() { asio::co_spawn(wake_.get_executor(), run(), asio::detached); }

void Link::reconnect() {
  conn_.close();
  wake_.cancel();
  retry_.cancel();  // a pending backoff must not delay the move to the new master
}

void Link::stop() {
  stopped_ = true;
  conn_.close();
  wake_.cancel();
  retry_.cancel();
}

asio::awaitable<Error> Link::connect_to_master(RedisConnection& conn, MasterLocator& locator,
                                               ConnectOptions const& options) {
  auto const master = co_await locator.locate();
  if (!master) co_return master.error();
  if (stopped_) co_return Error{};
  co_return co_await conn.open(*master, options);
}

asio::awaitable<void> Link::run() {
  while (!stopped_) {
    auto const failed = co_await role_.connect(conn_);
    if (stopped_) {
      conn_.close();
      break;
    }
    if (failed) {
      conn_.close();
      co_await back_off(failed.reason);
      continue;
    }
    backoff_.reset();
    unsent_ = false;  // the rest of a write on the old connection is not for this one
    connected_ = true;
    role_.on_up();
    if (options_.ping_interval.count() > 0) {
      co_await (reader() || writer() || health());
    } else {
      co_await (reader() || writer());
    }
    connected_ = false;
    conn_.close();
    auto const lost = role_.on_down();
    if (lost && !stopped_) co_await back_off(lost.reason);
  }
}

asio::awaitable<void> Link::back_off(std::string_view reason) {
  role_.log_retry(limit_, reason);
  retry_.expires_after(backoff_.next());
  co_await retry_.async_wait(use_tuple);
}

asio::awaitable<void> Link::reader() {
  if (auto* pushes = role_.push_reader()) {
    co_await conn_.read_pushes(
        options_.name, stopped_, *pushes,
        [this](PushReader::Status st, PushReader::Item& item) { return role_.on_item(st, item); },
        [this] { role_.on_parsed(); });
    co_return;
  }
  co_await conn_.read_replies(
      options_.name, stopped_, [this](redisReply const& reply) { return role_.on_reply(reply); },
      [this] { return role_.reply_limit(); });
}

asio::awaitable<void> Link::writer() {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  while (conn_.is_open()) {
    if (!unsent_) {
      auto const output = role_.output();
      if (output == Output::held) {
        pause.expires_after(std::chrono::milliseconds(2));
        co_await pause.async_wait(use_tuple);
        continue;
      }
      if (output == Output::none) {
        wake_.expires_at(Clock::time_point::max());
        writer_waiting_ = true;
        co_await wake_.async_wait(use_tuple);
        writer_waiting_ = false;
        continue;
      }
      role_.take_output(write_buf_);
    }
    unsent_ = false;
    if (auto const ec = co_await conn_.write(write_buf_)) {
      conn_.close();
      co_return;
    }
  }
}

void Link::flush_batch() noexcept {
  if (!writer_waiting_) return;  // woken meanwhile: the writer has it
  if (connected_ && conn_.can_write_now() && role_.output() == Output::ready) {
    role_.take_output(write_buf_);
    error_code ec;
    auto const n = conn_.write_now(write_buf_, ec);
    if (ec) {
      conn_.close();  // the reader fails next and the link reconnects, as after any write error
    } else if (n < write_buf_.size()) {
      write_buf_.erase(0, n);
      unsent_ = true;  // the writer sends the rest when the socket has room
    } else if (role_.output() == Output::none) {
      return;  // all of it is on the wire
    }
  }
  writer_waiting_ = false;
  wake_.cancel();
}

asio::awaitable<void> Link::health() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (conn_.is_open()) {
    timer.expires_after(options_.ping_interval);
    co_await timer.async_wait(use_tuple);
    if (!conn_.is_open()) co_return;
    switch (role_.on_health_tick()) {
      case Health::idle: break;
      case Health::wake_writer: wake_writer(); break;
      case Health::dead:
        conn_.close();
        wake_writer();
        co_return;
    }
  }
}

}  // namespace podrelay::redis
