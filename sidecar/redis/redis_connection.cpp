#include "redis/redis_connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "redis/handshake.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"
#include "util/write_batch.hpp"

namespace podrelay::redis {
namespace {

void set_keepalive(asio::ip::tcp::socket& s, std::chrono::milliseconds user_timeout) {
  // Keepalive probes find a silent peer after about 5 + 2 * 3 = 11 s of idleness; the
  // user timeout bounds how long written data may stay unacknowledged. The PING health
  // check of each role detects a dead Redis faster; these are the backstop.
  int const fd = s.native_handle();
  int const on = 1, idle = 5, intvl = 2, cnt = 3;
  auto const ut = static_cast<unsigned>(user_timeout.count());
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
}

std::string reply_too_large(std::size_t limit) {
  return "a reply of more than " + std::to_string(limit) +
         " bytes, more than the command it answers can get back";
}

}  // namespace

Expected<std::shared_ptr<asio::ssl::context>> make_tls_context(config::TlsFiles const& files) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  error_code ec;
  if (files.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(files.ca_file, ec);
  }
  if (ec) {
    return Error(errc::tls_file_unusable,
                 "cannot load TLS CA '" + files.ca_file + "': " + ec.message());
  }
  if (!files.cert_file.empty()) {
    ctx->use_certificate_chain_file(files.cert_file, ec);
    if (ec) {
      return Error(errc::tls_file_unusable,
                   "cannot load TLS certificate '" + files.cert_file + "': " + ec.message());
    }
    ctx->use_private_key_file(files.key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return Error(errc::tls_file_unusable,
                   "cannot load TLS key '" + files.key_file + "': " + ec.message());
    }
  }
  ctx->set_verify_mode(files.insecure_skip_verify ? asio::ssl::verify_none
                                                  : asio::ssl::verify_peer);
  return ctx;
}

RedisConnection::RedisConnection(asio::any_io_executor ex)
    : ex_(ex), socket_(ex), deadline_(ex), reader_(std::make_unique<ReplyReader>()) {}

asio::awaitable<Error> RedisConnection::open(Endpoint const& endpoint,
                                             ConnectOptions const& options) {
  close();
  reset(options);
  peer_ = endpoint.host + ":" + std::to_string(endpoint.port);

  // The deadline closes the socket, which fails whatever step is pending. The flag is
  // shared with the handler: it may already be queued when this coroutine finishes.
  auto expired = std::make_shared<bool>(false);
  auto armed = std::make_shared<bool>(true);
  deadline_.expires_after(options.timeout);
  deadline_.async_wait([this, expired, armed](error_code ec) {
    if (!ec && *armed) {
      *expired = true;
      close();
    }
  });
  struct Disarm {
    asio::steady_timer& t;
    std::shared_ptr<bool> armed;
    ~Disarm() {
      *armed = false;
      t.cancel();
    }
  } disarm{deadline_, armed};
  bool const& timed_out = *expired;

  if (auto e = co_await connect_tcp(endpoint, options, timed_out)) co_return e;
  if (tls_) {
    if (auto e = co_await handshake_tls(endpoint, options, timed_out)) co_return e;
  }
  co_return co_await handshake(options, timed_out);
}

void RedisConnection::reset(ConnectOptions const& options) {
  reader_ = std::make_unique<ReplyReader>();
  low_water_ = 1;
  if (options.tls) {
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(ex_, *options.tls);
  } else {
    tls_.reset();
    socket_ = asio::ip::tcp::socket(ex_);
  }
}

asio::awaitable<Error> RedisConnection::connect_tcp(Endpoint const& endpoint,
                                                    ConnectOptions const& options,
                                                    bool const& timed_out) {
  asio::ip::tcp::resolver resolver(ex_);
  auto [rec, results] =
      co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port), use_tuple);
  if (rec)
    co_return Error(errc::resolve_failed, "cannot resolve " + endpoint.host + ": " + rec.message());
  if (timed_out) co_return Error(errc::resolve_failed, "timed out resolving " + endpoint.host);
  auto [cec, ep] = co_await asio::async_connect(tcp(), results, use_tuple);
  if (cec || timed_out) {
    close();
    co_return Error(errc::connect_failed,
                    "cannot connect to " + peer_ + ": " +
                        (timed_out ? std::string("timed out") : cec.message()));
  }
  tcp().set_option(asio::ip::tcp::no_delay(true));
  set_keepalive(tcp(), options.user_timeout);
  tcp().non_blocking(true);  // write_now must never block the event loop
  co_return Error{};
}

