// CPU cost per million messages at fixed moderate rates (20k and 2k msgs/s): CPU time
// (utime + stime from /proc/<pid>/stat) of the sidecars and Redis over a paced run, divided
// by messages. The 2k run lasts longer so the 10 ms tick resolution stays small. At these
// rates every message is a wake-up of each process, whose cost on a VM depends on where the
// scheduler put the processes: each figure is the median of interleaved repetitions.
#include <iostream>

#include "sections.hpp"

namespace bench {
namespace {

enum Layout { direct_two, podrelay_two, podrelay_unix, forwarders, direct_one, layouts };
char const* const layout_name[layouts] = {"direct", "podrelay", "podrelay (unix sockets)",
                                          "two-hop floor (forwarders)", "direct (one process)"};

double per_m(RunResult const& r, std::string const& who) {
  auto const it = r.cpu_s.find(who);
  if (it == r.cpu_s.end() || it->second < 0 || r.published == 0) return double(NAN);
  return it->second * 1e6 / double(r.published);
}

void rate_runs(SectionContext& ctx, double rate, double seconds, int reps) {
  for (std::size_t const payload : {std::size_t{64}, std::size_t{1024}}) {
    // Per layout, per process ("redis", "sidecar_a", ...): one value per repetition.
    std::map<std::string, std::vector<double>> v[layouts];
    // The one-process baseline of earlier runs, for reference at 64 B only.
    int const n_layouts = payload == 64 ? layouts : direct_one;
    for (int rep = 0; rep < reps; ++rep) {
      for (int l = 0; l < n_layouts; ++l) {
        RunSpec spec;
        bool const podrelay = l == podrelay_two || l == podrelay_unix;
        spec.path = podrelay ? Path::podrelay : Path::direct;
        spec.unix_app_sockets = l == podrelay_unix;
        spec.via_forwarders = l == forwarders;
        spec.payload_bytes = payload;
        spec.rate = rate;
        spec.messages = static_cast<std::uint64_t>(rate * seconds);
        spec.time_limit_s = seconds + 10;
        spec.separate_subscriber = l != direct_one;
        auto const r = run_pubsub(ctx.env, spec);
        std::cerr << "  cpu " << layout_name[l] << ": " << describe(spec, r) << '\n';
        ctx.report.add_run("cpu", spec, r);
        for (auto const& p : r.problems) {
          ctx.report.note("cpu",
                          std::string(layout_name[l]) + " " + size_label(payload) + ": " + p);
        }
        for (char const* who : {"redis", "sidecar_a", "sidecar_b", "bench"}) {
          v[l][who].push_back(per_m(r, who));
        }
        v[l]["sidecars"].push_back(per_m(r, "sidecar_a") + per_m(r, "sidecar_b"));
        v[l]["servers"].push_back(v[l]["redis"].back() +
                                  (podrelay || l == forwarders ? v[l]["sidecars"].back() : 0.0));
      }
    }
    auto med = [&](int l, char const* who) {
      auto const it = v[l].find(who);
      return it == v[l].end() ? double(NAN) : median(it->second);
    };
    auto const label = size_label(payload) + " @" + num(rate / 1000) + "k/s";
    char const* const unit = "cpu s / 1M msgs";
    ctx.report.add({"cpu", "sidecars a+b vs redis, " + label, unit, med(direct_two, "redis"),
                    med(podrelay_two, "sidecars")});
    ctx.report.add(
        {"cpu", "sidecar a (publish side), " + label, unit, NAN, med(podrelay_two, "sidecar_a")});
    ctx.report.add(
        {"cpu", "sidecar b (subscribe side), " + label, unit, NAN, med(podrelay_two, "sidecar_b")});
    ctx.report.add({"cpu", "redis-server, " + label, unit, med(direct_two, "redis"),
                    med(podrelay_two, "redis")});
    ctx.report.add({"cpu", "sidecars a+b vs redis, apps on unix sockets, " + label, unit,
                    med(direct_two, "redis"), med(podrelay_unix, "sidecars")});
    ctx.report.add({"cpu", "sidecar a, apps on unix sockets, " + label, unit, NAN,
                    med(podrelay_unix, "sidecar_a")});
    ctx.report.add({"cpu", "sidecar b, apps on unix sockets, " + label, unit, NAN,
                    med(podrelay_unix, "sidecar_b")});
    ctx.report.add({"cpu", "two-hop floor: forwarders a+b vs redis, " + label, unit,
                    med(direct_two, "redis"), med(forwarders, "sidecars")});
    ctx.report.add({"cpu", "sidecars a+b vs the two-hop floor, " + label, unit,
                    med(forwarders, "sidecars"), med(podrelay_two, "sidecars")});
    ctx.report.add({"cpu", "sidecar a vs forwarder a (publish side), " + label, unit,
                    med(forwarders, "sidecar_a"), med(podrelay_two, "sidecar_a")});
    ctx.report.add({"cpu", "sidecar b vs forwarder b (subscribe side), " + label, unit,
                    med(forwarders, "sidecar_b"), med(podrelay_two, "sidecar_b")});
    ctx.report.add({"cpu", "all server processes, " + label, unit, med(direct_two, "servers"),
                    med(podrelay_two, "servers")});
    ctx.report.add({"cpu", "bench client, " + label, unit, med(direct_two, "bench"),
                    med(podrelay_two, "bench")});
    if (n_layouts == layouts) {
      ctx.report.add({"cpu", "sidecars a+b vs redis direct from one process, " + label, unit,
                      med(direct_one, "redis"), med(podrelay_two, "sidecars")});
    }
  }
}

}  // namespace

void cpu_section(SectionContext& ctx) {
  int const reps = ctx.options.quick ? 1 : 3;
  for (double const rate : {20'000.0, 2'000.0}) {
    rate_runs(ctx, rate, ctx.scaled(rate >= 20'000 ? 4 : 6, 0.3), reps);
  }
  ctx.report.note("cpu",
                  "paced 20k msgs/s for " + num(ctx.scaled(4, 0.3)) + " s and 2k msgs/s for " +
                      num(ctx.scaled(6, 0.3)) +
                      " s per run, 1 publisher and 1 subscriber in two bench processes (two apps, "
                      "as two pods are); median of " +
                      std::to_string(reps) +
                      " interleaved runs per layout; /proc tick resolution 10 ms. 'sidecars a+b vs "
                      "redis' compares what podrelay adds with what Redis itself spends on the "
                      "same messages directly. 'direct from one process': publisher and "
                      "subscriber in one bench process, the baseline before 2026-12-03 (Redis "
                      "then wakes one process per message instead of two). 'apps on unix "
                      "sockets': the bench apps reach their sidecars over --listen unix:PATH "
                      "(a shared volume in a pod); Redis is still reached over TCP. 'two-hop "
                      "floor': the direct RESP clients each reach Redis through "
                      "podrelay-bench-forwarder, which copies bytes and does nothing else: what "
                      "any sidecar pays for its extra hop and wake-up on this machine. Forwarder a "
                      "also carries Redis' reply to every PUBLISH back to the publisher, which "
                      "podrelay's fire-and-forget PUB does not ask for.");
}

}  // namespace bench
