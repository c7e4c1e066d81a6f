// CPU cost per million messages at fixed moderate rates (20k and 2k msgs/s): CPU time
// (utime + stime from /proc/<pid>/stat) of the sidecars and Redis over a paced run, divided
// by messages. The 2k run lasts longer so the 10 ms tick resolution stays small.
#include <iostream>

#include "sections.hpp"

namespace bench {
namespace {

void rate_runs(SectionContext& ctx, double rate, double seconds) {
  for (std::size_t const payload : {std::size_t{64}, std::size_t{1024}}) {
    RunResult results[2];
    for (Path const path : {Path::direct, Path::podrelay}) {
      RunSpec spec;
      spec.path = path;
      spec.payload_bytes = payload;
      spec.rate = rate;
      spec.messages = static_cast<std::uint64_t>(rate * seconds);
      spec.time_limit_s = seconds + 10;
      auto r = run_pubsub(ctx.env, spec);
      std::cerr << "  cpu: " << describe(spec, r) << '\n';
      ctx.report.add_run("cpu", spec, r);
      for (auto const& p : r.problems) {
        ctx.report.note("cpu", std::string(path_name(path)) + " " + size_label(payload) + ": " + p);
      }
      results[path == Path::podrelay] = std::move(r);
    }
    auto per_m = [](RunResult const& r, std::string const& who) {
      auto const it = r.cpu_s.find(who);
      if (it == r.cpu_s.end() || it->second < 0 || r.published == 0) return double(NAN);
      return it->second * 1e6 / double(r.published);
    };
    auto const& d = results[0];
    auto const& p = results[1];
    auto const label = size_label(payload) + " @" + num(rate / 1000) + "k/s";
    double const sidecars = per_m(p, "sidecar_a") + per_m(p, "sidecar_b");
    ctx.report.add(
        {"cpu", "sidecars a+b vs redis, " + label, "cpu s / 1M msgs", per_m(d, "redis"), sidecars});
    ctx.report.add({"cpu", "sidecar a (publish side), " + label, "cpu s / 1M msgs", NAN,
                    per_m(p, "sidecar_a")});
    ctx.report.add({"cpu", "sidecar b (subscribe side), " + label, "cpu s / 1M msgs", NAN,
                    per_m(p, "sidecar_b")});
    ctx.report.add(
        {"cpu", "redis-server, " + label, "cpu s / 1M msgs", per_m(d, "redis"), per_m(p, "redis")});
    ctx.report.add({"cpu", "all server processes, " + label, "cpu s / 1M msgs", per_m(d, "redis"),
                    per_m(p, "redis") + sidecars});
    ctx.report.add(
        {"cpu", "bench client, " + label, "cpu s / 1M msgs", per_m(d, "bench"), per_m(p, "bench")});
  }
}

}  // namespace

void cpu_section(SectionContext& ctx) {
  for (double const rate : {20'000.0, 2'000.0}) {
    rate_runs(ctx, rate, ctx.scaled(rate >= 20'000 ? 5 : 10, 0.3));
  }
  ctx.report.note("cpu", "paced 20k msgs/s for " + num(ctx.scaled(5, 0.3)) +
                             " s and 2k msgs/s for " + num(ctx.scaled(10, 0.3)) +
                             " s per run, 1 publisher and 1 subscriber; /proc tick resolution "
                             "10 ms. 'sidecars a+b vs redis' compares what podrelay adds "
                             "with what Redis itself spends on the same messages directly.");
}

}  // namespace bench
