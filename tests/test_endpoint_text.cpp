#include <doctest/doctest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <string>

#include "util/endpoint_text.hpp"

namespace asio = boost::asio;
using podrelay::util::endpoint_text;
using Generic = asio::generic::stream_protocol::endpoint;

TEST_CASE("endpoint text: addresses shown as Redis shows them in CLIENT INFO") {
  auto const v4 = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 50412);
  CHECK(endpoint_text(Generic(v4)) == "127.0.0.1:50412");
  auto const v6 = asio::ip::tcp::endpoint(asio::ip::make_address("::1"), 6379);
  CHECK(endpoint_text(Generic(v6)) == "[::1]:6379");
  auto const unix_socket = asio::local::stream_protocol::endpoint("/run/podrelay/resp.sock");
  CHECK(endpoint_text(Generic(unix_socket)) == "/run/podrelay/resp.sock:0");
}

TEST_CASE("endpoint text: an unnamed Unix socket or an empty endpoint has no text") {
  CHECK(endpoint_text(Generic(asio::local::stream_protocol::endpoint())).empty());
  CHECK(endpoint_text(Generic()).empty());
}
