// The admin HTTP server (Boost.Beast): /metrics, /healthz, /readyz on --admin-listen.
// Runs on the relay's io_context, so a /healthz answer proves the event loop turns.
// Every request is bounded in size and time. Single-threaded.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string>

#include "config/address.hpp"

namespace podrelay::server {
class Relay;
}

namespace podrelay::admin {

class AdminServer {
 public:
  AdminServer(boost::asio::any_io_executor ex, server::Relay& relay);
  bool listen(config::ListenAddress const& address, std::string& error);
  void start();
  void stop();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::ip::tcp::acceptor acceptor_;
  server::Relay& relay_;
  std::string name_;
};

}  // namespace podrelay::admin
