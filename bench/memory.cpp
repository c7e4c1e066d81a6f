// Resident memory: a fresh sidecar idle, then holding 10,000 idle app connections (each
// sent HELLO and got WELCOME); the baseline is redis-server holding 10,000 idle clients
// (each sent PING and got PONG).
#include <unistd.h>

#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "proc_stats.hpp"
#include "redis_client.hpp"
#include "relay_client.hpp"
#include "sections.hpp"

namespace bench {
namespace {

constexpr std::size_t batch = 500;

struct Reading {
  long idle_kib = -1;
  long loaded_kib = -1;
  std::size_t connections = 0;
  double per_conn_kib() const {
    return connections > 0 ? double(loaded_kib - idle_kib) / double(connections) : NAN;
  }
};

// Opens `n` connections with `make` (which sends the greeting), in batches, each batch
// answered before the next; then lets the process settle and reads its RSS.
template <class Make, class Loaded>
Reading measure(pid_t pid, std::size_t n, Make make, Loaded loaded) {
  Reading r;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  r.idle_kib = rss_kib(pid);
  EventLoop loop;
  std::vector<std::unique_ptr<PubSubClient>> conns;
  conns.reserve(n);
  auto const deadline = Clock::now() + std::chrono::seconds(60);
  while (conns.size() < n) {
    auto const first = conns.size();
    while (conns.size() < std::min(n, first + batch)) conns.push_back(make(loop));
    for (;;) {
      bool all = true;
      for (auto i = first; i < conns.size(); ++i) {
        if (conns[i]->closed()) {
          throw std::runtime_error(
              "idle connection " + std::to_string(i) + " closed: " +
              (conns[i]->server_error().empty() ? conns[i]->error() : conns[i]->server_error()));
        }
        all = all && conns[i]->ready() && conns[i]->acks() + conns[i]->bytes_received() > 0;
      }
      if (all) break;
      if (Clock::now() > deadline) throw std::runtime_error("connections not answered in 60 s");
      loop.poll(std::chrono::milliseconds(5));
    }
  }
  // Let the server finish whatever bookkeeping follows the greeting, then read.
  auto const settle = Clock::now() + std::chrono::seconds(1);
  while (Clock::now() < settle) loop.poll(std::chrono::milliseconds(50));
  r.loaded_kib = rss_kib(pid);
  r.connections = conns.size();
  loaded();
  return r;
}

}  // namespace

void memory_section(SectionContext& ctx) {
  std::size_t const n = ctx.options.quick ? 200 : 10'000;
  auto& m = ctx.env.start_sidecar("m");
  double open = NAN;
  auto const relay = measure(
      m.pid(), n,
      [&](EventLoop& loop) -> std::unique_ptr<PubSubClient> {
        return std::make_unique<RelayClient>(loop, m.port);
      },
      [&] { open = ctx.env.sidecar_metric("m", "podrelay_app_connections"); });
  ctx.env.stop_sidecar("m");
  auto const direct = measure(
      ctx.env.redis_pid(), n,
      [&](EventLoop& loop) -> std::unique_ptr<PubSubClient> {
        auto c = std::make_unique<RedisClient>(loop, ctx.env.redis_port());
        c->ping();
        return c;
      },
      [] {});
  ctx.env.check_alive();

  auto const k = std::to_string(n / 1000) + "k";
  ctx.report.add({"memory", "RSS idle", "KiB", double(direct.idle_kib), double(relay.idle_kib)});
  ctx.report.add({"memory", "RSS with " + (n >= 1000 ? k : std::to_string(n)) + " idle conns",
                  "KiB", double(direct.loaded_kib), double(relay.loaded_kib)});
  ctx.report.add(
      {"memory", "RSS per idle connection", "KiB", direct.per_conn_kib(), relay.per_conn_kib()});
  std::ostringstream raw;
  raw << "{\"connections\":" << n << ",\"podrelay_idle_kib\":" << relay.idle_kib
      << ",\"podrelay_loaded_kib\":" << relay.loaded_kib
      << ",\"podrelay_app_connections_metric\":" << json_number(open)
      << ",\"redis_idle_kib\":" << direct.idle_kib << ",\"redis_loaded_kib\":" << direct.loaded_kib
      << "}";
  ctx.report.add_raw("memory", raw.str());
  ctx.report.note("memory",
                  "podrelay: a fresh sidecar (not the one used by the other sections), each "
                  "connection sent HELLO and received WELCOME; direct: the shared redis-server "
                  "(after the other sections), each connection sent PING. RSS from "
                  "/proc/<pid>/status VmRSS, 1 s after the last answer. The sidecar's "
                  "podrelay_app_connections gauge read " +
                      json_number(open) + ".");
}

}  // namespace bench
