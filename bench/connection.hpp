// One non-blocking client connection to a loopback TCP port or a Unix socket, driven by an
// EventLoop.
// Output is buffered: send() appends, flush() writes what the socket takes now and watches
// for writability for the rest. Input is handed to the subclass as it arrives.
// Not thread-safe; must not be destroyed from inside its own callbacks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "event_loop.hpp"

namespace bench {

// Where a bench connection goes: 127.0.0.1:port, or the Unix socket `unix_path` when set.
struct Address {
  Address(std::uint16_t p)
      : port(p) {}  // NOLINT(google-explicit-constructor): a port is an address
  explicit Address(std::string path) : unix_path(std::move(path)) {}
  std::uint16_t port = 0;
  std::string unix_path;
  std::string text() const {
    return unix_path.empty() ? "127.0.0.1:" + std::to_string(port) : "unix:" + unix_path;
  }
};

class Connection : public EventLoop::Handler {
 public:
  // Connects (bounded wait); throws std::runtime_error on failure.
  Connection(EventLoop& loop, Address const& address);
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
