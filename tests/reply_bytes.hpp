// Test helper: the one whole Redis reply that `bytes` hold, parsed by hiredis' reader.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "redis/resp.hpp"

namespace podrelay::redis {

inline ReplyPtr parse_reply(std::string const& bytes) {
  ReplyReader r;
  r.feed(bytes.data(), bytes.size());
  ReplyPtr reply;
  REQUIRE(r.next(reply) == ReplyReader::Status::reply);
  return reply;
}

}  // namespace podrelay::redis
