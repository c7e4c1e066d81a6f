// The per-connection command state machine of the RESP front end: one argv in (from
// RequestParser), and out either the reply bytes it can give alone, or an Action for the
// session to carry out (publish, subscribe, unsubscribe, a PUBSUB query for Redis, reset,
// close). Sans-I/O: no sockets, no hub, no clock. Not thread-safe; one CommandMachine per
// connection, owned by its session; it borrows the Config, which must outlive it.
//
// Design note. The checks run in Redis 7.0's order (processCommand in src/server.c):
// a request named "POST" or "Host:" (HTTP sent to the Redis port) closes without a reply;
// then unknown command, unknown subcommand, wrong arity, NOAUTH, and in RESP2 with any
// subscription only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET. Each error text
// is Redis' own, except for commands podrelay does not carry (GET, SET, ...): those get
// "ERR podrelay supports only pub/sub commands: 'GET'" and the connection stays usable.
// The machine holds what Redis keeps per client that podrelay answers alone: protocol
// version, authentication, name, id, library name and version. Subscriptions live in the
// session (it shares them through the hub); it tells the counts back with
// set_subscriptions() after carrying out each Subscribe, Unsubscribe or Reset, before the
// next handle(), because they decide the RESP2 subscribed-mode rules and PING's form.
//
// Ordering: bytes appended to `out` answer this request, so the session writes them after
// every reply it still owes for earlier requests of the pipeline (a PUBLISH waiting for
// Redis, a PUBSUB query).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "resp_server/reply_writer.hpp"

namespace podrelay::resp_server {

struct Config {
  // The token apps must present (--auth-token-file). Unset: no authentication, and every
  // AUTH and HELLO AUTH is accepted. Set: `AUTH token`, `AUTH user token` and
  // `HELLO 3 AUTH user token` authenticate; the user name is not checked (podrelay has no
  // users; apps keep whatever user their Redis URL names).
  std::optional<std::string> auth_token;
  // What HELLO's "version" and INFO's redis_version say; clients read it for features.
  std::string redis_version = "7.0.15";
  // podrelay's own version, shown in INFO as podrelay_version.
  std::string podrelay_version;
  // False with Redis Cluster, where podrelay maps channels to shards and has no patterns:
  // PSUBSCRIBE then answers an error.
  bool patterns_allowed = true;
};

// What the session must do after handle(); views point into the argv handed to handle().
struct NoAction {};
// Send PUBLISH (or SPUBLISH when `sharded`) to Redis; later answer the request with Redis'
// integer (append_integer) or an error.
struct Publish {
  std::string_view channel;
  std::string_view payload;
  bool sharded = false;
};
// Subscribe to each name; for each, in order, append_subscribed(out, protocol(), kind, name,
// subscription_count(kind, ...)) with the counts after that name.
struct Subscribe {
  SubKind kind = SubKind::channel;
  std::span<std::string_view const> names;
};
// Unsubscribe each name (each answered like Subscribe, also a name that was not subscribed).
// No names: every subscription of `kind`, each confirmed; with none, one
// append_unsubscribed(out, protocol(), kind, std::nullopt, count).
struct Unsubscribe {
  SubKind kind = SubKind::channel;
  std::span<std::string_view const> names;
};
// PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP: `argv` is the whole request;
// forward it to Redis (prefix applied to names, removed from replies) and relay the reply.
struct PubsubQuery {
  std::span<std::string_view const> argv;
};
// RESET: drop every subscription of this connection without confirmations; `out` holds
// "+RESET".
struct Reset {};
// Write `out` (may be empty), then close the connection.
struct Close {};
using Action = std::variant<NoAction, Publish, Subscribe, Unsubscribe, PubsubQuery, Reset, Close>;

// ASCII case-insensitive equality, as Redis compares command and subcommand names.
bool iequals(std::string_view a, std::string_view b) noexcept;

enum class CommandId : std::uint8_t;  // command.cpp's table

class CommandMachine {
 public:
  struct Counts {
    std::int64_t channels = 0;
    std::int64_t patterns = 0;
    std::int64_t shards = 0;
    bool any() const noexcept { return channels > 0 || patterns > 0 || shards > 0; }
  };

  CommandMachine(Config const& config, std::int64_t client_id) noexcept;

  // Handles one request (argv[0] is the command, any case). Appends the reply bytes owed
  // now to `out` and returns what the session must do.
  Action handle(std::span<std::string_view const> argv, std::string& out);

  Protocol protocol() const noexcept { return protocol_; }
  bool authenticated() const noexcept { return authenticated_; }
  std::int64_t client_id() const noexcept { return client_id_; }
  std::string_view client_name() const noexcept { return name_; }
  std::string_view lib_name() const noexcept { return lib_name_; }
  std::string_view lib_version() const noexcept { return lib_version_; }

  Counts subscriptions() const noexcept { return counts_; }
  void set_subscriptions(Counts counts) noexcept { counts_ = counts; }
  // For CLIENT INFO's addr= and laddr= (e.g. "127.0.0.1:50412", "/run/podrelay.sock:0").
  void set_addresses(std::string_view peer, std::string_view local);

 private:
  struct Command;
  Action execute(Command const& cmd, std::span<std::string_view const> argv, std::string& out);
  void hello(std::span<std::string_view const> argv, std::string& out);
  void auth(std::span<std::string_view const> argv, std::string& out);
  void client(CommandId id, std::span<std::string_view const> argv, std::string& out);
  void command(CommandId id, std::span<std::string_view const> argv, std::string& out);
  void info(std::span<std::string_view const> argv, std::string& out);
  bool token_matches(std::string_view password) const noexcept;
  bool subscribed_resp2() const noexcept { return protocol_ == Protocol::resp2 && counts_.any(); }

  Config const& config_;
  std::int64_t client_id_;
  Protocol protocol_ = Protocol::resp2;
  bool authenticated_;
  std::string name_;
  std::string lib_name_;
  std::string lib_version_;
  std::string peer_address_;
  std::string local_address_;
  Counts counts_;
  // A MULTI was refused: until EXEC or DISCARD nothing runs (a client pipelines MULTI,
  // PUBLISH, EXEC; a PUBLISH run while its EXEC fails would be re-sent on a retry).
  bool refused_multi_ = false;
};

}  // namespace podrelay::resp_server
