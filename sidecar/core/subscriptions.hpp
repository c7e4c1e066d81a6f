// Who is subscribed to what, in one place: the local receivers of every Redis channel and
// pattern (the hub), each receiver's own set, which Redis link (shard) holds each name,
// what each link has confirmed, and the SUB-family requests still waiting for Redis.
//
// Every event (a receiver subscribes, unsubscribes or goes away; a link connects, loses
// its connection, confirms or refuses a command; the cluster topology changes) returns the
// Effects it causes: the (P)SUBSCRIBE/(P)UNSUBSCRIBE commands to send, batched per shard and
// kind, and the replies owed to receivers, always in each receiver's request order. The
// caller only carries them out. Sans-I/O and single-threaded, step-tested like Boost.Redis'
// state machines. Names here are Redis names (the channel prefix already applied), so
// receivers of every app protocol share one Redis subscription per name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/hub.hpp"
#include "core/subscription_tracker.hpp"
#include "proto/error_code.hpp"
#include "util/fifo.hpp"

namespace podrelay::core {

using ShardId = std::size_t;

class Subscriptions {
 public:
  // The shard that owns a Redis channel now (cluster: by slot; otherwise always 0).
  // Patterns always live on shard 0.
  using Router = std::function<ShardId(std::string_view redis_channel)>;

  struct Options {
    std::size_t max_per_receiver = 10000;  // distinct channels + patterns of one receiver
    bool patterns_allowed = true;          // false on Redis Cluster (no sharded PSUBSCRIBE)
    // Bytes of those names together (each costs a few times its length in the hub, the
    // tracker and the receiver's own set): bounds a connection's memory, not only its count.
    std::size_t max_name_bytes_per_receiver = std::size_t{4} * 1024 * 1024;
  };
  struct Command {
    ShardId shard = 0;
    SubKind kind = SubKind::channel;
    bool subscribe = true;
    std::vector<std::string> names;
  };
  struct Reply {
    Receiver* receiver = nullptr;
    std::uint32_t request_id = 0;
    std::optional<proto::ErrorCode> error;
    std::string text;
  };
  struct Effects {
    std::vector<Command> commands;
    std::vector<Reply> replies;
  };

  Subscriptions(Options options, Router route);

  // Receivers attach before their first request and detach when they go away; detaching
  // releases every subscription and drops the replies still owed (nobody is listening).
  void attach(Receiver& r);
  Effects detach(Receiver& r);
  bool attached(Receiver const& r) const { return receivers_.contains(&r); }
  // The local receivers of `name` (a copy: callers may detach them while walking it).
  std::vector<Receiver*> receivers(SubKind kind, std::string_view name) const {
    return hub_.receivers(kind, name);
  }

  // SUB/PSUB: answered once Redis confirmed every name the request added (at once when all
  // already are); refused as a whole (nothing applied) when it is empty, would take the
  // receiver over max_per_receiver distinct names or max_name_bytes_per_receiver bytes of
  // names, or asks for patterns where there are none.
  Effects subscribe(Receiver& r, SubKind kind, std::uint32_t request_id,
                    std::vector<std::string> const& names);
  // UNSUB/PUNSUB: takes effect at once (empty list: every name of the kind); answered OK in
  // request order.
  Effects unsubscribe(Receiver& r, SubKind kind, std::uint32_t request_id,
                      std::vector<std::string> const& names);
  // A request the caller refuses itself (draining, empty pattern), answered in order.
  Effects reject(Receiver& r, std::uint32_t request_id, proto::ErrorCode code, std::string text);

  // From the shards' subscriber links.
  Effects on_connected(ShardId shard);
  void on_disconnected(ShardId shard);
  Effects on_confirmed(ShardId shard, SubKind kind, std::string_view name, bool subscribed);
  // Redis answered a (P)SUBSCRIBE with an error: every request waiting for one of `names`
  // fails with SUBSCRIBE_REFUSED and Redis' text, and is rolled back; nothing stays half
  // subscribed.
  Effects on_refused(ShardId shard, SubKind kind, std::vector<std::string> const& names,
                     std::string_view text);
  // A command was answered without effect (MOVED): its names wait for the next topology.
  void on_not_executed(ShardId shard, SubKind kind, std::vector<std::string> const& names,
                       bool subscribe);
  // The router's answers changed: channels follow their slot to the new owner, and names
  // Redis dropped by itself (a slot moved away) are subscribed again.
  Effects on_topology_changed();

