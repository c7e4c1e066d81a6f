// The configuration types the Redis layer works with: endpoints and the --redis URL are
// parsed in config/ (a lower layer); the link layer uses them under its own namespace.
#pragma once

#include "config/redis_url.hpp"

namespace podrelay::redis {

using config::Endpoint;
using config::parse_host_port;
using config::RedisUrl;

}  // namespace podrelay::redis
