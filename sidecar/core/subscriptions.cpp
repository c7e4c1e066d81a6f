#include "core/subscriptions.hpp"

#include <algorithm>
#include <utility>

namespace podrelay::core {

using proto::ErrorCode;

Subscriptions::Subscriptions(Options options, Router route)
    : options_(options), route_(std::move(route)) {}

void Subscriptions::attach(Receiver& r) { receivers_.try_emplace(&r); }

Subscriptions::ReceiverState& Subscriptions::state(Receiver& r) {
  return receivers_.try_emplace(&r).first->second;
}

SubscriptionTracker& Subscriptions::tracker(ShardId shard) {
  if (shard >= trackers_.size()) trackers_.resize(shard + 1);
  return trackers_[shard];
}

ShardId Subscriptions::holder(SubKind kind, std::string_view name) const {
  if (kind == SubKind::pattern) return 0;
  auto const it = placement_.find(name);
  return it != placement_.end() ? it->second : route_(name);
}

void Subscriptions::add_command(Effects& fx, ShardId shard, SubKind kind, bool subscribe,
                                std::string name) {
  // Join the latest command for this shard and kind when it goes the same way; a command
  // the other way in between keeps its place, so the order on the link stays the order of
  // the events.
  for (auto it = fx.commands.rbegin(); it != fx.commands.rend(); ++it) {
    if (it->shard != shard || it->kind != kind) continue;
    if (it->subscribe == subscribe) {
      it->names.push_back(std::move(name));
      return;
    }
    break;
  }
  fx.commands.push_back(Command{shard, kind, subscribe, {std::move(name)}});
}

Subscriptions::Effects Subscriptions::detach(Receiver& r) {
  Effects fx;
  auto const it = receivers_.find(&r);
  if (it == receivers_.end()) return fx;
  auto st = std::move(it->second);
  receivers_.erase(it);
  for (auto const& req : st.requests) {
    if (req.waiter != 0) waiters_.erase(req.waiter);
  }
  for (auto const kind : {SubKind::channel, SubKind::pattern}) {
    for (auto const& name : st.names(kind)) release(r, kind, name, fx);
  }
  return fx;
}

Subscriptions::Effects Subscriptions::answer(Receiver& r, Request request) {
  Effects fx;
  auto& st = state(r);
  st.requests.push_back(std::move(request));
  flush(r, st, fx);
  return fx;
}

Subscriptions::Effects Subscriptions::reject(Receiver& r, std::uint32_t request_id, ErrorCode code,
                                             std::string text) {
  Request req;
  req.id = request_id;
  req.done = true;
  req.error = code;
  req.text = std::move(text);
  return answer(r, std::move(req));
}

Subscriptions::Effects Subscriptions::subscribe(Receiver& r, SubKind kind, std::uint32_t request_id,
                                                std::vector<std::string> const& names) {
  if (names.empty())
    return reject(r, request_id, ErrorCode::invalid_argument, "empty list of names");
  if (kind == SubKind::pattern && !options_.patterns_allowed) {
    return reject(r, request_id, ErrorCode::not_supported,
                  "pattern subscriptions are not available on Redis Cluster (sharded pub/sub "
                  "has no PSUBSCRIBE)");
  }
  auto& st = state(r);
  auto& mine = st.names(kind);
  // Only names the receiver does not hold yet count against its limits, each once.
  std::unordered_set<std::string_view> fresh;
  std::size_t fresh_bytes = 0;
  for (auto const& n : names) {
    if (!mine.contains(n) && fresh.insert(n).second) fresh_bytes += n.size();
  }
  if (held(r) + fresh.size() > options_.max_per_receiver) {
    return reject(r, request_id, ErrorCode::too_many_subscriptions,
                  "more than --max-subscriptions (" + std::to_string(options_.max_per_receiver) +
                      ") on one connection");
  }
  if (st.name_bytes + fresh_bytes > options_.max_name_bytes_per_receiver) {
    return reject(r, request_id, ErrorCode::too_many_subscriptions,
                  "the names subscribed on one connection would take more than "
                  "--max-subscription-bytes (" +
                      std::to_string(options_.max_name_bytes_per_receiver) + " bytes)");
  }
  Effects fx;
  Request req;
  req.id = request_id;
  req.kind = kind;
  req.waiter = next_waiter_++;
  for (auto const& name : names) {
    if (!st.add(kind, name)) continue;  // held already, or twice in this request
    req.added.push_back(name);
    bool const first = hub_.subscribe(kind, name, &r);
    ShardId shard = 0;
    if (kind == SubKind::channel) {
      shard = first ? route_(name) : placement_.at(name);
      if (first) placement_[name] = shard;
    }
    auto& t = tracker(shard);
    if (first && t.want(kind, name)) add_command(fx, shard, kind, true, name);
    if (!t.active(kind, name)) {
      t.add_waiter(kind, name, req.waiter);
      ++req.remaining;
    }
  }
  if (req.remaining == 0) {
    req.done = true;
    req.waiter = 0;
  } else {
    waiters_.emplace(req.waiter, &r);
  }
  st.requests.push_back(std::move(req));
  flush(r, st, fx);
  return fx;
}

Subscriptions::Effects Subscriptions::unsubscribe(Receiver& r, SubKind kind,
                                                  std::uint32_t request_id,
                                                  std::vector<std::string> const& names) {
  Effects fx;
  auto& st = state(r);
  auto& mine = st.names(kind);
  if (names.empty()) {
    auto all = std::move(mine);
    mine.clear();
    for (auto const& name : all) {
      st.name_bytes -= name.size();
      release(r, kind, name, fx);
    }
  } else {
    for (auto const& name : names) {
      if (st.remove(kind, name)) release(r, kind, name, fx);
    }
  }
  Request req;
  req.id = request_id;
  req.done = true;
  st.requests.push_back(std::move(req));
  flush(r, st, fx);
  return fx;
}

void Subscriptions::release(Receiver& r, SubKind kind, std::string const& name, Effects& fx) {
  if (!hub_.unsubscribe(kind, name, &r)) return;
  auto const shard = holder(kind, name);
  auto unwanted = tracker(shard).unwant(kind, name);
  if (kind == SubKind::channel) placement_.erase(name);
  if (unwanted.send_unsubscribe) add_command(fx, shard, kind, false, name);
  release_waiters(unwanted.released, fx);
}

void Subscriptions::release_waiters(std::vector<WaiterId> const& ids, Effects& fx) {
  for (auto const id : ids) {
    auto const w = waiters_.find(id);
    if (w == waiters_.end()) continue;  // failed or detached meanwhile
    auto* r = w->second;
    auto& st = state(*r);
    auto const req = std::find_if(st.requests.begin(), st.requests.end(),
                                  [id](Request const& q) { return q.waiter == id; });
    if (req == st.requests.end() || --req->remaining > 0) continue;
    req->done = true;
    waiters_.erase(w);
    flush(*r, st, fx);
  }
}

void Subscriptions::fail(WaiterId id, ErrorCode code, std::string_view text, Effects& fx) {
  auto const w = waiters_.find(id);
  if (w == waiters_.end()) return;
  auto* r = w->second;
  waiters_.erase(w);
  auto& st = state(*r);
  auto const req = std::find_if(st.requests.begin(), st.requests.end(),
                                [id](Request const& q) { return q.waiter == id; });
  if (req == st.requests.end()) return;
  req->done = true;
  req->error = code;
  req->text = std::string(text);
  // Taken out first: a rollback can answer (and pop) other requests of this receiver.
  auto const kind = req->kind;
  auto const added = std::move(req->added);
  for (auto const& name : added) {
    if (st.remove(kind, name)) release(*r, kind, name, fx);
  }
  flush(*r, st, fx);
}

void Subscriptions::flush(Receiver& r, ReceiverState& st, Effects& fx) {
  while (!st.requests.empty() && st.requests.front().done) {
    auto& q = st.requests.front();
    fx.replies.push_back(Reply{&r, q.id, q.error, std::move(q.text)});
    st.requests.pop_front();
  }
}

Subscriptions::Effects Subscriptions::on_connected(ShardId shard) {
  Effects fx;
  for (auto& cmd : tracker(shard).on_connected()) {
    add_command(fx, shard, cmd.kind, true, std::move(cmd.name));
  }
  return fx;
}

void Subscriptions::on_disconnected(ShardId shard) { tracker(shard).on_disconnected(); }

Subscriptions::Effects Subscriptions::on_confirmed(ShardId shard, SubKind kind,
                                                   std::string_view name, bool subscribed) {
  Effects fx;
  release_waiters(tracker(shard).on_confirmed(kind, name, subscribed), fx);
  return fx;
}

Subscriptions::Effects Subscriptions::on_refused(ShardId shard, SubKind kind,
                                                 std::vector<std::string> const& names,
                                                 std::string_view text) {
  Effects fx;
  auto const reason = "Redis refused the subscription: " + std::string(text);
  // Every name of the command first, so rolling back one request does not UNSUBSCRIBE a
  // name of the same refused command.
  std::vector<WaiterId> failed;
  for (auto const& name : names) {
    for (auto const id : tracker(shard).on_refused(kind, name)) failed.push_back(id);
  }
  for (auto const id : failed) fail(id, ErrorCode::subscribe_refused, reason, fx);
  // Whoever still holds a name (it was refused on a re-subscribe after a reconnect) loses it
  // too: a subscription Redis will not carry must not look alive.
  for (auto const& name : names) {
    for (auto* r : hub_.receivers(kind, name)) {
      if (state(*r).remove(kind, name)) release(*r, kind, name, fx);
    }
  }
  return fx;
}

void Subscriptions::on_not_executed(ShardId shard, SubKind kind,
                                    std::vector<std::string> const& names, bool subscribe) {
  for (auto const& name : names) tracker(shard).on_not_executed(kind, name, subscribe);
}

Subscriptions::Effects Subscriptions::on_topology_changed() {
  Effects fx;
  std::vector<std::pair<std::string, ShardId>> moves;
  for (auto const& [name, shard] : placement_) {
    auto const owner = route_(name);
    if (owner != shard) {
      moves.emplace_back(name, owner);
    } else if (tracker(shard).orphaned(SubKind::channel, name) &&
               tracker(shard).want(SubKind::channel, name)) {
      add_command(fx, shard, SubKind::channel, true, name);
    }
  }
  for (auto& [name, to] : moves) {
    auto& from_shard = placement_.at(name);
    auto& from = tracker(from_shard);
    auto waiters = from.take_waiters(SubKind::channel, name);
    if (from.unwant(SubKind::channel, name).send_unsubscribe) {
      add_command(fx, from_shard, SubKind::channel, false, name);
    }
    auto& dest = tracker(to);
    if (dest.want(SubKind::channel, name)) add_command(fx, to, SubKind::channel, true, name);
    for (auto const w : waiters) dest.add_waiter(SubKind::channel, name, w);
    from_shard = to;
  }
  return fx;
}

std::size_t Subscriptions::held(Receiver const& r) const {
  auto const it = receivers_.find(&r);
  return it == receivers_.end() ? 0 : it->second.channels.size() + it->second.patterns.size();
}

std::size_t Subscriptions::held_name_bytes(Receiver const& r) const {
  auto const it = receivers_.find(&r);
  return it == receivers_.end() ? 0 : it->second.name_bytes;
}

bool Subscriptions::has(SubKind kind, std::string_view name, Receiver const& r) const {
  auto const it = receivers_.find(&r);
  if (it == receivers_.end()) return false;
  auto const& set = kind == SubKind::channel ? it->second.channels : it->second.patterns;
  return set.contains(name);
}

std::vector<std::string> Subscriptions::names(Receiver const& r, SubKind kind) const {
  auto const it = receivers_.find(&r);
  if (it == receivers_.end()) return {};
  auto const& set = kind == SubKind::channel ? it->second.channels : it->second.patterns;
  return {set.begin(), set.end()};
}

bool Subscriptions::settled(ShardId shard) const {
  return shard < trackers_.size() ? trackers_[shard].settled() : false;
}

bool Subscriptions::orphaned(ShardId shard, SubKind kind, std::string const& name) const {
  return shard < trackers_.size() && trackers_[shard].orphaned(kind, name);
}

std::size_t Subscriptions::wanted_count(ShardId shard, SubKind kind) const {
  return shard < trackers_.size() ? trackers_[shard].wanted_count(kind) : 0;
}

std::size_t Subscriptions::confirmed_count(SubKind kind) const {
  std::size_t n = 0;
  for (auto const& t : trackers_) n += t.confirmed_count(kind);
  return n;
}

}  // namespace podrelay::core
