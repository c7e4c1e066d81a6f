#include "redis/cluster_topology.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "util/log.hpp"
#include "util/use_tuple.hpp"

namespace podrelay::redis {
namespace {

using Clock = std::chrono::steady_clock;
// Refreshes closer together than this add load without adding information.
constexpr std::chrono::milliseconds min_spacing{200};

}  // namespace

ClusterTopology::ClusterTopology(asio::any_io_executor ex, std::vector<Endpoint> seeds,
                                 ConnectOptions options, std::chrono::milliseconds interval,
                                 Callback on_update)
    : ex_(ex),
      seeds_(std::move(seeds)),
      candidates_(seeds_),
      options_(std::move(options)),
      interval_(interval),
      on_update_(std::move(on_update)),
      timer_(ex) {
  options_.select_db = false;
  options_.require_master = false;
}

void ClusterTopology::start() { asio::co_spawn(ex_, run(), asio::detached); }

void ClusterTopology::stop() {
  stopped_ = true;
  timer_.cancel();
}

void ClusterTopology::refresh_soon() {
  if (stopped_ || !waiting_) return;  // a fetch is under way already
  waiting_ = false;
  timer_.cancel();
}

asio::awaitable<void> ClusterTopology::run() {
  log::RateLimit limit(std::chrono::seconds(5));
  while (!stopped_) {
    last_fetch_ = Clock::now();
    auto const failed = co_await fetch();
    bool const ok = !failed;
    if (stopped_) break;
    if (failed) {
      log::warn_limited(limit, "cannot read the cluster topology from any node; retrying",
                        {{"reason", failed.reason}});
    }
    // Poll faster while the map is unknown; otherwise every interval, or sooner on demand.
    auto wait = ok ? interval_ : std::chrono::milliseconds(500);
    if (ok && degraded_ && degraded_()) wait = std::chrono::milliseconds(1000);
    timer_.expires_after(wait);
    waiting_ = true;
    co_await timer_.async_wait(use_tuple);
    waiting_ = false;
    if (stopped_) break;
    auto const earliest = last_fetch_ + min_spacing;
    if (Clock::now() < earliest) {
      timer_.expires_at(earliest);
      co_await timer_.async_wait(use_tuple);
    }
  }
}

asio::awaitable<Error> ClusterTopology::fetch() {
  std::string cmd;
  append_command(cmd, {"CLUSTER", "SLOTS"});
  Error last(errc::bad_reply, "no node to ask");
  for (auto const& node : candidates_) {
    RedisConnection conn(ex_);
    if (auto e = co_await conn.open(node, options_)) {
      last = std::move(e);
      continue;
    }
    auto reply = co_await conn.request(cmd, max_slots_reply);
    conn.close();
    if (!reply) {
      last = reply.error();
      continue;
    }
    auto parsed = SlotMap::parse(**reply, node.host);
    if (!parsed) {
      last = parsed.error();
      continue;
    }
    if (parsed->empty()) {
      last = Error(errc::bad_reply, node.to_string() + " answered CLUSTER SLOTS with no slot");
      continue;
    }
    auto const& map = *parsed;
    candidates_ = map.masters();
    for (auto const& s : seeds_) {
      if (std::find(candidates_.begin(), candidates_.end(), s) == candidates_.end()) {
        candidates_.push_back(s);
      }
    }
    on_update_(map);
    co_return Error{};
  }
  co_return last;
}

}  // namespace podrelay::redis
