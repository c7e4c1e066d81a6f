#include "redis/master_locator.hpp"
#include "util/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <stdexcept>

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
    : ex_(ex), cfg_(cfg), watch_link_(ex, *this, {"sentinel", {}}, watch_limit_) {
  master_options_.url = &cfg.redis;
  if (cfg.redis.tls) {
    // A constructor cannot return the error: main reports it (TLS files OpenSSL rejects).
    auto tls = make_tls_context(cfg.tls);
    if (!tls) throw std::runtime_error(tls.error().reason);
    master_options_.tls = std::move(*tls);
  }
  master_options_.tls_server_name = cfg.tls.server_name;
  master_options_.timeout = cfg.redis_connect_timeout;
  master_options_.user_timeout = cfg.redis_ping_timeout;
  master_options_.require_master = sentinel_mode();
  sentinel_options_ = master_options_;
  // Sentinels have a password of their own, if any (never the data password).
  sentinel_options_.authenticate = !cfg.sentinel_password.empty();
  sentinel_options_.username = &cfg.sentinel_username;
  sentinel_options_.password = &cfg.sentinel_password;
  sentinel_options_.select_db = false;
  sentinel_options_.require_master = false;
  sentinel_options_.client_name = "podrelay-sentinel-" + cfg.node_id;
}

MasterLocator::MasterLocator(asio::any_io_executor ex, config::Config const& cfg, Endpoint fixed)
    : MasterLocator(ex, cfg) {
  fixed_ = std::move(fixed);
}

asio::awaitable<Expected<Endpoint>> MasterLocator::locate() {
  if (fixed_) co_return *fixed_;
  if (!sentinel_mode()) co_return cfg_.redis.endpoints.front();
  auto const& sentinels = cfg_.redis.endpoints;
  RedisConnection conn(ex_);
  std::string last;
  for (std::size_t i = 0; i < sentinels.size(); ++i) {
    auto const index = (preferred_ + i) % sentinels.size();
    auto found = co_await ask(conn, sentinels[index]);
    conn.close();
    if (found) {
      preferred_ = index;
      if (!current_ || !(*current_ == *found)) master_changed(*found, "sentinel query");
      co_return found;
    }
    last = found.error().reason;
  }
  auto hint = std::string();
  if (last.find("NOAUTH") != std::string::npos && cfg_.sentinel_password.empty()) {
    hint = "; the sentinels want a password: --sentinel-password-file";
  }
  co_return Error(
      errc::sentinel_unknown_master,
      "no sentinel named master '" + cfg_.redis.master_name + "' (last: " + last + hint + ")");
}

asio::awaitable<Expected<Endpoint>> MasterLocator::ask(RedisConnection& conn,
                                                       Endpoint const& sentinel) {
  if (auto e = co_await conn.open(sentinel, sentinel_options_)) co_return e;
  std::string cmd;
  append_command(cmd, {"SENTINEL", "get-master-addr-by-name", cfg_.redis.master_name});
  auto answer = co_await conn.request(cmd);
  if (!answer) co_return answer.error();
  auto const& reply = **answer;
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 2 ||
      reply.element[0]->type != REDIS_REPLY_STRING ||
      reply.element[1]->type != REDIS_REPLY_STRING) {
    co_return Error(errc::sentinel_unknown_master, "sentinel " + sentinel.to_string() +
                                                       " does not know master '" +
                                                       cfg_.redis.master_name + "'");
  }
  Endpoint ep;
  auto const port_text = reply_string(*reply.element[1]);
  unsigned port = 0;
  auto const [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || port == 0 || port > 65535) {
    co_return Error(errc::bad_reply,
                    "sentinel " + sentinel.to_string() + " answered an invalid port");
  }
  ep.host = std::string(reply_string(*reply.element[0]));
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
  watch_link_.start();
}

void MasterLocator::stop() { watch_link_.stop(); }

asio::awaitable<Error> MasterLocator::connect(RedisConnection& conn) {
  auto const& sentinels = cfg_.redis.endpoints;
  watched_ = &sentinels[watch_index_ % sentinels.size()];
  ++watch_index_;
  // Ask first: a failover that happened while we were not watching is caught here.
  auto found = co_await ask(conn, *watched_);
  if (!found) co_return found.error();
  if (watch_link_.stopped()) co_return Error{};
  master_changed(*found, "sentinel query");
  std::string sub;
  append_command(sub, {"SUBSCRIBE", "+switch-master"});
  if (auto const ec = co_await conn.write(sub)) co_return Error(errc::io_failed, "");
  co_return Error{};
}

bool MasterLocator::on_reply(redisReply const& reply) {
  auto const ev = classify_pubsub(reply);
  if (ev.kind == PubSubEvent::Kind::message && ev.name == "+switch-master") {
    if (auto ep = parse_switch(ev.payload, cfg_.redis.master_name)) {
      master_changed(*ep, "+switch-master");
    }
  }
  return true;
}

Error MasterLocator::on_down() {
  return {errc::connection_lost, "connection to sentinel " + watched_->to_string() + " lost"};
}

void MasterLocator::log_retry(log::RateLimit& limit, std::string_view reason) {
  log::warn_limited(limit, "sentinel watch interrupted; retrying", {{"reason", reason}});
}

}  // namespace podrelay::redis