  // Fan-out of one message to the receivers of `name`; returns how many got it.
  std::size_t deliver(SubKind kind, std::string_view name, Delivery& message) const {
    return hub_.deliver(kind, name, message);
  }
  // `r` holds a subscription of `name` (one hash lookup in its own names).
  bool has(SubKind kind, std::string_view name, Receiver const& r) const;
  std::size_t receiver_count(SubKind kind, std::string_view name) const {
    return hub_.receiver_count(kind, name);
  }
  // Redis confirmed `name` on `shard`, and no command for it is in flight.
  bool active(ShardId shard, SubKind kind, std::string const& name) const {
    return shard < trackers_.size() && trackers_[shard].active(kind, name);
  }

  std::size_t held(Receiver const& r) const;             // distinct names of one receiver
  std::size_t held_name_bytes(Receiver const& r) const;  // their bytes together
  std::vector<std::string> names(Receiver const& r, SubKind kind) const;
  std::size_t local_subscription_count(SubKind kind) const { return hub_.subscription_count(kind); }
  bool settled(ShardId shard) const;  // connected, every wanted name confirmed
  bool orphaned(ShardId shard, SubKind kind, std::string const& name) const;
  std::size_t wanted_count(ShardId shard, SubKind kind) const;
  std::size_t confirmed_count(SubKind kind) const;  // over every shard

 private:
  using WaiterId = SubscriptionTracker::WaiterId;
  struct Request {
    std::uint32_t id = 0;
    WaiterId waiter = 0;  // 0: nothing to wait for
    std::size_t remaining = 0;
    bool done = false;
    std::optional<proto::ErrorCode> error;
    std::string text;
    SubKind kind = SubKind::channel;
    std::vector<std::string> added;  // names this request added, for a rollback
  };
  struct ReceiverState {
    std::unordered_set<std::string, StringHash, std::equal_to<>> channels;
    std::unordered_set<std::string, StringHash, std::equal_to<>> patterns;
    util::Fifo<Request> requests;
    std::size_t name_bytes = 0;  // of every name in channels and patterns
    auto& names(SubKind kind) { return kind == SubKind::channel ? channels : patterns; }
    bool add(SubKind kind, std::string const& name) {
      if (!names(kind).insert(name).second) return false;
      name_bytes += name.size();
      return true;
    }
    bool remove(SubKind kind, std::string const& name) {
      if (names(kind).erase(name) == 0) return false;
      name_bytes -= name.size();
      return true;
    }
  };

  ReceiverState& state(Receiver& r);
  SubscriptionTracker& tracker(ShardId shard);
  ShardId holder(SubKind kind, std::string_view name) const;
  Effects answer(Receiver& r, Request request);
  void release(Receiver& r, SubKind kind, std::string const& name, Effects& fx);
  void release_waiters(std::vector<WaiterId> const& ids, Effects& fx);
  void fail(WaiterId id, proto::ErrorCode code, std::string_view text, Effects& fx);
  void flush(Receiver& r, ReceiverState& st, Effects& fx);
  static void add_command(Effects& fx, ShardId shard, SubKind kind, bool subscribe,
                          std::string name);

  Options options_;
  Router route_;
  Hub hub_;
  std::deque<SubscriptionTracker> trackers_;  // by ShardId; grows (references stay valid)
  std::unordered_map<std::string, ShardId, StringHash, std::equal_to<>> placement_;  // channels
  std::unordered_map<Receiver const*, ReceiverState> receivers_;
  std::unordered_map<WaiterId, Receiver*> waiters_;
  WaiterId next_waiter_ = 1;
};

}  // namespace podrelay::core
