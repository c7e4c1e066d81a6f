// podrelay-cli: publish, subscribe and ping from a shell.
//   podrelay-cli [-c ADDR] pub CHANNEL [MESSAGE]     (no MESSAGE: one message per stdin line)
//   podrelay-cli [-c ADDR] sub CHANNEL... [-n COUNT] [--timeout SECONDS] [--since ID
//                [--epoch E]] [-v]
//   podrelay-cli [-c ADDR] psub PATTERN... [-n COUNT] [--timeout SECONDS]
//   podrelay-cli [-c ADDR] ping
// Exit status: 0 success, 1 runtime failure (one line on stderr), 2 usage error.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli/blocking_client.hpp"

namespace {

using namespace podrelay;
using cli::BlockingClient;
using Clock = std::chrono::steady_clock;

int fail(std::string const& msg) {
  std::cerr << "podrelay-cli: " << msg << '\n';
  return 1;
}

struct Options {
  std::string address = "127.0.0.1:7400";
  std::string token_file;
  std::string channel;
  std::optional<std::string> message;
  std::vector<std::string> names;
  long count = 0;
  double timeout = 0;                // 0: none
  std::optional<std::string> since;  // sub: resume durable channels after this stream id
  std::string epoch;                 // ... if the stream's epoch is still this one
  bool verbose = false;              // print stream ids
};

bool open_client(BlockingClient& client, Options const& o, std::string& error) {
  std::string token;
  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file, std::ios::binary);
    if (!in) {
      error = "cannot read --token-file '" + o.token_file + "'";
      return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  }
  if (!client.connect(o.address, error)) return false;
  return client.handshake("podrelay-cli", token, Clock::now() + std::chrono::seconds(5), error);
}

int run_pub(Options const& o) {
  BlockingClient client;
  std::string error;
  if (!open_client(client, o, error)) return fail(error);
  std::uint32_t next_id = 1;
  std::size_t outstanding = 0;
  std::size_t failed = 0;
  // After GOAWAY the sidecar reads nothing more but still answers the publishes it read
  // (PROTOCOL.md, GOAWAY): stop sending, keep reading until the answers or the close.
  std::string goaway;
  bool broken = false;  // the connection failed: nothing more can be read from it
  std::string out;
  auto const wait_one = [&]() -> bool {
    proto::Frame f;
    auto const st = client.read(f, Clock::now() + std::chrono::seconds(30), error);
    if (st != BlockingClient::ReadStatus::frame) {
      broken = true;
      if (st == BlockingClient::ReadStatus::timeout)
        error = "no answer from the sidecar within 30 s";
      if (st == BlockingClient::ReadStatus::closed) {
        error = goaway.empty()
                    ? "the sidecar closed the connection"
                    : "the sidecar closed the connection after GOAWAY " + goaway + " with " +
                          std::to_string(outstanding) + " publishes unanswered (not published)";
      }
      return false;
    }
    if (std::holds_alternative<proto::Ok>(f) || std::holds_alternative<proto::PubOk>(f)) {
      --outstanding;
    } else if (auto* e = std::get_if<proto::Err>(&f)) {
      --outstanding;
      ++failed;
      std::cerr << "podrelay-cli: publish " << e->request_id
                << " refused: " << cli::describe_error(e->code, e->message) << '\n';
    } else if (auto* g = std::get_if<proto::Goaway>(&f)) {
      goaway = cli::describe_error(g->code, g->message);
    }
    return true;
  };
  auto const publish = [&](std::string const& payload) -> bool {
    if (!goaway.empty()) {
      error = "the sidecar is closing the connection (GOAWAY " + goaway +
              "): the rest of the input was not published";
      return false;
    }
    out.clear();
    proto::encode_pub(out, next_id++, o.channel, payload);
    if (next_id == 0) next_id = 1;
    if (!client.send(out, error)) {
      broken = true;
      return false;
    }
    ++outstanding;
    // A bounded window of unanswered publishes keeps memory and latency in check.
    while (outstanding >= 1000) {
      if (!wait_one()) return false;
    }
    return true;
  };
  // The answers owed are read before any failure is reported, so that each refused
  // publish is named on stderr and the exit status covers all of them.
  auto const finish = [&](bool sent_all) -> int {
    if (broken) return fail(error);
    auto why = std::exchange(error, {});  // wait_one() below writes to `error`
    while (outstanding > 0) {
      if (!wait_one()) return fail(error);
    }
    if (!sent_all) return fail(why);
    return failed == 0 ? 0 : 1;
  };
  if (o.message) return finish(publish(*o.message));
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!publish(line)) return finish(false);
  }
  return finish(true);
}