asio::awaitable<Error> RedisConnection::handshake_tls(Endpoint const& endpoint,
                                                      ConnectOptions const& options,
                                                      bool const& timed_out) {
  auto const& name = options.tls_server_name.empty() ? endpoint.host : options.tls_server_name;
  SSL* const ssl = tls_->native_handle();
  error_code not_an_ip;
  asio::ip::make_address(name, not_an_ip);
  // OpenSSL checks the name as part of the chain's verification, so a mismatch has its own
  // verify result ("hostname mismatch") instead of a callback's bare refusal.
  if (not_an_ip) {  // SNI carries host names only, never IP addresses (RFC 6066)
    SSL_set_tlsext_host_name(ssl, name.c_str());
    SSL_set1_host(ssl, name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
  }
  auto [hec] = co_await tls_->async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (hec || timed_out) {
    std::string why = timed_out ? std::string("timed out") : hec.message();
    if (auto const result = SSL_get_verify_result(ssl); !timed_out && result != X509_V_OK) {
      why += ": ";
      why += X509_verify_cert_error_string(result);  // which check failed, for the operator
      if (result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        why += " (checked " + name + "; --tls-server-name sets the name to check)";
      }
    }
    close();
    co_return Error(errc::tls_handshake_failed, "TLS handshake with " + peer_ + " failed: " + why);
  }
  co_return Error{};
}

asio::awaitable<Error> RedisConnection::handshake(ConnectOptions const& options,
                                                  bool const& timed_out) {
  auto const& url = *options.url;
  HandshakeOptions hs_options;
  if (options.authenticate) {
    hs_options.username = options.username != nullptr ? *options.username : url.username;
    hs_options.password = options.password != nullptr ? *options.password : url.password;
  }
  if (options.select_db) hs_options.db = url.db;
  hs_options.client_name = options.client_name;
  hs_options.require_master = options.require_master;
  hs_options.load_script = options.load_script;
  script_sha_.clear();
  script_refusal_.clear();
  auto const hs = build_handshake(hs_options);
  if (hs.steps.empty()) co_return Error{};

  if (auto ec = co_await write(hs.bytes)) {
    close();
    co_return Error(errc::handshake_failed,
                    "handshake write to " + peer_ + " failed: " + ec.message());
  }
  for (auto const step : hs.steps) {
    auto reply =
        co_await next_reply(errc::handshake_failed, "handshake with", timed_out, max_small_reply);
    if (!reply) {
      close();
      co_return reply.error();
    }
    if (auto e = check_handshake_reply(step, **reply, peer_)) {
      close();
      co_return e;
    }
    if (step == HandshakeStep::script_load) {
      script_sha_ = loaded_script_sha(**reply);
      if (script_sha_.empty()) script_refusal_ = script_load_refusal(**reply);
    }
  }
  co_return Error{};
}

asio::awaitable<Expected<ReplyPtr>> RedisConnection::next_reply(errc on_io_error,
                                                                std::string_view what,
                                                                bool const& timed_out,
                                                                std::size_t limit) {
  for (;;) {
    ReplyPtr reply;
    auto const st = reader_->next(reply);
    if (st == ReplyReader::Status::reply) co_return reply;
    if (st == ReplyReader::Status::error) {
      co_return Error(errc::protocol_error,
                      "protocol error from " + peer_ + ": " + std::string(reader_->error_text()));
    }
    if (reader_->incomplete_bytes() > limit) {
      co_return Error(errc::protocol_error, "protocol error from " + peer_ + ": " +
                                                reply_too_large(limit) +
                                                "; dropping the connection");
    }
    if (auto ec = co_await read_some()) {
      co_return Error(on_io_error, std::string(what) + " " + peer_ + " failed: " +
                                       (timed_out ? std::string("timed out") : ec.message()));
    }
  }
}

asio::awaitable<error_code> RedisConnection::write(std::string const& bytes) {
  auto [ec, n] = tls_ ? co_await asio::async_write(*tls_, asio::buffer(bytes), use_tuple)
                      : co_await asio::async_write(socket_, asio::buffer(bytes), use_tuple);
  (void)n;
  co_return ec;
}

std::size_t RedisConnection::write_now(std::string_view bytes, error_code& ec) {
  auto const n = socket_.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    return 0;
  }
  return ec ? 0 : n;
}

bool RedisConnection::set_read_low_water(std::size_t bytes) {
  bytes = std::clamp<std::size_t>(bytes, 1, max_low_water);
  if (bytes == low_water_) return true;
  if (!can_write_now()) return false;
  // Linux: epoll reports the socket readable only once this much arrived (or at EOF or an
  // error); lowering it again wakes a waiting reader at once if anything is there.
  error_code ec;
  tcp().set_option(
      asio::detail::socket_option::integer<SOL_SOCKET, SO_RCVLOWAT>(static_cast<int>(bytes)), ec);
  if (ec) return false;
  low_water_ = bytes;
  return true;
}

