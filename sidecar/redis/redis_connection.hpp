// One TCP connection to Redis on Asio, with hiredis' reader: connect with a deadline,
// TCP keepalive, the handshake (AUTH, SELECT, CLIENT SETNAME), then raw reads and writes
// for the role that owns it (publisher or subscriber). Single-threaded; owned by its role.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "redis/redis_url.hpp"
#include "redis/resp.hpp"

namespace podrelay::redis {

namespace asio = boost::asio;
using boost::system::error_code;

struct ConnectOptions {
  RedisUrl const* url = nullptr;
  std::string client_name;  // CLIENT SETNAME
  bool select_db = true;    // SELECT is meaningless for pub/sub, harmless elsewhere
  std::chrono::milliseconds timeout{3000};
  std::chrono::milliseconds user_timeout{3000};  // TCP_USER_TIMEOUT: unacked data limit
};

class RedisConnection {
 public:
  explicit RedisConnection(asio::any_io_executor ex);

  // Resolves, connects and authenticates within options.timeout. On failure returns an
  // error and sets `why` to one line fit for logs (no secrets).
  asio::awaitable<error_code> open(Endpoint const& endpoint, ConnectOptions const& options,
                                   std::string& why);

  asio::awaitable<error_code> write(std::string const& bytes);
  // Reads whatever arrived and feeds it to reader().
  asio::awaitable<error_code> read_some();
  ReplyReader& reader() { return *reader_; }

  void close();
  bool is_open() const { return socket_.is_open(); }
  std::string const& peer() const { return peer_; }

 private:
  asio::ip::tcp::socket socket_;
  asio::steady_timer deadline_;
  std::unique_ptr<ReplyReader> reader_;
  std::vector<char> read_buf_;
  std::string peer_;
};

// Exponential backoff with jitter for reconnects: 100 ms doubling up to 5 s, each delay
// drawn from [d/2, d] so a fleet of sidecars does not reconnect in lockstep.
class Backoff {
 public:
  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }

 private:
  int attempt_ = 0;
  std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace podrelay::redis
