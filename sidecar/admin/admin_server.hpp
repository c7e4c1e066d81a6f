// The admin HTTP server (Boost.Beast): /metrics, /healthz, /readyz on --admin-listen.
// Runs on the relay's io_context, so a /healthz answer proves the event loop turns.
// Every request is bounded in size and time: one with a body, headers over 8 KiB or bytes
// that are not HTTP gets its 4xx (405, 413, 431, 400) and the connection closes.
// Single-threaded.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>

#include "config/address.hpp"
#include "util/error.hpp"

namespace podrelay::admin {

// What the admin server asks the daemon, on the event loop, once per request.
struct Probes {
  std::function<std::string()> metrics;           // the Prometheus text exposition
  std::function<std::string()> not_ready_reason;  // empty: ready
};

class AdminServer {
 public:
  AdminServer(boost::asio::any_io_executor ex, Probes probes);
  // errc::listen_failed with a one-line reason when the address is unusable.
  Error listen(config::ListenAddress const& address);
  void start();
  void stop();
  // The address bound by listen(), with the kernel's port when --admin-listen gave port 0.
  std::string const& name() const noexcept { return name_; }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::ip::tcp::acceptor acceptor_;
  Probes probes_;
  std::string name_;
};

}  // namespace podrelay::admin
