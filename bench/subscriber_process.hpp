// The subscribers of a run in a process of their own, as they are in production (the app
// that publishes and the app that subscribes are different pods). With publisher and
// subscriber in one bench process, Redis' writes of a message and of its PUBLISH reply wake
// one process; with two they wake two, which is what the podrelay path (and two pods) cost.
//
// The child is forked before the parent opens any connection of the run. It connects and
// subscribes its subscribers, says ready, counts deliveries (and records latencies: the
// payload's send time is CLOCK_MONOTONIC, the same clock in every process), says done when
// every expected delivery arrived, and on the parent's word (its control pipe closing) sends
// its counts and exits. Paced runs only: the window mode needs live delivery counts.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "event_loop.hpp"
#include "pubsub_run.hpp"

namespace bench {

class SubscriberProcess final : public EventLoop::Handler {
 public:
  struct Result {
    std::uint64_t delivered = 0;
    std::int64_t last_delivery_ns = 0;  // steady clock; 0 if nothing arrived
    std::vector<std::int64_t> latencies_ns;
  };

  // Forks; returns once every subscriber is confirmed (throws on failure or after 30 s).
  SubscriberProcess(Environment& env, RunSpec const& spec, std::string const& channel);
  ~SubscriberProcess();
  SubscriberProcess(SubscriberProcess const&) = delete;
  SubscriberProcess& operator=(SubscriberProcess const&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // Wakes `loop` when the child reports that every expected delivery arrived.
  void watch(EventLoop& loop);
  bool all_delivered() const noexcept { return done_; }
  // Tells the child to stop and collects its counts (the child then exits).
  Result finish();

  void on_ready(std::uint32_t events) override;

 private:
  pid_t pid_ = -1;
  int control_ = -1;  // parent -> child; closing it ends the child's run
  int report_ = -1;   // child -> parent: 'R', 'D', then the result; 'E' + text on failure
  EventLoop* loop_ = nullptr;
  bool done_ = false;
};

}  // namespace bench
