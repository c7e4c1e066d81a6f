#include "cli/blocking_client.hpp"

#include <poll.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include "config/address.hpp"

namespace podrelay::cli {
namespace {
namespace asio = boost::asio;
}

BlockingClient::BlockingClient() : socket_(ioc_), decoder_(std::size_t{64} * 1024 * 1024) {
  decoder_.set_version(proto::max_protocol_version);  // what it says in HELLO
}

bool BlockingClient::connect(std::string const& address, std::string& error) {
  auto parsed = config::parse_listen_address(address);
  if (!parsed.ok()) {
    error = "invalid address: " + parsed.error;
    return false;
  }
  boost::system::error_code ec;
  auto const& a = parsed.address;
  if (a.kind == config::ListenAddress::Kind::unix_socket) {
    asio::local::stream_protocol::socket s(ioc_);
    s.connect(asio::local::stream_protocol::endpoint(a.path), ec);
    if (!ec) {
      socket_ = asio::generic::stream_protocol::socket(
          ioc_, asio::generic::stream_protocol(AF_UNIX, 0), s.release());
    }
  } else {
    asio::ip::tcp::resolver resolver(ioc_);
    auto const results = resolver.resolve(a.host, std::to_string(a.port), ec);
    if (!ec) {
      asio::ip::tcp::socket s(ioc_);
      asio::connect(s, results, ec);
      if (!ec) {
        s.set_option(asio::ip::tcp::no_delay(true), ec);
        auto const family = s.local_endpoint().protocol().family();
        socket_ = asio::generic::stream_protocol::socket(
            ioc_, asio::generic::stream_protocol(family, IPPROTO_TCP), s.release());
      }
    }
  }
  if (ec) {
    error = "cannot connect to " + address + ": " + ec.message();
    return false;
  }
  return true;
}

bool BlockingClient::send(std::string const& bytes, std::string& error) {
  boost::system::error_code ec;
  asio::write(socket_, asio::buffer(bytes), ec);
  if (ec) {
    error = "write failed: " + ec.message();
    return false;
  }
  return true;
}

BlockingClient::ReadStatus BlockingClient::read(proto::Frame& out, Clock::time_point deadline,
                                                std::string& error) {
  for (;;) {
    auto r = decoder_.next();
    if (r.status == proto::Decoder::Status::frame) {
      out = std::move(r.frame);
      return ReadStatus::frame;
    }
    if (r.status == proto::Decoder::Status::error) {
      error = "the sidecar sent an invalid frame (" + std::string(proto::error_name(r.error)) + ")";
      return ReadStatus::error;
    }
    auto const left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return ReadStatus::timeout;
    pollfd pfd{socket_.native_handle(), POLLIN, 0};
    int const timeout_ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    int const rc = ::poll(&pfd, 1, timeout_ms);
    if (rc == 0) return ReadStatus::timeout;
    if (rc < 0) {
      if (errno == EINTR) continue;
      error = "poll failed";
      return ReadStatus::error;
    }
    auto const space = decoder_.prepare(std::size_t{64} * 1024);
    boost::system::error_code ec;
    auto const n = socket_.read_some(asio::buffer(space.data(), space.size()), ec);
    if (ec == asio::error::eof || ec == asio::error::connection_reset) return ReadStatus::closed;
    if (ec) {
      error = "read failed: " + ec.message();
      return ReadStatus::error;
    }
    decoder_.commit(n);
  }
}

bool BlockingClient::handshake(std::string const& client_name, std::string const& token,
                               Clock::time_point deadline, std::string& error) {
  std::string hello;
  // Version 2: a durable channel's messages carry their stream id, and sub --since works.
  proto::encode_hello(hello, client_name, token, proto::max_protocol_version);
  if (!send(hello, error)) return false;
  proto::Frame f;
  switch (read(f, deadline, error)) {
    case ReadStatus::frame: break;
    case ReadStatus::timeout: error = "no WELCOME from the sidecar (timeout)"; return false;
    case ReadStatus::closed: error = "the sidecar closed the connection"; return false;
    case ReadStatus::error: return false;
  }
  if (std::holds_alternative<proto::Welcome>(f)) return true;
  if (auto* e = std::get_if<proto::Err>(&f)) {
    error = "sidecar refused: " + describe_error(e->code, e->message);
  } else if (auto* g = std::get_if<proto::Goaway>(&f)) {
    error = "sidecar refused: " + describe_error(g->code, g->message);
  } else {
    error = "unexpected first frame from the sidecar";
  }
  return false;
}

std::string describe_error(std::uint16_t code, std::string_view message) {
  return std::to_string(code) + " " +
         std::string(proto::error_name(static_cast<proto::ErrorCode>(code))) + ": " +
         std::string(message);
}

}  // namespace podrelay::cli
