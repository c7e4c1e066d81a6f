// Opening a listening socket, shared by the app listeners and the admin server: one Error
// that names the address and the failed step ("cannot listen on 127.0.0.1:7400: bind:
// Address already in use"), never an exception. Header-only; any thread.
#pragma once

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/ip/address.hpp>
#include <string>
#include <string_view>

#include "util/error.hpp"

namespace podrelay::util {

// A numeric host of --listen/--admin-listen ("localhost" is 127.0.0.1, as the config allows).
inline Expected<boost::asio::ip::address> listen_ip(std::string const& host,
                                                    std::string_view name) {
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec)
    return Error(errc::listen_failed,
                 "cannot listen on " + std::string(name) + ": " + ec.message());
  return ip;
}

// Opens, binds and listens `acceptor` on `endpoint`; SO_REUSEADDR for TCP so a restart does not
// wait for TIME_WAIT. On failure the acceptor is closed again.
template <class Protocol, class Executor>
Error listen_on(boost::asio::basic_socket_acceptor<Protocol, Executor>& acceptor,
                typename Protocol::endpoint const& endpoint, std::string_view name,
                bool reuse_address) {
  boost::system::error_code ec;
  char const* step = "socket";
  acceptor.open(endpoint.protocol(), ec);
  if (!ec && reuse_address) {
    step = "setsockopt";
    acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    step = "bind";
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    step = "listen";
    acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  }
  if (!ec) return {};
  boost::system::error_code ignored;
  acceptor.close(ignored);
  return Error(errc::listen_failed,
               "cannot listen on " + std::string(name) + ": " + step + ": " + ec.message());
}

}  // namespace podrelay::util
