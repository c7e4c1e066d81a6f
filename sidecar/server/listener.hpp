// Accepts app connections on one --listen (framed protocol) or --resp-listen (Redis
// protocol) address, TCP or Unix socket, and starts a session of that protocol for each. Accept
// errors (EMFILE, ...) are logged and backed off, never fatal. A Unix socket file is removed when
// the listener closes. Single-threaded.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>

#include "config/address.hpp"
#include "util/error.hpp"

namespace podrelay::server {

class Relay;

class Listener {
 public:
  enum class Protocol { framed, resp };
  // Binds and listens; errc::listen_failed with a one-line reason when the address is unusable.
  static Expected<std::unique_ptr<Listener>> open(boost::asio::any_io_executor ex,
                                                  config::ListenAddress const& address,
                                                  Relay& relay,
                                                  Protocol protocol = Protocol::framed);
  ~Listener();

  void start();
  void close();
  std::string const& name() const { return name_; }
  Protocol protocol() const noexcept { return protocol_; }
  // The bound TCP port (useful with port 0), 0 for Unix sockets.
  unsigned short port() const { return port_; }

 private:
  Listener(boost::asio::any_io_executor ex, Relay& relay);
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> refuse(boost::asio::generic::stream_protocol::socket socket);

  boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol> acceptor_;
  boost::asio::steady_timer backoff_;
  Relay& relay_;
  std::string name_;
  std::string unix_path_;
  bool tcp_ = true;
  Protocol protocol_ = Protocol::framed;
  unsigned short port_ = 0;
};

}  // namespace podrelay::server
