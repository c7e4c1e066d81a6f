// What this pod wants to be subscribed to on Redis, what Redis has confirmed, and who waits
// for a confirmation. The relay tells it about wanted and unwanted names and about replies;
// it answers which commands to send and which waiting requests are satisfied. It re-derives
// every SUBSCRIBE after a reconnect. Sans-I/O, single-threaded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/sub_kind.hpp"

namespace podrelay::core {

class SubscriptionTracker {
 public:
  using WaiterId = std::uint64_t;
  struct Command {
    SubKind kind;
    std::string name;
  };
  struct Unwanted {
    bool send_unsubscribe = false;
    std::vector<WaiterId> released;  // requests that no longer need to wait
  };

  // The first local subscriber arrived. True: send SUBSCRIBE/PSUBSCRIBE now.
  bool want(SubKind kind, std::string const& name);
  // The last local subscriber left.
  Unwanted unwant(SubKind kind, std::string const& name);

  // Confirmed on Redis, with no command for it still in flight.
  bool active(SubKind kind, std::string const& name) const;
  // `waiter` is released by the confirmation that makes `name` active.
  void add_waiter(SubKind kind, std::string const& name, WaiterId waiter);

  // Moves the waiters of `name` out (when the name moves to another connection).
  std::vector<WaiterId> take_waiters(SubKind kind, std::string const& name);
  // Wanted, but Redis dropped it on its own (a cluster slot moved away) and nothing is in
  // flight: it must be subscribed again, possibly elsewhere.
  bool orphaned(SubKind kind, std::string const& name) const;
  // Every wanted name of one kind.
  std::vector<std::string> wanted_names(SubKind kind) const;

  // Redis confirmed a (p)subscribe (`subscribed`) or a (p)unsubscribe of `name`.
  std::vector<WaiterId> on_confirmed(SubKind kind, std::string_view name, bool subscribed);
  // Redis refused the (p)subscribe of `name` (e.g. an ACL NOPERM): it is no longer wanted.
  // Returns the waiters, whose requests fail.
  std::vector<WaiterId> on_refused(SubKind kind, std::string const& name);
  // A command for `name` was answered without effect (a cluster MOVED): nothing is in flight
  // for it any more, so it is orphaned() until subscribed again.
  void on_not_executed(SubKind kind, std::string const& name, bool subscribe);

  // The connection is up: every wanted name must be subscribed again.
  std::vector<Command> on_connected();
  void on_disconnected();

  bool connected() const noexcept { return connected_; }
  // Connected, and every wanted name confirmed with nothing in flight.
  bool settled() const;
  std::size_t wanted_count(SubKind kind) const;
  std::size_t confirmed_count(SubKind kind) const;

 private:
  struct Entry {
    bool wanted = false;
    bool confirmed = false;
    int subscribes_in_flight = 0;
    int unsubscribes_in_flight = 0;
    std::vector<WaiterId> waiters;
    bool is_active() const {
      return wanted && confirmed && subscribes_in_flight == 0 && unsubscribes_in_flight == 0;
    }
    bool is_idle() const {
      return !wanted && subscribes_in_flight == 0 && unsubscribes_in_flight == 0 && waiters.empty();
    }
  };
  using Key = std::pair<SubKind, std::string>;
  struct KeyLess {
    using is_transparent = void;
    bool operator()(Key const& a, Key const& b) const { return a < b; }
    bool operator()(Key const& a, std::pair<SubKind, std::string_view> const& b) const {
      return a.first < b.first || (a.first == b.first && std::string_view(a.second) < b.second);
    }
    bool operator()(std::pair<SubKind, std::string_view> const& a, Key const& b) const {
      return a.first < b.first || (a.first == b.first && a.second < std::string_view(b.second));
    }
  };
  void erase_if_idle(std::map<Key, Entry, KeyLess>::iterator it);

  std::map<Key, Entry, KeyLess> entries_;
  bool connected_ = false;
};

}  // namespace podrelay::core
