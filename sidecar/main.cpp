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

}  // namespace

int main(int argc, char** argv) {
  auto parsed = config::parse_config(argc, argv);
  if (parsed.exit) {
    if (parsed.exit_code == 0) {
      std::cout << parsed.output;
    } else {
      std::cerr << parsed.output << '\n';
    }
    return parsed.exit_code;
  }
  auto& cfg = parsed.config;
  if (cfg.node_id.empty()) cfg.node_id = make_node_id();
  log::configure(cfg.log_level, cfg.log_format);
  ::signal(SIGPIPE, SIG_IGN);

  asio::io_context ioc(1);
  metrics::Metrics metrics;
  std::unique_ptr<server::Relay> relay_owner;
  try {
    relay_owner = std::make_unique<server::Relay>(ioc.get_executor(), cfg, metrics);
  } catch (std::exception const& e) {  // TLS files that OpenSSL cannot use
    std::cerr << "podrelay: " << e.what() << '\n';
    return 2;
  }
  auto& relay = *relay_owner;

  std::vector<std::unique_ptr<server::Listener>> listeners;
  for (auto const& address : cfg.listen) {
    std::string error;
    auto l = server::Listener::open(ioc.get_executor(), address, relay, error);
    if (!l) {
      std::cerr << "podrelay: " << error << '\n';
      return 1;
    }
    listeners.push_back(std::move(l));
  }
  for (auto const& address : cfg.resp_listen) {
    std::string error;
    auto l = server::Listener::open(ioc.get_executor(), address, relay, error,
                                    server::Listener::Protocol::resp);
    if (!l) {
      std::cerr << "podrelay: --resp-listen: " << error << '\n';
      return 1;
    }
    listeners.push_back(std::move(l));
  }
  admin::AdminServer admin(ioc.get_executor(), relay);
  if (std::string error; !admin.listen(cfg.admin_listen, error)) {
    std::cerr << "podrelay: " << error << '\n';
    return 1;
  }

  relay.start();
  for (auto& l : listeners) l->start();
  admin.start();
  relay.set_listening(true);

  std::string listen_names;
  for (auto const& l : listeners) listen_names += (listen_names.empty() ? "" : ",") + l->name();
  log::info("podrelay started", {{"version", PODRELAY_VERSION},
                                 {"node_id", cfg.node_id},
                                 {"listen", listen_names},
                                 {"admin", cfg.admin_listen.to_string()},
                                 {"redis", redis::redact(cfg.redis)},
                                 {"channel_prefix", cfg.channel_prefix}});

  asio::signal_set signals(ioc, SIGTERM, SIGINT);
  bool stopping = false;
  std::function<void(boost::system::error_code, int)> on_signal;
  on_signal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (stopping) {
      log::warn("second signal; exiting at once", {{"signal", std::to_string(sig)}});
      std::fflush(stderr);
      ::_exit(1);
    }
    stopping = true;
    signals.async_wait(on_signal);
    log::info("signal received; draining", {{"signal", std::to_string(sig)}});
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
  };
  signals.async_wait(on_signal);

  ioc.run();
  log::info("podrelay stopped");
  std::fflush(stderr);
  // Coroutine frames of closed connections may still sit in the io_context; skip their
  // teardown (the kernel reclaims everything) rather than destroy them out of order.
  ::_exit(0);
}
