// libFuzzer target: the RESP request parser and the command machine behind it. On any byte
// stream fed in any chunking the parser must never crash, leak or read out of bounds; it
// must give the same requests and the same error as when fed the whole stream at once;
// every request it yields must survive a multibulk re-encoding; and every byte the command
// machine writes must be well-formed RESP. Seeds: fuzz/seeds/resp_request (scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "resp_server/command.hpp"
#include "resp_server/reply_writer.hpp"
#include "resp_server/request_parser.hpp"

using namespace podrelay::resp_server;

namespace {

// Checks one RESP2/RESP3 value at `pos` and moves past it; false when malformed.
bool valid_value(std::string_view s, std::size_t& pos, int depth = 0) {
  if (pos >= s.size() || depth > 8) return false;
  char const type = s[pos++];
  auto const eol = s.find("\r\n", pos);
  if (eol == std::string_view::npos) return false;
  auto const line = s.substr(pos, eol - pos);
  if (line.find_first_of("\r\n") != std::string_view::npos) return false;
  pos = eol + 2;
  std::int64_t n = 0;
  switch (type) {
    case '+':
    case '-':
    case ',': return true;
    case ':': return parse_integer(line, n);
    case '_': return line.empty();
    case '#': return line == "t" || line == "f";
    case '$':
    case '=':
      if (!parse_integer(line, n) || n < -1) return false;
      if (n == -1) return type == '$';
      if (s.size() - pos < static_cast<std::size_t>(n) + 2) return false;
      if (type == '=' && (n < 4 || s[pos + 3] != ':')) return false;
      pos += static_cast<std::size_t>(n);
      if (s.substr(pos, 2) != "\r\n") return false;
      pos += 2;
      return true;
    case '*':
    case '%':
    case '~':
    case '>':
      if (!parse_integer(line, n) || n < -1) return false;
      if (n == -1) return type == '*';
      if (type == '%') n *= 2;
      for (std::int64_t i = 0; i < n; ++i)
        if (!valid_value(s, pos, depth + 1)) return false;
      return true;
    default: return false;
  }
}

void check_replies(std::string_view out) {
  std::size_t pos = 0;
  while (pos < out.size())
    if (!valid_value(out, pos)) std::abort();
}

struct Outcome {
  std::vector<std::vector<std::string>> requests;
  ParseError error = ParseError::none;
  bool operator==(Outcome const&) const = default;
};

void drain(RequestParser& p, Outcome& o) {
  for (;;) {
    auto const r = p.next();
    if (r.status == RequestParser::Status::need_more) return;
    if (r.status == RequestParser::Status::error) {
      o.error = r.error;
      return;
    }
    if (r.argv.empty()) std::abort();
    o.requests.emplace_back(r.argv.begin(), r.argv.end());
  }
}

std::string encode_multibulk(std::vector<std::string> const& argv) {
  std::string s = "*" + std::to_string(argv.size()) + "\r\n";
  for (auto const& a : argv) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

// The session's part, as little as the machine needs: names per kind and their counts.
void drive(CommandMachine& m, std::vector<std::string> const& request, std::set<std::string>* subs,
           std::string& out) {
  std::vector<std::string_view> argv(request.begin(), request.end());
  auto const action = m.handle(argv, out);
  auto const p = m.protocol();
  auto counts = [&] {
    return CommandMachine::Counts{static_cast<std::int64_t>(subs[0].size()),
                                  static_cast<std::int64_t>(subs[1].size()),
                                  static_cast<std::int64_t>(subs[2].size())};
  };
  auto shown = [&](SubKind k) {
    auto const c = counts();
    return subscription_count(k, c.channels, c.patterns, c.shards);
  };
  if (auto const* s = std::get_if<Subscribe>(&action)) {
    if (s->names.empty()) std::abort();  // arity: at least one name
    for (auto const n : s->names) {
      subs[static_cast<int>(s->kind)].emplace(n);
      append_subscribed(out, p, s->kind, n, shown(s->kind));
    }
  } else if (auto const* u = std::get_if<Unsubscribe>(&action)) {
    auto& set = subs[static_cast<int>(u->kind)];
    std::vector<std::string> names(u->names.begin(), u->names.end());
    if (names.empty()) names.assign(set.begin(), set.end());
    if (names.empty()) append_unsubscribed(out, p, u->kind, std::nullopt, shown(u->kind));
    for (auto const& n : names) {
      set.erase(n);
      append_unsubscribed(out, p, u->kind, n, shown(u->kind));
    }
  } else if (auto const* pub = std::get_if<Publish>(&action)) {
    if (argv.size() != 3 || pub->payload.data() != argv[2].data()) std::abort();
    append_integer(out, 0);
  } else if (auto const* q = std::get_if<PubsubQuery>(&action)) {
    if (q->argv.size() != argv.size()) std::abort();
    append_array_header(out, 0);
  } else if (std::holds_alternative<Reset>(action)) {
    for (int k = 0; k < 3; ++k) subs[k].clear();
  }
  m.set_subscriptions(counts());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size < 2) return 0;
  // First byte: chunk size; second: configuration (token, patterns, small limits).
  std::size_t const chunk = 1 + data[0] % 64;
  std::uint8_t const flags = data[1];
  std::string_view const in(reinterpret_cast<char const*>(data + 2), size - 2);

  Limits limits;
  if (flags & 4) {
    limits.max_args = 8;
    limits.max_bulk_bytes = 64;
    limits.max_inline_bytes = 48;
    limits.max_request_bytes = 160;
  }
  Config config;
  if (flags & 1) config.auth_token = "tok";
  config.patterns_allowed = !(flags & 2);

  // The whole stream at once, as the reference.
  Outcome whole;
  {
    RequestParser p(limits);
    p.feed(in);
    drain(p, whole);
  }

  RequestParser parser(limits);
  CommandMachine machine(config, 1);
  std::set<std::string> subs[3];
  std::string out;
  Outcome chunked;
  bool closed = false;
  for (std::size_t off = 0; off < in.size() && !closed; off += chunk) {
    parser.feed(in.substr(off, chunk));
    for (;;) {
      parser.set_authenticated(true);  // same limits as the reference
      auto const r = parser.next();
      if (r.status == RequestParser::Status::need_more) break;
      if (r.status == RequestParser::Status::error) {
        chunked.error = r.error;
        if (r.error_text.empty()) std::abort();
        closed = true;
        break;
      }
      std::vector<std::string> request(r.argv.begin(), r.argv.end());
      // A re-encoded request parses back to the same argv.
      {
        RequestParser again;
        again.feed(encode_multibulk(request));
        auto const back = again.next();
        if (back.status != RequestParser::Status::request ||
            std::vector<std::string>(back.argv.begin(), back.argv.end()) != request)
          std::abort();
      }
      chunked.requests.push_back(request);
      drive(machine, request, subs, out);
      if (out.size() > (1u << 20)) {
        check_replies(out);
        out.clear();
      }
    }
    if ((off / chunk) % 7 == 0) parser.shrink_if_idle(1024);
  }
  check_replies(out);
  if (chunked != whole) std::abort();  // chunking changes nothing
  return 0;
}
