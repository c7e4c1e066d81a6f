// One measured pub/sub run: N subscriber connections on one channel, one publisher, either
// straight to Redis or publisher -> sidecar "a" -> Redis -> sidecar "b" -> subscribers.
// Publishing is either paced at a fixed rate (fire and forget) or as fast as an end-to-end
// window allows (acked). Every message carries its send time and sequence number; the run
// counts deliveries, optionally records latencies, and reads CPU time of every process.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "clock.hpp"
#include "environment.hpp"

namespace bench {

enum class Path { direct, podrelay };
inline char const* path_name(Path p) { return p == Path::direct ? "direct" : "podrelay"; }

struct RunSpec {
  Path path = Path::direct;
  std::size_t payload_bytes = 64;  // at least 16 (timestamp + sequence)
  std::size_t subscribers = 1;
  std::uint64_t messages = 0;  // to publish
  // Paced mode when > 0: messages / rate seconds, fire and forget through podrelay.
  double rate = 0;
  // Window mode (rate == 0): at most `window` messages published but not yet delivered to
  // every subscriber (deliveries / subscribers); podrelay PUBs ask for acks.
  std::size_t window = 4096;
  // Messages with a sequence below this are warm-up: delivered and counted, no latency.
  std::uint64_t warmup_messages = 0;
  bool record_latency = false;
  // Paced mode only: the subscribers run in a process of their own (SubscriberProcess), as
  // the app that publishes and the app that subscribes do in production.
  bool separate_subscriber = false;
  // Podrelay path only: the apps reach their sidecars over Unix sockets (as two containers of
  // a pod can through a shared volume) instead of loopback TCP.
  bool unix_app_sockets = false;
  // Direct path only: each RESP client reaches Redis through a podrelay-bench-forwarder of its
  // own side ("a" publishes, "b" subscribes), the two-hop floor. Their CPU is reported under
  // "sidecar_a" and "sidecar_b", the places they stand in for.
  bool via_forwarders = false;
  double time_limit_s = 30;  // publish + drain, after the subscribers are set up
  // Called once the subscribers and the publisher are set up, right before the CPU readings
  // and the first publish, and after the run (last delivery or time limit) and its CPU
  // readings: e.g. to zero and read instruction counters. Outside the timed span.
  std::function<void()> before_publishing;
  std::function<void()> after_run;
};

struct RunResult {
  std::uint64_t published = 0;
  std::uint64_t acks = 0;
  std::uint64_t nacks = 0;
  std::uint64_t delivered = 0;
  std::uint64_t expected = 0;  // published * subscribers
  double elapsed_s = 0;        // first publish to last delivery (or to the time limit)
  double setup_s = 0;          // connecting and subscribing
  bool complete = false;
  std::vector<std::int64_t> latencies_ns;
  double max_send_lag_s = 0;            // paced mode: worst delay of a send behind its schedule
  std::map<std::string, double> cpu_s;  // "sidecar_a", "sidecar_b", "redis", "bench"
  std::vector<std::string> problems;    // disconnects, errors, incompleteness

  double deliveries_per_s() const { return elapsed_s > 0 ? delivered / elapsed_s : 0; }
  double messages_per_s() const {
    return elapsed_s > 0 && expected > 0 ? published * (double(delivered) / expected) / elapsed_s
                                         : 0;
  }
};

RunResult run_pubsub(Environment& env, RunSpec const& spec);

// Text summary of a run for logs, e.g. "podrelay 64B x1: 200000/200000 in 1.23s".
std::string describe(RunSpec const& spec, RunResult const& r);

}  // namespace bench
