#include "redis/subscriber.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>

#include "redis/cluster_slots.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::redis {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
// Keeps one command's size reasonable when thousands of names are re-subscribed at once.
constexpr std::size_t names_per_command = 512;

}  // namespace

Subscriber::Subscriber(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
                       Events& events, std::size_t link)
    : cfg_(cfg),
      locator_(locator),
      events_(events),
      link_(link),
      conn_(ex),
      wake_(ex),
      retry_(ex) {}

void Subscriber::reconnect() {
  conn_.close();
  wake_.cancel();
  retry_.cancel();  // a pending backoff must not delay the move to the new master
}

void Subscriber::start() { asio::co_spawn(wake_.get_executor(), run(), asio::detached); }

void Subscriber::stop() {
  stopped_ = true;
  conn_.close();
  wake_.cancel();
  retry_.cancel();
}

void Subscriber::send(core::SubKind kind, bool subscribe, std::vector<std::string> const& names) {
  if (!connected_ || names.empty()) return;
  if (sharded_ && kind == core::SubKind::channel) {
    // Redis refuses an SSUBSCRIBE whose channels span slots (CROSSSLOT): group by slot.
    std::map<std::uint16_t, std::vector<std::string_view>> by_slot;
    for (auto const& n : names) by_slot[key_slot(n)].push_back(n);
    std::vector<std::string_view> args;
    for (auto const& [slot, group] : by_slot) {
      args.assign({subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE"});
      args.insert(args.end(), group.begin(), group.end());
      queue_command(kind, subscribe, args);
    }
    wake_writer();
    return;
  }
  std::string_view const verb = kind == core::SubKind::channel
                                    ? (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE")
                                    : (subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE");
  std::vector<std::string_view> args;
  for (std::size_t i = 0; i < names.size(); i += names_per_command) {
    args.clear();
    args.push_back(verb);
    for (std::size_t j = i; j < names.size() && j < i + names_per_command; ++j) {
      args.push_back(names[j]);
    }
    queue_command(kind, subscribe, args);
  }
  wake_writer();
}

void Subscriber::queue_command(core::SubKind kind, bool subscribe,
                               std::span<std::string_view const> args) {
  append_command(out_, args);
  InFlight cmd{false, kind, subscribe, {}, 0};
  cmd.names.assign(args.begin() + 1, args.end());
  in_flight_.push_back(std::move(cmd));
}

void Subscriber::on_reply(PubSubEvent const& ev) {
  using Kind = PubSubEvent::Kind;
  switch (ev.kind) {
    case Kind::message:
    case Kind::pmessage: events_.on_message(link_, ev); return;
    case Kind::pong:
      if (!pings_in_flight_.empty()) pings_in_flight_.pop_front();
      if (!in_flight_.empty() && in_flight_.front().ping) in_flight_.pop_front();
      return;
    case Kind::subscribed:
    case Kind::unsubscribed:
    case Kind::psubscribed:
    case Kind::punsubscribed: {
      auto const kind = (ev.kind == Kind::subscribed || ev.kind == Kind::unsubscribed)
                            ? core::SubKind::channel
                            : core::SubKind::pattern;
      bool const subscribed = ev.kind == Kind::subscribed || ev.kind == Kind::psubscribed;
      if (!in_flight_.empty()) {
        auto& head = in_flight_.front();
        if (!head.ping && head.kind == kind && head.subscribe == subscribed &&
            head.confirmed < head.names.size() && head.names[head.confirmed] == ev.name &&
            ++head.confirmed == head.names.size()) {
          in_flight_.pop_front();
        }
      }
      events_.on_confirmed(link_, kind, ev.name, subscribed);
      return;
    }
    case Kind::error: {
      if (in_flight_.empty()) break;
      auto head = std::move(in_flight_.front());
      in_flight_.pop_front();
      if (head.ping) {
        if (!pings_in_flight_.empty()) pings_in_flight_.pop_front();
        break;
      }
      events_.on_refused(link_, head.kind, head.subscribe, head.names, ev.payload);
      return;
    }
    case Kind::unexpected: return;
  }
  static log::RateLimit limit;
  log::error_limited(limit, "redis answered the subscriber connection with an unexpected error",
                     {{"error", ev.payload}});
}

asio::awaitable<void> Subscriber::run() {
  static log::RateLimit limit(std::chrono::seconds(5));
  ConnectOptions opts = locator_.master_options();
  opts.client_name = "podrelay-sub-" + cfg_.node_id;
  opts.select_db = false;
  while (!stopped_) {
    if (!co_await connect_with_retry(conn_, locator_, opts, backoff_, retry_, "subscriber",
                                     stopped_, limit)) {
      break;
    }
    out_.clear();
    pings_in_flight_.clear();
    in_flight_.clear();
    connected_ = true;
    events_.on_subscriber_state(link_, true);
    co_await (reader() || writer() || health());
    connected_ = false;
    conn_.close();
    out_.clear();
    in_flight_.clear();
    events_.on_subscriber_state(link_, false);
  }
}

asio::awaitable<void> Subscriber::reader() {
  co_await conn_.read_replies("subscriber", stopped_, [this](redisReply const& reply) {
    on_reply(classify_pubsub(reply));
    return true;
  });
}

asio::awaitable<void> Subscriber::writer() {
  while (conn_.is_open()) {
    if (out_.empty()) {
      wake_.expires_at(Clock::time_point::max());
      writer_waiting_ = true;
      co_await wake_.async_wait(use_tuple);
      writer_waiting_ = false;
      continue;
    }
    write_buf_.clear();
    write_buf_.swap(out_);
    if (auto const ec = co_await conn_.write(write_buf_)) {
      conn_.close();
      co_return;
    }
  }
}

asio::awaitable<void> Subscriber::health() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::string ping;
  append_command(ping, {"PING"});
  while (conn_.is_open()) {
    timer.expires_after(cfg_.redis_ping_interval);
    co_await timer.async_wait(use_tuple);
    if (!conn_.is_open()) co_return;
    auto const now = Clock::now();
    if (!pings_in_flight_.empty() && now - pings_in_flight_.front() > cfg_.redis_ping_timeout) {
      log::warn("redis stopped answering PING; dropping the connection", {{"role", "subscriber"}});
      conn_.close();
      wake_.cancel();
      co_return;
    }
    out_ += ping;
    pings_in_flight_.push_back(now);
    in_flight_.push_back(InFlight{true, core::SubKind::channel, true, {}, 0});
    wake_writer();
  }
}

}  // namespace podrelay::redis
