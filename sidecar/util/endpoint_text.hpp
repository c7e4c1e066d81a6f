// How a socket's address is shown to users, the way Redis shows it in CLIENT INFO:
// "127.0.0.1:50412", "[::1]:50412", or a Unix socket's path followed by ":0". Pure.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <string>

namespace podrelay::util {

// "" for an unnamed Unix socket (a client's end) or an address family it does not know.
std::string endpoint_text(boost::asio::generic::stream_protocol::endpoint const& endpoint);

}  // namespace podrelay::util
