// The completion token of every coroutine here: expected errors come back as values
// (`auto [ec, n] = co_await op(use_tuple)`), only the unexpected throws.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace podrelay {

inline constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

}  // namespace podrelay
