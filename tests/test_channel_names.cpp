#include <doctest/doctest.h>

#include "core/channel_names.hpp"

using namespace podrelay::core;

TEST_CASE("the prefix is prepended to channels and stripped from messages") {
  ChannelNames n("podrelay:");
  CHECK(n.redis_channel("chat") == "podrelay:chat");
  CHECK(n.app_channel("podrelay:chat") == "chat");
  CHECK_FALSE(n.app_channel("other:chat").has_value());
  CHECK(n.app_channel("podrelay:") == "");
}

TEST_CASE("glob characters in the prefix are escaped inside patterns") {
  CHECK(escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f");
  ChannelNames n("app[1]*:");
  CHECK(n.redis_channel("x") == "app[1]*:x");  // channels are literal
  CHECK(n.redis_pattern("room.*") == "app\\[1\\]\\*:room.*");
  CHECK(n.app_pattern("app\\[1\\]\\*:room.*") == "room.*");
  CHECK_FALSE(n.app_pattern("app[1]*:room.*").has_value());
}

TEST_CASE("an empty prefix is allowed") {
  ChannelNames n("");
  CHECK(n.redis_channel("c") == "c");
  CHECK(n.redis_pattern("c*") == "c*");
  CHECK(n.app_channel("c") == "c");
}
