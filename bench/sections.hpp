// The measured sections. Each adds rows (direct vs podrelay), notes and raw runs to the
// report; each throws on a failure that makes its figures meaningless.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "environment.hpp"
#include "options.hpp"
#include "report.hpp"

namespace bench {

struct SectionContext {
  Environment& env;
  Report& report;
  Options const& options;

  // A count or duration for a full run, scaled; `quick_value` in --quick mode.
  double scaled(double full_value, double quick_value) const {
    return options.quick ? quick_value : full_value * options.duration_scale;
  }
  std::uint64_t count(double full_value, double quick_value) const {
    return static_cast<std::uint64_t>(std::max(1.0, std::round(scaled(full_value, quick_value))));
  }
};

void throughput_section(SectionContext& ctx);
void latency_section(SectionContext& ctx);
void fanout_section(SectionContext& ctx);
void cpu_section(SectionContext& ctx);
void memory_section(SectionContext& ctx);
void cluster_section(SectionContext& ctx);
void instructions_section(SectionContext& ctx);
void resp_section(SectionContext& ctx);

// The throughput measurement (one publisher, one subscriber, `messages` acked PUBs / pipelined
// PUBLISHes under an end-to-end window), median of `reps` runs, direct and podrelay
// alternating; runs and problems are recorded under `section`. Used by the throughput and
// resp sections.
struct ThroughputFigures {
  double direct = NAN;
  double podrelay = NAN;
  double floor = NAN;  // direct through the forwarders (two-hop floor), when asked for
};
inline constexpr std::size_t throughput_window = 4096;
// The throughput workload's spec: acked PUBs / pipelined PUBLISHes under throughput_window.
RunSpec throughput_spec(Path path, std::size_t payload, std::uint64_t messages,
                        double time_limit_s);
// Runs `spec` on `env`, logs it, and records the run and its problems under `section`.
RunResult run_and_record(SectionContext& ctx, Environment& env, std::string const& section,
                         RunSpec const& spec);
ThroughputFigures measure_throughput(SectionContext& ctx, std::string const& section,
                                     std::size_t payload, std::uint64_t messages, int reps,
                                     bool with_floor = false);

// Median of a few repetitions (the machine is shared; one noisy run should not decide).
inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  auto const n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Short text of a number: 2, 0.5, 1e+06.
inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// "64 B" or "1 KiB".
inline std::string size_label(std::size_t bytes) {
  return bytes % 1024 == 0 ? std::to_string(bytes / 1024) + " KiB" : std::to_string(bytes) + " B";
}

}  // namespace bench
