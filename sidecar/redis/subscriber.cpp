#include "redis/subscriber.hpp"

#include <map>
#include <utility>

#include "redis/cluster_slots.hpp"
#include "util/log.hpp"

namespace podrelay::redis {
namespace {

using Clock = std::chrono::steady_clock;
// Keeps one command's size reasonable when thousands of names are re-subscribed at once.
constexpr std::size_t names_per_command = 512;

log::RateLimit& retry_limit() {
  static log::RateLimit limit(std::chrono::seconds(5));  // one for every subscriber link
  return limit;
}

}  // namespace

Subscriber::Subscriber(asio::any_io_executor ex, config::Config const& cfg, MasterLocator& locator,
                       Events& events, std::size_t link)
    : cfg_(cfg),
      locator_(locator),
      events_(events),
      id_(link),
      quiet_timer_(ex),
      link_(ex, *this, {"subscriber", cfg.redis_ping_interval}, retry_limit()) {
  append_command(ping_, {"PING"});
}

void Subscriber::reconnect() { link_.reconnect(); }

void Subscriber::start() {
  options_ = locator_.master_options();
  options_.client_name = "podrelay-sub-" + cfg_.node_id;
  options_.select_db = false;
  link_.start();
}

void Subscriber::stop() {
  link_.stop();
  quiet_timer_.cancel();
}

void Subscriber::leave_unread(std::size_t bytes) {
  quiet_ = bytes;
  if (quiet_ > 0) {
    quiet_timer_.start(cfg_.lazy_read_window, [this] { events_.on_quiet_spell_over(id_); });
  }
  if (!parsing_) apply_low_water();
}

void Subscriber::apply_low_water() {
  std::size_t mark = 1;
  if (quiet_ > 0 && in_flight_.empty() && pushes_) {
    // Bytes already read but not parsed may be the start of a quiet echo: the mark never
    // counts them twice (so it can only come out low, which wakes early, never late).
    auto const buffered = pushes_->buffered();
    if (quiet_ > buffered) mark = quiet_ - buffered + 1;
  }
  link_.set_read_low_water(mark);
}

void Subscriber::send(core::SubKind kind, bool subscribe, std::vector<std::string> const& names) {
  if (!link_.connected() || names.empty()) return;
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
    apply_low_water();
    link_.wake_writer();
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
  apply_low_water();  // its confirmation must not wait behind quiet echoes
  link_.wake_writer();
}

void Subscriber::queue_command(core::SubKind kind, bool subscribe,
                               std::span<std::string_view const> args) {
  append_command(out_, args);
  InFlight cmd{false, kind, subscribe, {}, 0};
  cmd.names.assign(args.begin() + 1, args.end());
  in_flight_.push_back(std::move(cmd));
}

void Subscriber::on_event(PubSubEvent const& ev) {
  using Kind = PubSubEvent::Kind;
  switch (ev.kind) {
    case Kind::message:
    case Kind::pmessage: events_.on_message(id_, ev); return;
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
      events_.on_confirmed(id_, kind, ev.name, subscribed);
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
      events_.on_refused(id_, head.kind, head.subscribe, head.names, ev.payload);
      return;
    }
    case Kind::unexpected: return;
  }
  static log::RateLimit limit;
  log::error_limited(limit, "redis answered the subscriber connection with an unexpected error",
                     {{"error", ev.payload}});
}

asio::awaitable<Error> Subscriber::connect(RedisConnection& conn) {
  co_return co_await link_.connect_to_master(conn, locator_, options_);
}

void Subscriber::on_up() {
  pushes_.emplace(max_reply_bytes(cfg_));
  parsing_ = false;
  out_.clear();
  pings_in_flight_.clear();
  in_flight_.clear();
  events_.on_subscriber_state(id_, true);
}

Error Subscriber::on_down() {
  out_.clear();
  in_flight_.clear();
  events_.on_subscriber_state(id_, false);
  return {};
}

void Subscriber::log_retry(log::RateLimit& limit, std::string_view reason) {
  log::warn_limited(limit, "redis unreachable, retrying",
                    {{"role", "subscriber"}, {"reason", reason}});
}

bool Subscriber::on_reply(redisReply const& reply) {
  on_event(classify_pubsub(reply));
  return true;
}

bool Subscriber::on_item(PushReader::Status status, PushReader::Item& item) {
  heard_ = true;
  parsing_ = true;
  switch (status) {
    case PushReader::Status::push: events_.on_message(id_, item.event); return true;
    case PushReader::Status::oversized:
      events_.on_message_dropped(id_, item.event, item.payload_bytes);
      return true;
    case PushReader::Status::reply: return on_reply(*item.reply);
    case PushReader::Status::need_more:
    case PushReader::Status::error: break;
  }
  return false;
}

void Subscriber::on_parsed() {
  parsing_ = false;
  apply_low_water();
}

Link::Output Subscriber::output() {
  return out_.empty() ? Link::Output::none : Link::Output::ready;
}

void Subscriber::take_output(std::string& buf) {
  buf.clear();
  buf.swap(out_);
}

Link::Health Subscriber::on_health_tick() {
  auto const now = Clock::now();
  // A PONG queues behind every message Redis already owes this link: while messages keep
  // arriving Redis is alive, only the backlog is long (it dropped the link under load).
  bool const heard = std::exchange(heard_, false);
  if (!heard && !pings_in_flight_.empty() &&
      now - pings_in_flight_.front() > cfg_.redis_ping_timeout) {
    log::warn("redis stopped answering PING; dropping the connection", {{"role", "subscriber"}});
    return Link::Health::dead;
  }
  out_ += ping_;
  pings_in_flight_.push_back(now);
  in_flight_.push_back(InFlight{true, core::SubKind::channel, true, {}, 0});
  apply_low_water();
  return Link::Health::wake_writer;
}

}  // namespace podrelay::redis