asio::awaitable<error_code> RedisConnection::read_some() {
  if (read_buf_.empty()) read_buf_.resize(std::size_t{64} * 1024);
  auto [ec, n] = tls_ ? co_await tls_->async_read_some(asio::buffer(read_buf_), use_tuple)
                      : co_await socket_.async_read_some(asio::buffer(read_buf_), use_tuple);
  if (!ec) reader_->feed(read_buf_.data(), n);
  co_return ec;
}

asio::awaitable<Expected<ReplyPtr>> RedisConnection::request(std::string const& command,
                                                             std::size_t limit) {
  if (auto ec = co_await write(command)) {
    co_return Error(errc::io_failed, "write to " + peer_ + " failed: " + ec.message());
  }
  bool const no_deadline = false;  // a request has no deadline of its own
  co_return co_await next_reply(errc::io_failed, "read from", no_deadline, limit);
}

asio::awaitable<void> RedisConnection::read_replies(
    std::string_view role, bool const& stopped,
    std::function<bool(redisReply const&)> const& on_reply,
    std::function<std::size_t()> const& reply_limit) {
  for (;;) {
    {
      redisReply const* reply = nullptr;
      // What the replies of this read queue (acks to apps, the next commands) is written
      // once at its end; never open across a co_await, or nothing would be written.
      util::WriteBatch batch;
      for (;;) {
        auto const st = reader_->next_view(reply);
        if (st == ReplyReader::Status::need_more) {
          auto const pending = reader_->incomplete_bytes();
          if (pending <= small_reply_bytes) break;
          if (auto const limit = reply_limit(); limit != 0 && pending > limit) {
            log::error(
                "redis protocol error",
                {{"role", role}, {"error", reply_too_large(limit) + "; dropping the connection"}});
            close();
            co_return;
          }
          break;
        }
        if (st == ReplyReader::Status::error) {
          log::error("redis protocol error", {{"role", role}, {"error", reader_->error_text()}});
          close();
          co_return;
        }
        if (!on_reply(*reply)) {
          close();
          co_return;
        }
      }
    }
    if (auto const ec = co_await read_some()) {
      if (!stopped && is_open()) {
        log::warn("redis connection lost", {{"role", role}, {"error", ec.message()}});
      }
      close();
      co_return;
    }
  }
}

asio::awaitable<void> RedisConnection::read_pushes(std::string_view role, bool const& stopped,
                                                   PushReader& reader, OnItem const& on_item,
                                                   std::function<void()> const& on_parsed) {
  // The handshake's replies were all consumed, so hiredis holds whole replies only.
  reader.feed(reader_->unread());
  reader_ = std::make_unique<ReplyReader>();
  PushReader::Item item;
  for (;;) {
    {
      // The messages of this read reach each local receiver in one write at its end;
      // never open across a co_await.
      util::WriteBatch batch;
      for (;;) {
        auto const st = reader.next(item);
        if (st == PushReader::Status::need_more) break;
        if (st == PushReader::Status::error) {
          log::error("redis protocol error", {{"role", role}, {"error", reader.error_text()}});
          close();
          co_return;
        }
        if (!on_item(st, item)) {
          close();
          co_return;
        }
      }
    }
    on_parsed();
    auto const space = reader.prepare();
    auto [ec, n] =
        tls_
            ? co_await tls_->async_read_some(asio::buffer(space.data(), space.size()), use_tuple)
            : co_await socket_.async_read_some(asio::buffer(space.data(), space.size()), use_tuple);
    if (ec) {
      if (!stopped && is_open()) {
        log::warn("redis connection lost", {{"role", role}, {"error", ec.message()}});
      }
      close();
      co_return;
    }
    reader.commit(n);
  }
}

void RedisConnection::close() {
  error_code ignored;
  auto& s = tcp();
  if (s.is_open()) {
    s.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    s.close(ignored);
  }
}

std::chrono::milliseconds Backoff::next() {
  // Capped at 1 s: while Redis is away, messages published elsewhere do not reach this pod,
  // so coming back quickly matters more than sparing a restarted Redis one connection
  // attempt per second per pod (the jitter spreads them).
  auto const cap = std::chrono::milliseconds(1000);
  auto base = std::chrono::milliseconds(50) * (1 << std::min(attempt_, 6));
  if (base > cap) base = cap;
  ++attempt_;
  std::uniform_int_distribution<long> dist(base.count() / 2, base.count());
  return std::chrono::milliseconds(dist(rng_));
}

}  // namespace podrelay::redis
