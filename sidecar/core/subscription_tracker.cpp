#include "core/subscription_tracker.hpp"

namespace podrelay::core {

bool SubscriptionTracker::want(SubKind kind, std::string const& name) {
  auto& e = entries_[Key{kind, name}];
  e.wanted = true;
  if (!connected_) return false;
  ++e.subscribes_in_flight;
  return true;
}

SubscriptionTracker::Unwanted SubscriptionTracker::unwant(SubKind kind, std::string const& name) {
  Unwanted out;
  auto const it = entries_.find(Key{kind, name});
  if (it == entries_.end()) return out;
  auto& e = it->second;
  e.wanted = false;
  out.released.swap(e.waiters);
  if (connected_) {
    ++e.unsubscribes_in_flight;
    out.send_unsubscribe = true;
  }
  erase_if_idle(it);
  return out;
}

bool SubscriptionTracker::active(SubKind kind, std::string const& name) const {
  auto const it = entries_.find(Key{kind, name});
  return it != entries_.end() && it->second.is_active();
}

void SubscriptionTracker::add_waiter(SubKind kind, std::string const& name, WaiterId waiter) {
  entries_[Key{kind, name}].waiters.push_back(waiter);
}

std::vector<SubscriptionTracker::WaiterId> SubscriptionTracker::on_confirmed(SubKind kind,
                                                                             std::string_view name,
                                                                             bool subscribed) {
  std::vector<WaiterId> released;
  auto const it = entries_.find(std::pair{kind, name});
  if (it == entries_.end()) return released;
  auto& e = it->second;
  if (subscribed) {
    if (e.subscribes_in_flight > 0) --e.subscribes_in_flight;
    e.confirmed = true;
  } else {
    if (e.unsubscribes_in_flight > 0) --e.unsubscribes_in_flight;
    e.confirmed = false;
  }
  if (e.is_active()) released.swap(e.waiters);
  erase_if_idle(it);
  return released;
}

std::vector<SubscriptionTracker::WaiterId> SubscriptionTracker::on_refused(
    SubKind kind, std::string const& name) {
  std::vector<WaiterId> waiters;
  auto const it = entries_.find(Key{kind, name});
  if (it == entries_.end()) return waiters;
  auto& e = it->second;
  if (e.subscribes_in_flight > 0) --e.subscribes_in_flight;
  e.wanted = false;
  e.confirmed = false;
  waiters.swap(e.waiters);
  erase_if_idle(it);
  return waiters;
}

void SubscriptionTracker::on_not_executed(SubKind kind, std::string const& name, bool subscribe) {
  auto const it = entries_.find(Key{kind, name});
  if (it == entries_.end()) return;
  auto& count = subscribe ? it->second.subscribes_in_flight : it->second.unsubscribes_in_flight;
  if (count > 0) --count;
  erase_if_idle(it);
}

std::vector<SubscriptionTracker::Command> SubscriptionTracker::on_connected() {
  connected_ = true;
  std::vector<Command> commands;
  for (auto& [key, e] : entries_) {
    if (!e.wanted) continue;
    e.subscribes_in_flight = 1;
    commands.push_back(Command{key.first, key.second});
  }
  return commands;
}

void SubscriptionTracker::on_disconnected() {
  connected_ = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto& e = it->second;
    e.confirmed = false;
    e.subscribes_in_flight = 0;
    e.unsubscribes_in_flight = 0;
    if (e.is_idle()) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<SubscriptionTracker::WaiterId> SubscriptionTracker::take_waiters(
    SubKind kind, std::string const& name) {
  std::vector<WaiterId> out;
  auto const it = entries_.find(Key{kind, name});
  if (it != entries_.end()) out.swap(it->second.waiters);
  return out;
}

bool SubscriptionTracker::orphaned(SubKind kind, std::string const& name) const {
  auto const it = entries_.find(Key{kind, name});
  if (it == entries_.end()) return false;
  auto const& e = it->second;
  return connected_ && e.wanted && !e.confirmed && e.subscribes_in_flight == 0 &&
         e.unsubscribes_in_flight == 0;
}

std::vector<std::string> SubscriptionTracker::wanted_names(SubKind kind) const {
  std::vector<std::string> out;
  for (auto const& [key, e] : entries_) {
    if (key.first == kind && e.wanted) out.push_back(key.second);
  }
  return out;
}

bool SubscriptionTracker::settled() const {
  if (!connected_) return false;
  for (auto const& [key, e] : entries_) {
    if (e.wanted && !e.is_active()) return false;
  }
  return true;
}

std::size_t SubscriptionTracker::wanted_count(SubKind kind) const {
  std::size_t n = 0;
  for (auto const& [key, e] : entries_) n += (key.first == kind && e.wanted) ? 1 : 0;
  return n;
}

std::size_t SubscriptionTracker::confirmed_count(SubKind kind) const {
  std::size_t n = 0;
  for (auto const& [key, e] : entries_) n += (key.first == kind && e.confirmed) ? 1 : 0;
  return n;
}

void SubscriptionTracker::erase_if_idle(std::map<Key, Entry, KeyLess>::iterator it) {
  if (it->second.is_idle()) entries_.erase(it);
}

}  // namespace podrelay::core
