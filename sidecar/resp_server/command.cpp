#include "resp_server/command.hpp"

#include "resp_server/request_parser.hpp"

#include <cctype>
#include <climits>

namespace podrelay::resp_server {

enum class CommandId : std::uint8_t {
  auth,
  client,
  command,
  echo,
  hello,
  info,
  ping,
  publish,
  pubsub,
  psubscribe,
  punsubscribe,
  quit,
  reset,
  select,
  spublish,
  ssubscribe,
  subscribe,
  sunsubscribe,
  unsubscribe,
  // Subcommands.
  client_getname,
  client_help,
  client_id,
  client_info,
  client_no_evict,
  client_no_touch,
  client_setinfo,
  client_setname,
  command_count,
  command_docs,
  command_help,
  command_info,
  command_list,
  pubsub_any,
};

namespace {
constexpr std::uint8_t no_auth = 1;        // allowed before authentication
constexpr std::uint8_t in_subscribed = 2;  // allowed in RESP2 with subscriptions
}  // namespace

// Redis' command table, reduced to what podrelay answers: the lowercase name Redis reports
// in errors ("client|setname"), the arity (negative: at least that many), the flags.
struct CommandMachine::Command {
  std::string_view name;
  int arity;
  CommandId id;
  std::uint8_t flags = 0;
};

namespace {

struct Entry {
  std::string_view name;
  int arity;
  CommandId id;
  std::uint8_t flags;
};

constexpr Entry commands[] = {
    {"auth", -2, CommandId::auth, no_auth},
    {"client", -2, CommandId::client, 0},
    {"command", -1, CommandId::command, 0},
    {"echo", 2, CommandId::echo, 0},
    {"hello", -1, CommandId::hello, no_auth},
    {"info", -1, CommandId::info, 0},
    {"ping", -1, CommandId::ping, in_subscribed},
    {"psubscribe", -2, CommandId::psubscribe, in_subscribed},
    {"publish", 3, CommandId::publish, 0},
    {"pubsub", -2, CommandId::pubsub, 0},
    {"punsubscribe", -1, CommandId::punsubscribe, in_subscribed},
    {"quit", -1, CommandId::quit, no_auth | in_subscribed},
    {"reset", 1, CommandId::reset, no_auth | in_subscribed},
    {"select", 2, CommandId::select, 0},
    {"spublish", 3, CommandId::spublish, 0},
    {"ssubscribe", -2, CommandId::ssubscribe, in_subscribed},
    {"subscribe", -2, CommandId::subscribe, in_subscribed},
    {"sunsubscribe", -1, CommandId::sunsubscribe, in_subscribed},
    {"unsubscribe", -1, CommandId::unsubscribe, in_subscribed},
};

constexpr Entry client_subcommands[] = {
    {"client|getname", 2, CommandId::client_getname, 0},
    {"client|help", 2, CommandId::client_help, 0},
    {"client|id", 2, CommandId::client_id, 0},
    {"client|info", 2, CommandId::client_info, 0},
    {"client|no-evict", 3, CommandId::client_no_evict, 0},
    {"client|no-touch", 3, CommandId::client_no_touch, 0},
    {"client|setinfo", 4, CommandId::client_setinfo, 0},
    {"client|setname", 3, CommandId::client_setname, 0},
};

constexpr Entry command_subcommands[] = {
    {"command|count", 2, CommandId::command_count, 0},
    {"command|docs", -2, CommandId::command_docs, 0},
    {"command|help", 2, CommandId::command_help, 0},
    {"command|info", -2, CommandId::command_info, 0},
    {"command|list", -2, CommandId::command_list, 0},
};

constexpr Entry pubsub_subcommands[] = {
    {"pubsub|channels", -2, CommandId::pubsub_any, 0},
    {"pubsub|help", 2, CommandId::pubsub_any, 0},
    {"pubsub|numpat", 2, CommandId::pubsub_any, 0},
    {"pubsub|numsub", -2, CommandId::pubsub_any, 0},
    {"pubsub|shardchannels", -2, CommandId::pubsub_any, 0},
    {"pubsub|shardnumsub", -2, CommandId::pubsub_any, 0},
};

// `name` without its "container|" part.
std::string_view short_name(std::string_view name) noexcept {
  auto const bar = name.find('|');
  return bar == std::string_view::npos ? name : name.substr(bar + 1);
}

template <std::size_t N>
Entry const* lookup(Entry const (&table)[N], std::string_view name) noexcept {
  for (auto const& e : table)
    if (iequals(short_name(e.name), name)) return &e;
  return nullptr;
}

// "%.128s" of a C string: at most 128 bytes, up to the first NUL.
std::string_view c_string_128(std::string_view s) noexcept {
  s = s.substr(0, s.find('\0'));
  return s.substr(0, 128);
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void append_error_text(std::string& out, std::initializer_list<std::string_view> parts) {
  std::string text;
  for (auto const p : parts) text.append(p);
  append_error(out, text);
}

void arity_error(std::string& out, std::string_view fullname) {
  append_error_text(out, {"ERR wrong number of arguments for '", fullname, "' command"});
}

void context_error(std::string& out, std::string_view fullname) {
  append_error_text(out, {"ERR Can't execute '", fullname,
                          "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                          "allowed in this context"});
}

constexpr std::string_view noauth_error = "NOAUTH Authentication required.";
constexpr std::string_view wrongpass_error =
    "WRONGPASS invalid username-password pair or user is disabled.";
constexpr std::string_view syntax_error = "ERR syntax error";
constexpr std::string_view bad_name_error =
    "ERR Client names cannot contain spaces, newlines or special characters.";

// CLIENT LIST must stay splittable by spaces: names are printable ASCII without spaces.
bool valid_client_attr(std::string_view s) noexcept {
  for (char const c : s)
    if (c < '!' || c > '~') return false;
  return true;
}

void append_help(std::string& out, std::string_view container,
                 std::initializer_list<std::string_view> lines) {
  append_array_header(out, lines.size() + 1);
  std::string head(container);
  head.append(" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
  append_simple(out, head);
  for (auto const l : lines) append_simple(out, l);
}

}  // namespace

CommandMachine::CommandMachine(Config const& config, std::int64_t client_id) noexcept
    : config_(config), client_id_(client_id), authenticated_(!config.auth_token) {}

void CommandMachine::set_addresses(std::string_view peer, std::string_view local) {
  peer_address_ = peer;
  local_address_ = local;
}

Action CommandMachine::handle(std::span<std::string_view const> argv, std::string& out) {
  if (argv.empty()) return NoAction{};
  auto const name = argv[0];
  // Redis' answer to HTTP on its port (securityWarningCommand): close, say nothing.
  if (iequals(name, "post") || iequals(name, "host:")) return Close{};

  if (refused_multi_) {
    // The commands of a transaction podrelay refused are not run, and its EXEC fails as
    // Redis' does after a command could not be queued.
    if (iequals(name, "exec") || iequals(name, "discard")) {
      refused_multi_ = false;
      if (iequals(name, "discard")) {
        append_simple(out, "OK");
      } else {
        append_error_text(out, {"EXECABORT Transaction discarded because of previous errors "
                                "(podrelay supports only pub/sub commands, not MULTI)"});
      }
      return NoAction{};
    }
    if (!iequals(name, "reset") && !iequals(name, "quit")) {
      append_error_text(out, {"ERR '", c_string_128(name),
                              "' was not run: podrelay refused the MULTI before it (pub/sub "
                              "commands only); send EXEC or DISCARD"});
      return NoAction{};
    }
    refused_multi_ = false;
  }
  Entry const* e = lookup(commands, name);
  if (!e) {
    if (subscribed_resp2()) {
      context_error(out, lowercase(c_string_128(name)));
    } else {
      append_error_text(
          out, {"ERR podrelay supports only pub/sub commands: '", c_string_128(name), "'"});
      refused_multi_ = iequals(name, "multi");
    }
    return NoAction{};
  }
  if (argv.size() >= 2 &&
      (e->id == CommandId::client || e->id == CommandId::command || e->id == CommandId::pubsub)) {
    Entry const* sub = nullptr;
    std::string_view upper;
    if (e->id == CommandId::client) {
      sub = lookup(client_subcommands, argv[1]);
      upper = "CLIENT";
    } else if (e->id == CommandId::command) {
      sub = lookup(command_subcommands, argv[1]);
      upper = "COMMAND";
    } else {
      sub = lookup(pubsub_subcommands, argv[1]);
      upper = "PUBSUB";
    }
    if (!sub) {
      append_error_text(
          out, {"ERR unknown subcommand '", c_string_128(argv[1]), "'. Try ", upper, " HELP."});
      return NoAction{};
    }
    e = sub;
  }
  auto const argc = static_cast<int>(argv.size() > INT_MAX ? INT_MAX : argv.size());
  if ((e->arity > 0 && argc != e->arity) || argc < -e->arity) {
    arity_error(out, e->name);
    return NoAction{};
  }
  if (!authenticated_ && !(e->flags & no_auth)) {
    append_error(out, noauth_error);
    return NoAction{};
  }
  if (subscribed_resp2() && !(e->flags & in_subscribed)) {
    context_error(out, e->name);
    return NoAction{};
  }
  Command const cmd{e->name, e->arity, e->id, e->flags};
  return execute(cmd, argv, out);
}

Action CommandMachine::execute(Command const& cmd, std::span<std::string_view const> argv,
                               std::string& out) {
  auto const names = argv.subspan(1);
  switch (cmd.id) {
    case CommandId::publish: return Publish{argv[1], argv[2], false};
    case CommandId::spublish: return Publish{argv[1], argv[2], true};
    case CommandId::subscribe: return Subscribe{SubKind::channel, names};
    case CommandId::ssubscribe: return Subscribe{SubKind::shard, names};
    case CommandId::psubscribe:
      if (!config_.patterns_allowed) {
        append_error(out,
                     "ERR podrelay: PSUBSCRIBE is not available with Redis Cluster (use "
                     "SUBSCRIBE or SSUBSCRIBE)");
        return NoAction{};
      }
      return Subscribe{SubKind::pattern, names};
    case CommandId::unsubscribe: return Unsubscribe{SubKind::channel, names};
    case CommandId::punsubscribe: return Unsubscribe{SubKind::pattern, names};
    case CommandId::sunsubscribe: return Unsubscribe{SubKind::shard, names};
    case CommandId::pubsub_any: return PubsubQuery{argv};
    case CommandId::ping:
      if (argv.size() > 2) {
        arity_error(out, cmd.name);
      } else if (subscribed_resp2()) {
        append_array_header(out, 2);
        append_bulk(out, "pong");
        append_bulk(out, argv.size() == 2 ? argv[1] : std::string_view{});
      } else if (argv.size() == 2) {
        append_bulk(out, argv[1]);
      } else {
        append_simple(out, "PONG");
      }
      return NoAction{};
    case CommandId::echo: append_bulk(out, argv[1]); return NoAction{};
    case CommandId::select: {
      // Pub/sub ignores the database in Redis (a PUBLISH on db 1 reaches a subscriber on
      // db 0), so every index Redis has by default is accepted: apps that SELECT one keep
      // working (node-redis with `database: 1` otherwise reconnects for ever).
      std::int64_t db = 0;
      if (!parse_integer(argv[1], db) || db < INT_MIN || db > INT_MAX)
        append_error(out, "ERR value is not an integer or out of range");
      else if (db < 0 || db >= 16)  // Redis' default `databases 16`
        append_error(out, "ERR DB index is out of range");
      else
        append_simple(out, "OK");
      return NoAction{};
    }
    case CommandId::quit: append_simple(out, "OK"); return Close{};
    case CommandId::reset:
      protocol_ = Protocol::resp2;
      authenticated_ = !config_.auth_token;
      name_.clear();
      lib_name_.clear();
      lib_version_.clear();
      append_simple(out, "RESET");
      return Reset{};
    case CommandId::hello: hello(argv, out); return NoAction{};
    case CommandId::auth: auth(argv, out); return NoAction{};
    case CommandId::info: info(argv, out); return NoAction{};
    case CommandId::command:
    case CommandId::command_count:
    case CommandId::command_docs:
    case CommandId::command_help:
    case CommandId::command_info:
    case CommandId::command_list: command(cmd.id, argv, out); return NoAction{};
    default: client(cmd.id, argv, out); return NoAction{};
  }
}

bool CommandMachine::token_matches(std::string_view password) const noexcept {
  if (!config_.auth_token) return true;
  auto const& token = *config_.auth_token;
  // Constant time in the password's bytes: no early exit on the first difference.
  unsigned diff = password.size() == token.size() ? 0u : 1u;
  for (std::size_t i = 0; i < password.size(); ++i)
    diff |= static_cast<unsigned char>(password[i]) ^
            static_cast<unsigned char>(token.empty() ? 0 : token[i % token.size()]);
  return diff == 0;
}

void CommandMachine::auth(std::span<std::string_view const> argv, std::string& out) {
  if (argv.size() > 3) {
    append_error(out, syntax_error);
    return;
  }
  // AUTH password, or AUTH user password: only the password is compared.
  if (!token_matches(argv.back())) {
    append_error(out, wrongpass_error);
    return;
  }
  authenticated_ = true;
  append_simple(out, "OK");
}

void CommandMachine::hello(std::span<std::string_view const> argv, std::string& out) {
  std::int64_t version = 0;
  std::size_t next = 1;
  if (argv.size() >= 2) {
    if (!parse_integer(argv[1], version)) {
      append_error(out, "ERR Protocol version is not an integer or out of range");
      return;
    }
    if (version < 2 || version > 3) {
      append_error(out, "NOPROTO unsupported protocol version");
      return;
    }
    next = 2;
  }
  // Options take effect one by one, as in Redis: an AUTH or SETNAME before a bad option
  // stays done.
  for (std::size_t j = next; j < argv.size(); ++j) {
    auto const more = argv.size() - 1 - j;
    if (iequals(argv[j], "auth") && more >= 2) {
      if (!token_matches(argv[j + 2])) {
        append_error(out, wrongpass_error);
        return;
      }
      authenticated_ = true;
      j += 2;
    } else if (iequals(argv[j], "setname") && more >= 1) {
      if (!valid_client_attr(argv[j + 1])) {
        append_error(out, bad_name_error);
        return;
      }
      name_ = argv[j + 1];
      j += 1;
    } else {
      append_error_text(out, {"ERR Syntax error in HELLO option '", c_string_128(argv[j]), "'"});
      return;
    }
  }
  if (!authenticated_) {
    append_error(out,
                 "NOAUTH HELLO must be called with the client already authenticated, otherwise "
                 "the HELLO AUTH <user> <pass> option can be used to authenticate the client "
                 "and select the RESP protocol version at the same time");
    return;
  }
  if (version) protocol_ = version == 3 ? Protocol::resp3 : Protocol::resp2;
  append_map_header(out, protocol_, 7);
  append_bulk(out, "server");
  append_bulk(out, "redis");
  append_bulk(out, "version");
  append_bulk(out, config_.redis_version);
  append_bulk(out, "proto");
  append_integer(out, static_cast<std::int64_t>(protocol_));
  append_bulk(out, "id");
  append_integer(out, client_id_);
  append_bulk(out, "mode");
  append_bulk(out, "standalone");
  append_bulk(out, "role");
  append_bulk(out, "master");
  append_bulk(out, "modules");
  append_array_header(out, 0);
}

void CommandMachine::client(CommandId id, std::span<std::string_view const> argv,
                            std::string& out) {
  switch (id) {
    case CommandId::client_id: append_integer(out, client_id_); return;
    case CommandId::client_getname:
      if (name_.empty())
        append_null(out, protocol_);
      else
        append_bulk(out, name_);
      return;
    case CommandId::client_setname:
      if (!valid_client_attr(argv[2])) {
        append_error(out, bad_name_error);
        return;
      }
      name_ = argv[2];
      append_simple(out, "OK");
      return;
    case CommandId::client_setinfo: {
      std::string* dest = nullptr;
      if (iequals(argv[2], "lib-name"))
        dest = &lib_name_;
      else if (iequals(argv[2], "lib-ver"))
        dest = &lib_version_;
      if (!dest) {
        append_error_text(out, {"ERR Unrecognized option '", c_string_128(argv[2]), "'"});
        return;
      }
      if (!valid_client_attr(argv[3])) {
        append_error_text(out, {"ERR ", c_string_128(argv[2]),
                                " cannot contain spaces, newlines or special characters."});
        return;
      }
      *dest = argv[3];
      append_simple(out, "OK");
      return;
    }
    case CommandId::client_no_evict:
    case CommandId::client_no_touch:
      // Accepted and ignored: podrelay neither evicts clients nor has keys to touch.
      if (iequals(argv[2], "on") || iequals(argv[2], "off"))
        append_simple(out, "OK");
      else
        append_error(out, syntax_error);
      return;
    case CommandId::client_info: {
      std::string line = "id=" + std::to_string(client_id_);
      line += " addr=" + peer_address_ + " laddr=" + local_address_ + " name=" + name_;
      line += counts_.any() ? " flags=P" : " flags=N";
      line += " db=0 sub=" + std::to_string(counts_.channels) +
              " psub=" + std::to_string(counts_.patterns) +
              " ssub=" + std::to_string(counts_.shards);
      line += " multi=-1 cmd=client|info user=default lib-name=" + lib_name_ +
              " lib-ver=" + lib_version_ + " resp=" + std::to_string(static_cast<int>(protocol_));
      line += '\n';
      append_verbatim(out, protocol_, line);
      return;
    }
    default:
      append_help(
          out, "CLIENT",
          {"GETNAME", "    Return the name of the current connection.", "ID",
           "    Return the ID of the current connection.", "INFO",
           "    Return information about the current client connection.", "SETNAME <name>",
           "    Assign the name <name> to the current connection.", "SETINFO <option> <value>",
           "    Set LIB-NAME or LIB-VER (stored, not used).", "NO-EVICT (ON|OFF)",
           "NO-TOUCH (ON|OFF)", "    Accepted and ignored.", "HELP", "    Print this help."});
      return;
  }
}

void CommandMachine::command(CommandId id, std::span<std::string_view const> argv,
                             std::string& out) {
  // podrelay publishes no command table: clients that call COMMAND at start (redis-cli's
  // COMMAND DOCS for its hints) accept an empty one.
  if (id == CommandId::command || id == CommandId::command_list) {
    append_array_header(out, 0);
  } else if (id == CommandId::command_count) {
    append_integer(out, 0);
  } else if (id == CommandId::command_docs) {
    append_map_header(out, protocol_, 0);
  } else if (id == CommandId::command_info) {
    // One null per name asked for, as Redis answers unknown commands.
    append_array_header(out, argv.size() - 2);
    for (std::size_t i = 2; i < argv.size(); ++i) append_null(out, protocol_);
  } else {
    append_help(out, "COMMAND",
                {"(no subcommand)", "    Return an empty array: podrelay has no command table.",
                 "COUNT", "    Return 0.", "DOCS [<command-name> ...]", "    Return an empty map.",
                 "INFO [<command-name> ...]", "    Return a null for each command.", "LIST",
                 "    Return an empty array.", "HELP", "    Print this help."});
  }
}

void CommandMachine::info(std::span<std::string_view const> argv, std::string& out) {
  // Sections asked for: none means "default"; podrelay has only a short "server" section.
  bool server = argv.size() == 1;
  for (std::size_t i = 1; i < argv.size(); ++i)
    if (iequals(argv[i], "server") || iequals(argv[i], "default") || iequals(argv[i], "all") ||
        iequals(argv[i], "everything"))
      server = true;
  std::string text;
  if (server) {
    text = "# Server\r\nredis_version:" + config_.redis_version +
           "\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_mode:standalone\r\n"
           "arch_bits:" +
           std::to_string(sizeof(void*) * 8) + "\r\npodrelay_version:" + config_.podrelay_version +
           "\r\n";
  }
  append_verbatim(out, protocol_, text);
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace podrelay::resp_server
