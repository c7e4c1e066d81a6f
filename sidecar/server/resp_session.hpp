// One app connection on the Redis protocol (--resp-listen): an app's own Redis client
// (ioredis, node-redis, redis-py, redis-rb, ...) points at the sidecar instead of Redis. The
// sans-I/O resp_server parser and command machine do the protocol; this class carries out
// their actions on the relay (PUBLISH, (P|S)SUBSCRIBE, PUBSUB queries forwarded to Redis)
// and keeps Redis' rule that every reply leaves in request order: a reply that must wait
// (a PUBLISH for Redis' answer, a SUBSCRIBE for Redis' confirmation) holds back the replies
// of later requests, never the pushes of messages. Used only from the io_context thread.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>

#include "resp_server/command.hpp"
#include "resp_server/request_parser.hpp"
#include "server/connection.hpp"
#include "util/fifo.hpp"

namespace podrelay::server {

class RespSession final : public Connection {
 public:
  RespSession(Socket socket, Relay& relay, std::uint64_t id, std::string peer);

  bool deliver(core::Delivery& message) override;
  void on_subscription_reply(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                             std::string_view text) override;
  void on_publish_outcome(std::uint32_t request_id, std::optional<proto::ErrorCode> error,
                          std::string_view text, redisReply const* reply) override;

 private:
  // A reply owed, in request order; `ready` once its bytes are known.
  struct Pending {
    std::uint32_t id = 0;  // 0: nothing to wait for
    bool ready = false;
    bool discard = false;  // RESET's silent unsubscribes
    bool query = false;    // a PUBSUB reply to relay
    std::string bytes;
  };

  std::span<char> read_space(std::size_t at_least) override { return parser_.prepare(at_least); }
  std::size_t read_buffered() const noexcept override { return parser_.buffered(); }
  void read_idle(std::size_t keep) override { parser_.shrink_if_idle(keep); }
  void read_done() override { parser_ = resp_server::RequestParser(parser_.limits()); }
  void on_started() override;
  bool on_read(std::size_t n) override;
  bool owes_replies() const noexcept override { return !pending_.empty(); }
  void on_half_closed() override;
  // Redis has no goodbye message: the connection just closes (clients reconnect).
  void append_goaway(std::string&, proto::ErrorCode, std::string_view) override {}

  // Returns false when the connection must stop reading (QUIT).
  bool carry_out(resp_server::Action const& action, std::string& out);
  void subscribe(resp_server::SubKind kind, std::span<std::string_view const> names,
                 std::string& out);
  void unsubscribe(resp_server::SubKind kind, std::span<std::string_view const> names,
                   std::string& out);
  void query(std::span<std::string_view const> argv);
  void reset();
  void emit(std::string bytes);
  std::uint32_t wait_for(bool query = false);
  void flush();
  void sync_counts();
  std::string error_reply(proto::ErrorCode code, std::string_view text) const;

  resp_server::RequestParser parser_;
  resp_server::CommandMachine machine_;
  util::Fifo<Pending> pending_;
  std::unordered_set<std::string> shard_names_;  // app names held through SSUBSCRIBE
  std::uint32_t next_id_ = 1;
  bool eof_ = false;
};

}  // namespace podrelay::server