int run_sub(Options const& o, proto::FrameType type) {
  BlockingClient client;
  std::string error;
  if (!open_client(client, o, error)) return fail(error);
  std::vector<std::string_view> names(o.names.begin(), o.names.end());
  std::string out;
  std::size_t answers_due = 1;
  if (o.since) {
    // One RSUB per channel (durable channels only): the missed messages come first.
    answers_due = names.size();
    for (std::size_t i = 0; i < names.size(); ++i) {
      proto::encode_rsub(out, static_cast<std::uint32_t>(i + 1), names[i], *o.since, o.epoch);
    }
  } else {
    proto::encode_name_list(out, type, 1, names);
  }
  if (!client.send(out, error)) return fail(error);
  auto const deadline =
      o.timeout > 0 ? Clock::now() + std::chrono::milliseconds(static_cast<long>(o.timeout * 1000))
                    : Clock::time_point::max();
  long received = 0;
  bool subscribed = false;
  for (;;) {
    if (o.count > 0 && received >= o.count) return 0;
    proto::Frame f;
    auto const st = client.read(f, deadline, error);
    if (st == BlockingClient::ReadStatus::timeout) {
      if (!subscribed) return fail("timeout: the subscription was not confirmed");
      if (o.count > 0) {
        return fail("timeout: received " + std::to_string(received) + " of " +
                    std::to_string(o.count) + " messages");
      }
      return 0;
    }
    if (st == BlockingClient::ReadStatus::closed) return fail("the sidecar closed the connection");
    if (st == BlockingClient::ReadStatus::error) return fail(error);
    if (auto* m = std::get_if<proto::Msg>(&f)) {
      std::cout.write(m->payload.data(), static_cast<std::streamsize>(m->payload.size()));
      std::cout << '\n' << std::flush;
      ++received;
    } else if (auto* d = std::get_if<proto::Smsg>(&f)) {
      if (o.verbose) std::cout << d->id << ' ';
      std::cout.write(d->payload.data(), static_cast<std::streamsize>(d->payload.size()));
      std::cout << '\n' << std::flush;
      ++received;
    } else if (std::holds_alternative<proto::Ok>(f)) {
      subscribed = true;
    } else if (auto* r = std::get_if<proto::RsubOk>(&f)) {
      if (o.verbose || r->recovered == 0) {
        std::cerr << "podrelay-cli: " << o.names.at(r->request_id - 1)
                  << (r->recovered ? " recovered" : " NOT recovered (reload your state)")
                  << " epoch=" << r->epoch << " last_id=" << r->last_id << '\n';
      }
      subscribed = --answers_due == 0;
    } else if (auto* e = std::get_if<proto::Err>(&f)) {
      return fail("sidecar refused: " + cli::describe_error(e->code, e->message));
    } else if (auto* g = std::get_if<proto::Goaway>(&f)) {
      return fail("sidecar closed the connection: " + cli::describe_error(g->code, g->message));
    }
  }
}

int run_ping(Options const& o) {
  BlockingClient client;
  std::string error;
  if (!open_client(client, o, error)) return fail(error);
  std::string out;
  proto::encode_ping(out, 1);
  auto const start = Clock::now();
  if (!client.send(out, error)) return fail(error);
  proto::Frame f;
  auto const st = client.read(f, start + std::chrono::seconds(5), error);
  if (st != BlockingClient::ReadStatus::frame || !std::holds_alternative<proto::Pong>(f)) {
    return fail(error.empty() ? "no PONG from the sidecar" : error);
  }
  auto const us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  std::cout << "PONG " << static_cast<double>(us.count()) / 1000.0 << " ms\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"podrelay-cli: publish, subscribe and ping through a podrelay sidecar"};
  app.require_subcommand(1);
  Options o;
  app.add_option("-c,--connect", o.address, "Sidecar address: host:port or unix:/path")
      ->envname("PODRELAY_CLI_CONNECT")
      ->capture_default_str();
  app.add_option("--token-file", o.token_file, "File with the sidecar's auth token")
      ->envname("PODRELAY_CLI_TOKEN_FILE");

  auto* pub = app.add_subcommand("pub", "Publish MESSAGE, or one message per stdin line");
  pub->add_option("CHANNEL", o.channel, "Channel")->required();
  pub->add_option("MESSAGE", o.message, "Payload (default: read lines from stdin)");

  auto* sub = app.add_subcommand("sub", "Subscribe to channels; print each payload on a line");
  auto* psub = app.add_subcommand("psub", "Subscribe to glob patterns; print each payload");
  for (auto* s : {sub, psub}) {
    s->add_option("NAME", o.names, s == sub ? "Channels" : "Patterns")->required();
    s->add_option("-n,--count", o.count, "Exit after COUNT messages")
        ->check(CLI::NonNegativeNumber);
    s->add_option("--timeout", o.timeout,
                  "Give up after SECONDS (with -n: exit 1 unless COUNT arrived)")
        ->check(CLI::NonNegativeNumber);
  }
  sub->add_option("--since", o.since,
                  "Durable channels: first replay what was published after this stream id");
  sub->add_option("--epoch", o.epoch, "With --since: the stream epoch the id belongs to");
  sub->add_flag("-v,--verbose", o.verbose, "Print each durable message's stream id first");
  auto* ping = app.add_subcommand("ping", "Check that the sidecar answers");

  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    return app.exit(e);
  }
  if (pub->parsed()) return run_pub(o);
  if (sub->parsed()) return run_sub(o, proto::FrameType::sub);
  if (psub->parsed()) return run_sub(o, proto::FrameType::psub);
  if (ping->parsed()) return run_ping(o);
  return 2;
}
