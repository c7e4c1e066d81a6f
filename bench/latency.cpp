// Latency at fixed rates: a paced publisher stamps each payload with its send time; the
// subscriber (a process of its own, as in production; the steady clock is the same in both)
// records now - stamp.
#include <iostream>

#include "sections.hpp"
#include "stats.hpp"

namespace bench {

void latency_section(SectionContext& ctx) {
  double const seconds = ctx.scaled(2, 0.3);
  int const reps = ctx.options.quick ? 1 : 3;
  double const warmup = ctx.scaled(0.5, 0.05);
  for (std::size_t const payload : {std::size_t{64}, std::size_t{1024}}) {
    for (double const rate : {10'000.0, 50'000.0}) {
      // 0: direct, 1: podrelay, 2: direct through the forwarders (the two-hop floor).
      std::vector<Percentiles> per_run[3];
      for (int rep = 0; rep < reps; ++rep) {
        for (int layout = 0; layout < 3; ++layout) {
          Path const path = layout == 1 ? Path::podrelay : Path::direct;
          RunSpec spec;
          spec.path = path;
          spec.via_forwarders = layout == 2;
          spec.payload_bytes = payload;
          spec.rate = rate;
          spec.warmup_messages = static_cast<std::uint64_t>(rate * warmup);
          spec.messages = static_cast<std::uint64_t>(rate * (seconds + warmup));
          spec.record_latency = true;
          spec.separate_subscriber = true;
          spec.time_limit_s = seconds + warmup + 10;
          auto const r = run_pubsub(ctx.env, spec);
          std::cerr << "  latency @" << rate << "/s: " << describe(spec, r) << '\n';
          ctx.report.add_run("latency", spec, r);
          per_run[layout].push_back(percentiles(r.latencies_ns));
          for (auto const& problem : r.problems) {
            ctx.report.note("latency", std::string(layout == 2 ? "forwarders" : path_name(path)) +
                                           " " + size_label(payload) + " @" +
                                           std::to_string(int(rate)) + "/s: " + problem);
          }
        }
      }
      Percentiles p[3];
      for (int i = 0; i < 3; ++i) {
        auto pick = [&](double Percentiles::*field) {
          std::vector<double> v;
          for (auto const& q : per_run[i]) v.push_back(q.*field);
          return median(v);
        };
        p[i].p50_us = pick(&Percentiles::p50_us);
        p[i].p90_us = pick(&Percentiles::p90_us);
        p[i].p99_us = pick(&Percentiles::p99_us);
        p[i].p999_us = pick(&Percentiles::p999_us);
      }
      auto const label = size_label(payload) + " @" + std::to_string(int(rate / 1000)) + "k/s";
      ctx.report.add({"latency", "p50 " + label, "us", p[0].p50_us, p[1].p50_us});
      ctx.report.add({"latency", "p90 " + label, "us", p[0].p90_us, p[1].p90_us});
      ctx.report.add({"latency", "p99 " + label, "us", p[0].p99_us, p[1].p99_us});
      ctx.report.add({"latency", "p99.9 " + label, "us", p[0].p999_us, p[1].p999_us});
      ctx.report.add(
          {"latency", "two-hop floor (forwarders) p50 " + label, "us", p[0].p50_us, p[2].p50_us});
      ctx.report.add(
          {"latency", "two-hop floor (forwarders) p99 " + label, "us", p[0].p99_us, p[2].p99_us});
      ctx.report.add({"latency", "podrelay vs the two-hop floor, p99 " + label, "us", p[2].p99_us,
                      p[1].p99_us});
    }
  }
  ctx.report.note("latency",
                  "publish-to-delivery latency; paced sender, " + num(seconds) +
                      " s per run after " + num(warmup) + " s warm-up; median over " +
                      std::to_string(reps) +
                      " runs per path (alternating) of each run's percentile; publisher and "
                      "subscriber in two bench processes; podrelay PUBs "
                      "fire and forget (request id 0), direct "
                      "PUBLISH replies read and discarded; timestamp taken just before each "
                      "write (max send lag behind schedule is in the JSON runs). Two-hop floor: "
                      "the direct clients through podrelay-bench-forwarder, a byte-copying TCP "
                      "proxy each (see the cpu section).");
}

}  // namespace bench
