#include "redis/master_locator.hpp"
#include "util/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>

namespace podrelay::redis {
namespace {

// "+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>"
std::optional<Endpoint> parse_switch(std::string_view payload, std::string_view master) {
  std::string_view parts[5];
  for (auto& p : parts) {
    auto const sp = payload.find(' ');
    p = payload.substr(0, sp);
    payload = sp == std::string_view::npos ? std::string_view{} : payload.substr(sp + 1);
  }
  if (parts[0] != master) return std::nullopt;
  unsigned port = 0;
  auto const [ptr, ec] = std::from_chars(parts[4].data(), parts[4].data() + parts[4].size(), port);
  if (ec != std::errc{} || port == 0 || port > 65535) return std::nullopt;
  return Endpoint{std::string(parts[3]), static_cast<std::uint16_t>(port)};
}

}  // namespace

MasterLocator::MasterLocator(asio::any_io_executor ex, config::Config const& cfg)
    : ex_(ex), cfg_(cfg), watch_conn_(ex), watch_retry_(ex) {
  master_options_.url = &cfg.redis;
  if (cfg.redis.tls) master_options_.tls = make_tls_context(cfg.tls);
  master_options_.tls_server_name = cfg.tls.server_name;
  master_options_.timeout = cfg.redis_connect_timeout;
  master_options_.user_timeout = cfg.redis_ping_timeout;
  master_options_.require_master = sentinel_mode();
  sentinel_options_ = master_options_;
  sentinel_options_.authenticate = false;  // sentinels run without the data password
  sentinel_options_.select_db = false;
  sentinel_options_.require_master = false;
  sentinel_options_.client_name = "podrelay-sentinel-" + cfg.node_id;
}

MasterLocator::MasterLocator(asio::any_io_executor ex, config::Config const& cfg, Endpoint fixed)
    : MasterLocator(ex, cfg) {
  fixed_ = std::move(fixed);
}

asio::awaitable<std::optional<Endpoint>> MasterLocator::locate(std::string& why) {
  if (fixed_) co_return *fixed_;
  if (!sentinel_mode()) co_return cfg_.redis.endpoints.front();
  auto const& sentinels = cfg_.redis.endpoints;
  RedisConnection conn(ex_);
  std::string last;
  for (std::size_t i = 0; i < sentinels.size(); ++i) {
    auto const index = (preferred_ + i) % sentinels.size();
    auto found = co_await ask(conn, sentinels[index], last);
    conn.close();
    if (found) {
      preferred_ = index;
      if (!current_ || !(*current_ == *found)) master_changed(*found, "sentinel query");
      co_return found;
    }
  }
  why = "no sentinel named master '" + cfg_.redis.master_name + "' (last: " + last + ")";
  co_return std::nullopt;
}

asio::awaitable<std::optional<Endpoint>> MasterLocator::ask(RedisConnection& conn,
                                                            Endpoint const& sentinel,
                                                            std::string& why) {
  if (co_await conn.open(sentinel, sentinel_options_, why)) co_return std::nullopt;
  std::string cmd;
  append_command(cmd, {"SENTINEL", "get-master-addr-by-name", cfg_.redis.master_name});
  ReplyPtr reply;
  if (co_await conn.request(cmd, reply, why)) co_return std::nullopt;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    why = "sentinel " + sentinel.to_string() + " does not know master '" + cfg_.redis.master_name +
          "'";
    co_return std::nullopt;
  }
  Endpoint ep;
  auto const port_text = reply_string(*reply->element[1]);
  unsigned port = 0;
  auto const [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || port == 0 || port > 65535) {
    why = "sentinel " + sentinel.to_string() + " answered an invalid port";
    co_return std::nullopt;
  }
  ep.host = std::string(reply_string(*reply->element[0]));
  ep.port = static_cast<std::uint16_t>(port);
  co_return ep;
}

void MasterLocator::master_changed(Endpoint const& now, std::string_view how) {
  bool const moved = current_.has_value();
  if (moved && *current_ == now) return;
  log::info(moved ? "redis master moved" : "redis master located",
            {{"master", now.to_string()}, {"via", how}});
  current_ = now;
  if (moved && on_switch_) on_switch_();
}

void MasterLocator::start_watch(std::function<void()> on_switch) {
  if (!sentinel_mode()) return;
  on_switch_ = std::move(on_switch);
  asio::co_spawn(ex_, watch(), asio::detached);
}

void MasterLocator::stop() {
  stopped_ = true;
  watch_conn_.close();
  watch_retry_.cancel();
}

asio::awaitable<void> MasterLocator::watch() {
  auto const& sentinels = cfg_.redis.endpoints;
  std::size_t index = 0;
  Backoff backoff;
  log::RateLimit limit(std::chrono::seconds(5));
  while (!stopped_) {
    std::string why;
    auto const& sentinel = sentinels[index % sentinels.size()];
    ++index;
    // Ask first: a failover that happened while we were not watching is caught here.
    auto found = co_await ask(watch_conn_, sentinel, why);
    std::string sub;
    append_command(sub, {"SUBSCRIBE", "+switch-master"});
    if (found && !stopped_) {
      master_changed(*found, "sentinel query");
      if (!(co_await watch_conn_.write(sub))) {
        backoff.reset();
        co_await watch_conn_.read_replies("sentinel", stopped_, [this](redisReply const& r) {
          auto const ev = classify_pubsub(r);
          if (ev.kind == PubSubEvent::Kind::message && ev.name == "+switch-master") {
            if (auto ep = parse_switch(ev.payload, cfg_.redis.master_name)) {
              master_changed(*ep, "+switch-master");
            }
          }
          return true;
        });
        why = "connection to sentinel " + sentinel.to_string() + " lost";
      }
    }
    watch_conn_.close();
    if (stopped_) break;
    log::warn_limited(limit, "sentinel watch interrupted; retrying", {{"reason", why}});
    watch_retry_.expires_after(backoff.next());
    co_await watch_retry_.async_wait(use_tuple);
  }
}

asio::awaitable<bool> connect_with_retry(RedisConnection& conn, MasterLocator& locator,
                                         ConnectOptions const& options, Backoff& backoff,
                                         asio::steady_timer& retry, std::string_view role,
                                         bool const& stopped, log::RateLimit& limit) {
  while (!stopped) {
    std::string why;
    auto const master = co_await locator.locate(why);
    if (master && !stopped) {
      auto const ec = co_await conn.open(*master, options, why);
      if (!ec) {
        backoff.reset();
        co_return !stopped;
      }
    }
    if (stopped) break;
    log::warn_limited(limit, "redis unreachable, retrying", {{"role", role}, {"reason", why}});
    retry.expires_after(backoff.next());
    co_await retry.async_wait(use_tuple);
  }
  co_return false;
}

}  // namespace podrelay::redis
