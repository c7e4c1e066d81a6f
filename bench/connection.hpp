// One non-blocking TCP client connection to a loopback port, driven by an EventLoop.
// Output is buffered: send() appends, flush() writes what the socket takes now and watches
// for writability for the rest. Input is handed to the subclass as it arrives.
// Not thread-safe; must not be destroyed from inside its own callbacks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "event_loop.hpp"

namespace bench {

class Connection : public EventLoop::Handler {
 public:
  // Connects to 127.0.0.1:port (bounded wait); throws std::runtime_error on failure.
  Connection(EventLoop& loop, std::uint16_t port);
  virtual ~Connection();
  Connection(Connection const&) = delete;
  Connection& operator=(Connection const&) = delete;

  // Appends bytes to the output; writes at once unless `defer` (then call flush()).
  void send(std::string_view bytes, bool defer = false);
  void flush();

  bool closed() const noexcept { return fd_ < 0; }
  std::string const& error() const noexcept { return error_; }
  std::size_t pending_output() const noexcept { return out_.size() - out_off_; }
  std::uint64_t bytes_received() const noexcept { return bytes_in_; }

  void on_ready(std::uint32_t events) final;

 protected:
  // Bytes read from the socket; valid only during the call.
  virtual void on_bytes(char const* data, std::size_t n) = 0;
  // Closes the socket and records why (the first reason wins).
  void fail(std::string why);

 private:
  void update_interest();

  EventLoop& loop_;
  int fd_ = -1;
  std::string out_;
  std::size_t out_off_ = 0;
  bool watching_out_ = false;
  std::uint64_t bytes_in_ = 0;
  std::string error_;
};

}  // namespace bench
