#include "server/listener.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "proto/frame.hpp"
#include "server/relay.hpp"
#include "server/resp_session.hpp"
#include "server/session.hpp"
#include "util/acceptor.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::server {
namespace {

namespace asio = boost::asio;
using AnyStream = asio::generic::stream_protocol;

std::uint64_t next_session_id() {
  static std::uint64_t id = 0;
  return ++id;
}

}  // namespace

Listener::Listener(asio::any_io_executor ex, Relay& relay)
    : acceptor_(ex), backoff_(ex), relay_(relay) {}

Listener::~Listener() { close(); }

Expected<std::unique_ptr<Listener>> Listener::open(asio::any_io_executor ex,
                                                   config::ListenAddress const& address,
                                                   Relay& relay, Protocol protocol) {
  std::unique_ptr<Listener> l(new Listener(ex, relay));
  l->name_ = address.to_string();
  l->protocol_ = protocol;
  AnyStream::endpoint endpoint;
  if (address.kind == config::ListenAddress::Kind::unix_socket) {
    l->tcp_ = false;
    // A socket file left by a crashed run is stale if nobody accepts on it; a live one
    // means another process owns the address.
    struct stat st {};
    if (::stat(address.path.c_str(), &st) == 0) {
      auto const refuse = [&](char const* why) {
        return Error(errc::listen_failed, "cannot listen on " + l->name_ + ": " + why);
      };
      if (!S_ISSOCK(st.st_mode)) return refuse("the path exists and is not a socket");
      asio::local::stream_protocol::socket probe(ex);
      boost::system::error_code ec;
      probe.connect(asio::local::stream_protocol::endpoint(address.path), ec);
      if (!ec) return refuse("another process is listening there");
      ::unlink(address.path.c_str());
    }
    endpoint = AnyStream::endpoint(asio::local::stream_protocol::endpoint(address.path));
  } else {
    auto ip = util::listen_ip(address.host, l->name_);
    if (!ip) return ip.error();
    endpoint = AnyStream::endpoint(asio::ip::tcp::endpoint(*ip, address.port));
  }
  if (auto error = util::listen_on(l->acceptor_, endpoint, l->name_, l->tcp_)) return error;
  if (!l->tcp_) {
    l->unix_path_ = address.path;
    // The umask's mode (often 0755) lets only the owner connect; an app container runs as
    // another UID, so the mode is set explicitly (--unix-socket-mode).
    auto const mode = relay.config().unix_socket_mode;
    if (::chmod(address.path.c_str(), static_cast<mode_t>(mode)) != 0) {
      auto const why = std::strerror(errno);
      return Error(errc::listen_failed, "cannot set the mode of " + l->name_ + ": " + why);
    }
  } else {
    boost::system::error_code ec;
    auto const local = l->acceptor_.local_endpoint(ec);
    if (!ec) {
      asio::ip::tcp::endpoint tcp_ep;
      std::memcpy(tcp_ep.data(), local.data(),
                  std::min<std::size_t>(local.size(), sizeof(sockaddr_in6)));
      l->port_ = tcp_ep.port();
      // With port 0 the kernel chose one: name the address that was bound.
      if (address.port == 0) {
        auto bound = address;
        bound.port = l->port_;
        l->name_ = bound.to_string();
      }
    }
  }
  return l;
}

void Listener::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void Listener::close() {
  boost::system::error_code ignored;
  if (acceptor_.is_open()) acceptor_.close(ignored);
  backoff_.cancel();
  if (!unix_path_.empty()) {
    ::unlink(unix_path_.c_str());
    unix_path_.clear();
  }
}

asio::awaitable<void> Listener::accept_loop() {
  static log::RateLimit limit;
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      log::warn_limited(limit, "accept failed; backing off",
                        {{"listener", name_}, {"error", ec.message()}});
      backoff_.expires_after(std::chrono::milliseconds(100));
      co_await backoff_.async_wait(use_tuple);
      continue;
    }
    if (!relay_.admit()) {
      asio::co_spawn(acceptor_.get_executor(), refuse(std::move(socket)), asio::detached);
      continue;
    }
    if (tcp_) {
      boost::system::error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    }
    std::shared_ptr<Connection> session;
    if (protocol_ == Protocol::resp) {
      session = std::make_shared<RespSession>(std::move(socket), relay_, next_session_id(), name_);
    } else {
      session = std::make_shared<Session>(std::move(socket), relay_, next_session_id(), name_);
    }
    session->start();
  }
}

asio::awaitable<void> Listener::refuse(AnyStream::socket socket) {
  auto const code =
      relay_.draining() ? proto::ErrorCode::shutting_down : proto::ErrorCode::too_many_connections;
  relay_.metrics().connection_refused(code).Increment();
  static log::RateLimit limit;
  log::warn_limited(
      limit, "refusing app connection",
      {{"reason", proto::error_name(code)}, {"max_connections", relay_.config().max_connections}});
  std::string frame;
  auto const text = code == proto::ErrorCode::too_many_connections
                        ? std::string_view("too many connections (--max-connections)")
                        : std::string_view("the sidecar is shutting down");
  if (protocol_ == Protocol::resp) {
    frame = "-ERR max number of clients reached (podrelay: " + std::string(text) + ")\r\n";
  } else {
    proto::encode_goaway(frame, code, text);  // a short literal: nothing to cut
  }
  // Best effort: a few bytes into a fresh socket buffer never block.
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  asio::write(socket, asio::buffer(frame), ec);
  socket.shutdown(AnyStream::socket::shutdown_both, ec);
  socket.close(ec);
  co_return;
}

}  // namespace podrelay::server
