#include "pubsub_run.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "proc_stats.hpp"
#include "redis_client.hpp"
#include "relay_client.hpp"
#include "run_parts.hpp"
#include "subscriber_process.hpp"

namespace bench {
namespace {

constexpr std::size_t connect_batch = 200;
constexpr double setup_limit_s = 30;

struct CpuProbe {
  std::string name;
  pid_t pid;
};

std::vector<CpuProbe> cpu_probes(Environment& env, RunSpec const& spec, pid_t subscriber_process) {
  std::vector<CpuProbe> probes{{"redis", env.redis_pid()}};
  if (subscriber_process > 0) probes.push_back({"bench_subscriber", subscriber_process});
  if (spec.path == Path::podrelay) {
    probes.push_back({"sidecar_a", env.sidecar("a").pid()});
    probes.push_back({"sidecar_b", env.sidecar("b").pid()});
  } else if (spec.via_forwarders) {
    probes.push_back({"sidecar_a", env.forwarder("a").pid()});
    probes.push_back({"sidecar_b", env.forwarder("b").pid()});
  }
  return probes;
}

// Polls until `done()` or the deadline; false on timeout.
template <class Done>
bool poll_until(EventLoop& loop, Clock::time_point deadline, Done done) {
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    loop.poll(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

void DeliverySink::on_message(std::string_view payload) {
  ++delivered;
  if (delivered == expected_) last_delivery = Clock::now();
  if (!spec_.record_latency || payload.size() < payload_header) return;
  std::int64_t sent = 0;
  std::uint64_t seq = 0;
  std::memcpy(&sent, payload.data(), sizeof sent);
  std::memcpy(&seq, payload.data() + 8, sizeof seq);
  if (seq < spec_.warmup_messages) return;
  latencies_ns.push_back(now_ns() - sent);
}

std::unique_ptr<PubSubClient> make_client(EventLoop& loop, Environment& env, RunSpec const& spec,
                                          bool subscriber) {
  if (spec.path == Path::direct) {
    auto const port =
        spec.via_forwarders ? env.forwarder(subscriber ? "b" : "a").port : env.redis_port();
    return std::make_unique<RedisClient>(loop, port);
  }
  auto const& sidecar = env.sidecar(subscriber ? "b" : "a");
  if (spec.unix_app_sockets) return std::make_unique<RelayClient>(loop, Address(sidecar.unix_path));
  return std::make_unique<RelayClient>(loop, sidecar.port);
}

std::vector<std::unique_ptr<PubSubClient>> connect_subscribers(EventLoop& loop, Environment& env,
                                                               RunSpec const& spec,
                                                               std::string const& channel,
                                                               MessageSink& sink) {
  std::vector<std::unique_ptr<PubSubClient>> subs;
  subs.reserve(spec.subscribers);
  auto const deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(Seconds(setup_limit_s));
  while (subs.size() < spec.subscribers) {
    auto const batch_end = std::min(spec.subscribers, subs.size() + connect_batch);
    auto const first = subs.size();
    while (subs.size() < batch_end) {
      subs.push_back(make_client(loop, env, spec, true));
      subs.back()->set_sink(&sink);
      subs.back()->subscribe(channel);
    }
    bool const ok = poll_until(loop, deadline, [&] {
      for (auto i = first; i < subs.size(); ++i) {
        if (!subs[i]->subscribed() && !subs[i]->closed()) return false;
      }
      return true;
    });
    if (!ok) throw std::runtime_error("subscribers not confirmed within 30 s");
  }
  for (auto const& s : subs) {
    if (s->closed()) throw std::runtime_error("subscriber connection failed: " + s->error());
  }
  return subs;
}

RunResult run_pubsub(Environment& env, RunSpec const& spec) {
  RunResult result;
  if (spec.payload_bytes < payload_header) throw std::logic_error("payload under 16 bytes");
  static std::uint64_t run_counter = 0;
  ++run_counter;
  // podrelay adds its prefix on Redis; the direct path uses its own namespace so the two
  // never share a Redis channel.
  std::string const channel = (spec.path == Path::direct ? "direct.bench." : "bench.") +
                              std::to_string(::getpid()) + "." + std::to_string(run_counter);

  if (spec.separate_subscriber && spec.rate <= 0) {
    throw std::logic_error("a separate subscriber process needs a paced run");
  }
  auto const setup_start = Clock::now();
  auto const setup_deadline =
      setup_start + std::chrono::duration_cast<Clock::duration>(Seconds(setup_limit_s));
  if (spec.via_forwarders) {  // started here, never in a forked subscriber process
    env.forwarder("a");
    env.forwarder("b");
  }
  // Forked before this process opens any connection of the run.
  std::unique_ptr<SubscriberProcess> child;
  if (spec.separate_subscriber) child = std::make_unique<SubscriberProcess>(env, spec, channel);
  EventLoop loop;
  DeliverySink sink(spec, spec.messages * spec.subscribers);
  std::vector<std::unique_ptr<PubSubClient>> subs;
  if (child) {
    child->watch(loop);
  } else {
    subs = connect_subscribers(loop, env, spec, channel, sink);
  }
  auto pub = make_client(loop, env, spec, false);
  if (!poll_until(loop, setup_deadline, [&] { return pub->ready() || pub->closed(); }) ||
      pub->closed()) {
    throw std::runtime_error("publisher not ready: " + pub->error());
  }
  result.setup_s = seconds_between(setup_start, Clock::now());

  if (spec.before_publishing) spec.before_publishing();
  auto const probes = cpu_probes(env, spec, child ? child->pid() : -1);
  std::map<std::string, double> cpu_before;
  for (auto const& p : probes) cpu_before[p.name] = cpu_seconds(p.pid);
  double const bench_before = self_cpu_seconds();
  double const machine_before = machine_busy_seconds();

  std::string payload(spec.payload_bytes, 'x');
  std::uint64_t seq = 0;
  auto publish_one = [&](bool acked) {
    std::int64_t const t = now_ns();
    std::memcpy(payload.data(), &t, sizeof t);
    std::memcpy(payload.data() + 8, &seq, sizeof seq);
    pub->publish(channel, payload, acked, true);
    ++seq;
  };

  std::uint64_t const total = spec.messages;
  auto const n_subs = static_cast<std::uint64_t>(spec.subscribers);
  result.expected = total * n_subs;
  if (spec.record_latency && !child) sink.latencies_ns.reserve(total);
  bool const paced = spec.rate > 0;
  bool const acked = !paced;
  auto const start = Clock::now();
  auto const deadline =
      start + std::chrono::duration_cast<Clock::duration>(Seconds(spec.time_limit_s));
  auto const interval = paced ? Seconds(1.0 / spec.rate) : Seconds(0);
  std::size_t const refill_at = spec.window - spec.window / 4;

  for (;;) {
    auto const now = Clock::now();
    if (now >= deadline) break;
    std::chrono::nanoseconds wait(std::chrono::milliseconds(10));
    if (seq < total) {
      if (paced) {
        // Messages due by now: send them all (a late loop catches up, and says so).
        auto const due = std::min<std::uint64_t>(
            total, static_cast<std::uint64_t>(seconds_between(start, now) * spec.rate) + 1);
        if (seq < due) {
          auto const scheduled =
              start + std::chrono::duration_cast<Clock::duration>(interval * double(seq));
          result.max_send_lag_s = std::max(result.max_send_lag_s, seconds_between(scheduled, now));
          while (seq < due) publish_one(false);
          pub->flush();
        }
        auto const next =
            start + std::chrono::duration_cast<Clock::duration>(interval * double(seq));
        wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next - Clock::now());
      } else {
        auto const done_per_sub = sink.delivered / n_subs;
        if (seq - done_per_sub <= refill_at) {
          while (seq < total && seq - done_per_sub < spec.window) publish_one(acked);
          pub->flush();
        }
      }
    } else if (child ? child->all_delivered() : sink.delivered >= result.expected) {
      // Everything delivered; in window mode also wait for the last acks of podrelay.
      if (spec.path == Path::direct || !acked || pub->acks() + pub->nacks() >= total) break;
    }
    if (pub->closed()) {
      result.problems.push_back("publisher connection closed: " + pub->error());
      break;
    }
    loop.poll(std::max(wait, std::chrono::nanoseconds(0)));
  }
  auto const end = Clock::now();

  for (auto const& p : probes) {
    double const after = cpu_seconds(p.pid);
    result.cpu_s[p.name] = after >= 0 && cpu_before[p.name] >= 0 ? after - cpu_before[p.name] : -1;
  }
  result.cpu_s["bench"] = self_cpu_seconds() - bench_before;
  if (child) {
    // The bench's CPU is both of its processes'.
    auto& sub_cpu = result.cpu_s["bench_subscriber"];
    if (sub_cpu >= 0) result.cpu_s["bench"] += sub_cpu;
    auto r = child->finish();
    sink.delivered = r.delivered;
    sink.latencies_ns = std::move(r.latencies_ns);
    if (r.last_delivery_ns > 0 && sink.delivered >= result.expected) {
      sink.last_delivery = Clock::time_point(std::chrono::nanoseconds(r.last_delivery_ns));
    }
    result.cpu_s.erase("bench_subscriber");
  }
  result.delivered = sink.delivered;
  result.latencies_ns = std::move(sink.latencies_ns);
  // Busy CPU time of the machine not spent by the bench, Redis or the sidecars: other
  // users' load, which the figures of this run competed with.
  double ours = 0;
  for (auto const& [name, secs] : result.cpu_s) ours += std::max(0.0, secs);
  result.cpu_s["others"] = std::max(0.0, machine_busy_seconds() - machine_before - ours);
  if (spec.after_run) spec.after_run();
  result.published = seq;
  result.acks = pub->acks();
  result.nacks = pub->nacks();
  result.expected = seq * n_subs;
  result.complete = result.delivered >= result.expected && seq == total;
  result.elapsed_s = seconds_between(
      start, result.complete && sink.last_delivery > start ? sink.last_delivery : end);
  if (!result.complete) {
    std::ostringstream s;
    s << "incomplete: published " << seq << " of " << total << ", delivered " << result.delivered
      << " of " << result.expected << " within " << spec.time_limit_s << " s";
    result.problems.push_back(s.str());
  }
  if (result.nacks > 0) result.problems.push_back(std::to_string(result.nacks) + " publish nacks");
  std::size_t closed = 0;
  std::string why;
  for (auto const& s : subs) {
    if (s->closed()) {
      ++closed;
      why = s->server_error().empty() ? s->error() : s->server_error();
    }
  }
  if (closed > 0) {
    result.problems.push_back(std::to_string(closed) + " subscriber connections closed (" + why +
                              ")");
  }
  env.check_alive();
  return result;
}

std::string describe(RunSpec const& spec, RunResult const& r) {
  std::ostringstream s;
  s << path_name(spec.path) << (spec.unix_app_sockets ? " (unix)" : "")
    << (spec.via_forwarders ? " via forwarders" : "") << ' ' << spec.payload_bytes << "B x"
    << spec.subscribers << ": " << r.delivered << '/' << r.expected << " deliveries in "
    << r.elapsed_s << " s";
  if (r.elapsed_s > 0) {
    s << " (cpu/wall:";
    for (auto const& [name, secs] : r.cpu_s) s << ' ' << name << '=' << secs / r.elapsed_s;
    s << ')';
  }
  for (auto const& p : r.problems) s << "; " << p;
  return s.str();
}

}  // namespace bench
