// A small blocking client of the podrelay protocol for podrelay-cli: connect (TCP or Unix
// socket), send frames, read frames with a deadline. Not thread-safe.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <string>

#include "proto/frame.hpp"

namespace podrelay::cli {

class BlockingClient {
 public:
  enum class ReadStatus { frame, timeout, closed, error };
  using Clock = std::chrono::steady_clock;

  BlockingClient();
  // "host:port", "[v6]:port" or "unix:/path".
  bool connect(std::string const& address, std::string& error);
  bool send(std::string const& bytes, std::string& error);
  // Frame views stay valid until the next read().
  ReadStatus read(proto::Frame& out, Clock::time_point deadline, std::string& error);
  // HELLO, then waits for WELCOME (or the refusal).
  bool handshake(std::string const& client_name, std::string const& token,
                 Clock::time_point deadline, std::string& error);

 private:
  boost::asio::io_context ioc_;
  boost::asio::generic::stream_protocol::socket socket_;
  proto::Decoder decoder_;
};

// "ERR 101 FRAME_TOO_LARGE: text" for an ERR or GOAWAY frame.
std::string describe_error(std::uint16_t code, std::string_view message);

}  // namespace podrelay::cli
