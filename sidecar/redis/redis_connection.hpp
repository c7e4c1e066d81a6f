// One connection to a Redis server on Asio, plain TCP or TLS (asio::ssl), with hiredis'
// reader: connect with a deadline, TCP keepalive, the handshake (AUTH, SELECT, CLIENT
// SETNAME, and ROLE where the server must be a master), then raw reads and writes for the
// role that owns it. Single-threaded; owned by its role.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "redis/endpoint.hpp"
#include "redis/push_reader.hpp"
#include "redis/resp.hpp"
#include "util/error.hpp"

namespace podrelay::redis {

namespace asio = boost::asio;
using boost::system::error_code;

struct ConnectOptions {
  RedisUrl const* url = nullptr;
  std::shared_ptr<asio::ssl::context> tls;  // null: plain TCP
  std::string tls_server_name;              // SNI and verification; endpoint host when empty
  std::string client_name;                  // CLIENT SETNAME
  bool authenticate = true;                 // AUTH with the URL's credentials ...
  std::string const* username = nullptr;    // ... or these, when set (the sentinels')
  std::string const* password = nullptr;
  bool select_db = true;         // SELECT is meaningless for pub/sub, harmless elsewhere
  bool require_master = false;   // ROLE must say "master" (Sentinel mode)
  std::string_view load_script;  // SCRIPT LOAD it in the handshake (see script_sha)
  std::chrono::milliseconds timeout{3000};
  std::chrono::milliseconds user_timeout{3000};  // TCP_USER_TIMEOUT: unacked data limit
};

// The TLS context for --redis rediss://..., from the --tls-* files, or tls_file_unusable
// with a one-line reason naming the file.
Expected<std::shared_ptr<asio::ssl::context>> make_tls_context(config::TlsFiles const& files);

class RedisConnection {
 public:
  explicit RedisConnection(asio::any_io_executor ex);

  // Resolves, connects, (TLS handshake,) authenticates within options.timeout. On failure
  // the error's reason is one line fit for logs (no secrets).
  asio::awaitable<Error> open(Endpoint const& endpoint, ConnectOptions const& options);

  asio::awaitable<error_code> write(std::string const& bytes);
  // Plain TCP only (can_write_now): writes what the socket takes now without blocking and
  // returns the bytes written (0 when the socket buffer is full).
  bool can_write_now() const { return !tls_ && tcp().is_open(); }
  std::size_t write_now(std::string_view bytes, error_code& ec);
  // Plain TCP only: a read waiting on the socket is not woken until `bytes` are there
  // (SO_RCVLOWAT), the peer closed, or the mark is lowered again (which wakes it at once if
  // enough is there); a read started meanwhile still takes whatever is there. 1 is the
  // default, eager reads. Returns whether the mark is now `bytes` (false on TLS, whose
  // records are not the socket's bytes). A new connection starts at 1.
  static constexpr std::size_t max_low_water = std::size_t{1} << 20;
  bool set_read_low_water(std::size_t bytes);
  std::size_t read_low_water() const noexcept { return low_water_; }
  // Reads whatever arrived and feeds it to reader().
  asio::awaitable<error_code> read_some();
  // The bound on a reply to a command that gets an integer, a status, an id or a short
  // array back (a PING, a handshake step, a Sentinel query): anything larger is no answer.
  static constexpr std::size_t max_small_reply = std::size_t{1} << 20;
  // Sends one command and waits for its reply (Sentinel and topology queries only); a
  // reply larger than `limit` bytes is a protocol error (the connection is not trusted).
  asio::awaitable<Expected<ReplyPtr>> request(std::string const& command,
                                              std::size_t limit = max_small_reply);
  ReplyReader& reader() { return *reader_; }
  // Hands every reply to `on_reply` until it returns false, the stream is not RESP, a reply
  // grows past `reply_limit()` (asked only once one is past small_reply_bytes; 0: no
  // bound), or the connection fails; then closes the connection. `role` names it in the
  // log lines.
  asio::awaitable<void> read_replies(std::string_view role, bool const& stopped,
                                     std::function<bool(redisReply const&)> const& on_reply,
                                     std::function<std::size_t()> const& reply_limit);
  static constexpr std::size_t small_reply_bytes = std::size_t{64} * 1024;
  // The same with the subscriber's reader, which parses message pushes in place: the
  // socket reads straight into its buffer, starting with what the handshake left unread.
  // `on_parsed` runs after each read's items, before the next read.
  using OnItem = std::function<bool(PushReader::Status, PushReader::Item&)>;
  asio::awaitable<void> read_pushes(std::string_view role, bool const& stopped, PushReader& reader,
                                    OnItem const& on_item, std::function<void()> const& on_parsed);

  // After open() with options.load_script: the SHA1 Redis gave for it, or empty with
  // Redis' refusal in script_refusal().
  std::string const& script_sha() const noexcept { return script_sha_; }
  std::string const& script_refusal() const noexcept { return script_refusal_; }

  void close();
  bool is_open() const { return tcp().is_open(); }
  std::string const& peer() const { return peer_; }

 private:
  // The steps of open(); `timed_out` turns true when options.timeout closed the socket.
  void reset(ConnectOptions const& options);
  asio::awaitable<Error> connect_tcp(Endpoint const& endpoint, ConnectOptions const& options,
                                     bool const& timed_out);
  asio::awaitable<Error> handshake_tls(Endpoint const& endpoint, ConnectOptions const& options,
                                       bool const& timed_out);
  asio::awaitable<Error> handshake(ConnectOptions const& options, bool const& timed_out);
  // Waits for the next reply, of at most `limit` bytes; `what` says which step failed
  // ("handshake with", "read from").
  asio::awaitable<Expected<ReplyPtr>> next_reply(errc on_io_error, std::string_view what,
                                                 bool const& timed_out, std::size_t limit);

  asio::ip::tcp::socket& tcp() { return tls_ ? tls_->next_layer() : socket_; }
  asio::ip::tcp::socket const& tcp() const { return tls_ ? tls_->next_layer() : socket_; }

  asio::any_io_executor ex_;
  asio::ip::tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
  asio::steady_timer deadline_;
  std::unique_ptr<ReplyReader> reader_;
  std::vector<char> read_buf_;
  std::string peer_;
  std::string script_sha_;
  std::string script_refusal_;
  std::size_t low_water_ = 1;
};

// Exponential backoff with jitter for reconnects: 50 ms doubling up to 1 s, each delay
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
