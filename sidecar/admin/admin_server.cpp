#include "admin/admin_server.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "util/acceptor.hpp"
#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Response = http::response<http::string_body>;

Response plain(unsigned version, http::status status, std::string body) {
  Response res;
  res.version(version);
  res.result(status);
  res.set(http::field::server, "podrelay");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

Response method_not_allowed(unsigned version) {
  auto res = plain(version, http::status::method_not_allowed, "only GET and HEAD\n");
  res.set(http::field::allow, "GET, HEAD");
  return res;
}

// The answer to a request the parser refused, after which the connection closes (what
// follows cannot be trusted to start a request); none when the peer closed or went quiet.
std::optional<Response> refusal(boost::system::error_code ec,
                                http::request_parser<http::empty_body> const& parser) {
  auto const version = parser.is_header_done() ? parser.get().version() : 11;
  std::optional<Response> res;
  if (ec == http::error::body_limit) {
    auto const method = parser.get().method();
    if (method != http::verb::get && method != http::verb::head) {
      res = method_not_allowed(version);
    } else {
      res = plain(version, http::status::payload_too_large,
                  "the admin endpoints take no request body\n");
    }
  } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    res = plain(version, http::status::request_header_fields_too_large,
                "request headers larger than 8192 bytes\n");
  } else if (ec.category() == make_error_code(http::error::bad_method).category() &&
             ec != http::error::end_of_stream && ec != http::error::partial_message) {
    // Beast's other parse errors: bad method, target, version, field, chunk ...
    res = plain(version, http::status::bad_request, "bad request: " + ec.message() + "\n");
  }
  if (res) {
    res->keep_alive(false);
    res->prepare_payload();
  }
  return res;
}

// After a refusal: sends FIN, then reads and drops what the peer still sends (at most
// 64 KiB, for at most a second), so that closing with unread bytes (the refused body) does
// not reset the connection before the peer has read the answer.
asio::awaitable<void> linger(beast::tcp_stream& stream) {
  boost::system::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  stream.expires_after(std::chrono::seconds(1));
  std::array<char, 4096> sink{};
  for (std::size_t total = 0; total < 65536;) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), use_tuple);
    if (ec) break;
    total += n;
  }
}

}  // namespace

AdminServer::AdminServer(asio::any_io_executor ex, Probes probes)
    : acceptor_(ex), probes_(std::move(probes)) {}

Error AdminServer::listen(config::ListenAddress const& address) {
  name_ = address.to_string();
  auto const label = "--admin-listen " + name_;
  auto ip = util::listen_ip(address.host, label);
  if (!ip) return ip.error();
  if (auto error =
          util::listen_on(acceptor_, asio::ip::tcp::endpoint(*ip, address.port), label, true)) {
    return error;
  }
  boost::system::error_code ec;
  auto const bound = acceptor_.local_endpoint(ec);
  if (!ec && address.port == 0) {  // the kernel chose the port: name the address bound
    auto named = address;
    named.port = bound.port();
    name_ = named.to_string();
  }
  return {};
}

void AdminServer::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

void AdminServer::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

asio::awaitable<void> AdminServer::accept_loop() {
  asio::steady_timer backoff(acceptor_.get_executor());
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(use_tuple);
      continue;
    }
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> AdminServer::serve(asio::ip::tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(8192);
  for (;;) {
    stream.expires_after(std::chrono::seconds(10));
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8192);
    parser.body_limit(0);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
    (void)n;
    if (ec) {
      if (auto res = refusal(ec, parser)) {
        auto [wec, wn] = co_await http::async_write(stream, *res, use_tuple);
        (void)wn;
        if (!wec) co_await linger(stream);
      }
      break;
    }
    auto const& req = parser.get();
    auto res = plain(req.version(), http::status::ok, {});
    res.keep_alive(req.keep_alive());
    auto const target = req.target();
    auto const path = target.substr(0, target.find('?'));
    bool const head = req.method() == http::verb::head;
    if (req.method() != http::verb::get && !head) {
      res = method_not_allowed(req.version());
      res.keep_alive(req.keep_alive());
    } else if (path == "/metrics") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = probes_.metrics();
    } else if (path == "/healthz") {
      res.result(http::status::ok);
      res.body() = "ok\n";
    } else if (path == "/readyz") {
      auto const reason = probes_.not_ready_reason();
      res.result(reason.empty() ? http::status::ok : http::status::service_unavailable);
      res.body() = reason.empty() ? "ready\n" : reason + "\n";
    } else {
      res.result(http::status::not_found);
      res.body() = "not found; try /metrics, /healthz or /readyz\n";
    }
    res.prepare_payload();
    if (head) {
      // The headers GET would send, Content-Length included, without the body (RFC 9110).
      auto const length = res.payload_size();
      res.body().clear();
      if (length) res.content_length(*length);
    }
    auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
    (void)wn;
    if (wec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

}  // namespace podrelay::admin
