// podrelay: the daemon. Parses the configuration, opens the listeners, starts the relay
// and the admin server on one io_context and one thread, and drains on SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <vector>

#include "admin/admin_server.hpp"
#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "server/listener.hpp"
#include "server/relay.hpp"
#include "util/log.hpp"

namespace {

namespace asio = boost::asio;
using namespace podrelay;

std::string make_node_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "podrelay");
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", rd() & 0xffffffu);
  return std::string(host) + "-" + suffix;
}

using Listeners = std::vector<std::unique_ptr<server::Listener>>;

// Every --listen (framed protocol) and --resp-listen address, bound before anything starts.
Expected<Listeners> open_listeners(asio::any_io_executor ex, config::Config const& cfg,
                                   server::Relay& relay) {
  Listeners out;
  auto const add = [&](config::ListenAddress const& address, server::Listener::Protocol p,
                       std::string_view flag) -> Error {
    auto l = server::Listener::open(ex, address, relay, p);
    if (!l) return Error(errc::listen_failed, std::string(flag) + l.error().reason);
    out.push_back(std::move(*l));
    return {};
  };
  for (auto const& a : cfg.listen) {
    if (auto e = add(a, server::Listener::Protocol::framed, "")) return e;
  }
  for (auto const& a : cfg.resp_listen) {
    if (auto e = add(a, server::Listener::Protocol::resp, "--resp-listen: ")) return e;
  }
  return out;
}

// SIGTERM/SIGINT/SIGHUP: stop accepting, drain the relay, stop the loop; a second signal exits
// at once.
void on_signals(asio::io_context& ioc, asio::signal_set& signals, Listeners& listeners,
                server::Relay& relay, admin::AdminServer& admin) {
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    log::info("signal received; draining", {{"signal", sig}});
    signals.async_wait([](boost::system::error_code ec2, int sig2) {
      if (ec2) return;
      log::warn("second signal; exiting at once", {{"signal", sig2}});
      std::fflush(stderr);
      ::_exit(1);
    });
    for (auto& l : listeners) l->close();
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          co_await relay.drain();
          admin.stop();
          signals.cancel();
          // Everything is closed; give the last handlers a moment, then stop regardless.
          asio::steady_timer grace(ioc, std::chrono::milliseconds(200));
          co_await grace.async_wait(asio::use_awaitable);
          ioc.stop();
        },
        asio::detached);
  });
}

// Configuration that parsed but cannot be used (TLS files OpenSSL rejects): like every
// configuration error, one "podrelay: " line on stderr, exit status 2.
int fail_config(std::string_view why) {
  std::cerr << "podrelay: " << why << '\n';
  return 2;
}

// An address that parsed but cannot be listened on: a log line (in --log-format, so a
// JSON pipeline reads it), exit status 1.
int fail_listen(std::string_view why) {
  log::error("cannot start", {{"reason", why}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = config::parse_config(argc, argv);
  if (parsed.exit) {
    (parsed.exit_code == 0 ? std::cout : std::cerr)
        << parsed.output << (parsed.exit_code == 0 ? "" : "\n");
    return parsed.exit_code;
  }
  auto& cfg = parsed.config;
  if (cfg.node_id.empty()) cfg.node_id = make_node_id();
  log::configure(cfg.log_level, cfg.log_format);
  for (auto const& w : parsed.warnings) {
    std::vector<log::Field> fields;
    for (auto const& [key, value] : w.fields) fields.emplace_back(key, value);
    log::write(log::LogLevel::warn, w.message, fields);
  }
  ::signal(SIGPIPE, SIG_IGN);
  // Their default action ends the process at once, dropping owed answers: they mean
  // nothing to podrelay.
  ::signal(SIGUSR1, SIG_IGN);
  ::signal(SIGUSR2, SIG_IGN);

  asio::io_context ioc(1);
  metrics::Metrics metrics;
  std::unique_ptr<server::Relay> relay_owner;
  try {
    relay_owner = std::make_unique<server::Relay>(ioc.get_executor(), cfg, metrics);
  } catch (std::exception const& e) {  // TLS files that OpenSSL cannot use
    return fail_config(e.what());
  }
  auto& relay = *relay_owner;
  auto listeners = open_listeners(ioc.get_executor(), cfg, relay);
  if (!listeners) return fail_listen(listeners.error().reason);
  admin::AdminServer admin(ioc.get_executor(), {[&relay] {
                                                  relay.update_gauges();
                                                  return relay.metrics().serialize();
                                                },
                                                [&relay] { return relay.not_ready_reason(); }});
  if (auto error = admin.listen(cfg.admin_listen)) return fail_listen(error.reason);

  relay.start();
  for (auto& l : *listeners) l->start();
  admin.start();
  relay.set_listening(true);

  // The framed and the RESP addresses apart: they are different protocols.
  std::string framed_names;
  std::string resp_names;
  for (auto const& l : *listeners) {
    auto& names = l->protocol() == server::Listener::Protocol::resp ? resp_names : framed_names;
    names += (names.empty() ? "" : ",") + l->name();
  }
  auto const redis_name = config::redact(cfg.redis);
  std::vector<log::Field> fields{
      {"version", PODRELAY_VERSION}, {"node_id", cfg.node_id}, {"listen", framed_names}};
  if (!resp_names.empty()) fields.emplace_back("resp_listen", resp_names);
  fields.insert(
      fields.end(),
      {{"admin", admin.name()}, {"redis", redis_name}, {"channel_prefix", cfg.channel_prefix}});
  log::write(log::LogLevel::info, "podrelay started", fields);

  // SIGHUP (a closed terminal, or an operator's habit) drains like SIGTERM.
  asio::signal_set signals(ioc, SIGTERM, SIGINT, SIGHUP);
  on_signals(ioc, signals, *listeners, relay, admin);
  ioc.run();
  log::info("podrelay stopped");
  std::fflush(stderr);
  // Coroutine frames of closed connections may still sit in the io_context; skip their
  // teardown (the kernel reclaims everything) rather than destroy them out of order.
  ::_exit(0);
}
