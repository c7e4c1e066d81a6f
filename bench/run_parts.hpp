// Pieces of a pub/sub run shared by run_pubsub and the subscriber process: the sink that
// counts deliveries and records latencies, and the subscriber set-up.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "event_loop.hpp"
#include "pubsub_client.hpp"
#include "pubsub_run.hpp"

namespace bench {

// The payload starts with its send time (i64 ns, steady clock) and sequence number (u64).
inline constexpr std::size_t payload_header = 16;

// Counts deliveries of every subscriber of the run and records latencies.
class DeliverySink final : public MessageSink {
 public:
  DeliverySink(RunSpec const& spec, std::uint64_t expected) : spec_(spec), expected_(expected) {}

  void on_message(std::string_view payload) override;

  std::uint64_t delivered = 0;
  Clock::time_point last_delivery{};
  std::vector<std::int64_t> latencies_ns;

 private:
  RunSpec const& spec_;
  std::uint64_t expected_;
};

// Connects spec.subscribers subscriber connections (in batches, so no listen backlog
// overflows) and waits until each confirmed its subscription; throws after 30 s or when one
// failed.
std::vector<std::unique_ptr<PubSubClient>> connect_subscribers(EventLoop& loop, Environment& env,
                                                               RunSpec const& spec,
                                                               std::string const& channel,
                                                               MessageSink& sink);

std::unique_ptr<PubSubClient> make_client(EventLoop& loop, Environment& env, RunSpec const& spec,
                                          bool subscriber);

}  // namespace bench
