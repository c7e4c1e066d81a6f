// Max delivered throughput: one publisher, one subscriber, a fixed count of messages
// published as fast as an end-to-end window allows.
#include <iostream>

#include "sections.hpp"

namespace bench {

RunSpec throughput_spec(Path path, std::size_t payload, std::uint64_t messages,
                        double time_limit_s) {
  RunSpec spec;
  spec.path = path;
  spec.payload_bytes = payload;
  spec.messages = messages;
  spec.window = throughput_window;
  spec.time_limit_s = time_limit_s;
  return spec;
}

RunResult run_and_record(SectionContext& ctx, Environment& env, std::string const& section,
                         RunSpec const& spec) {
  auto r = run_pubsub(env, spec);
  std::cerr << "  " << section << ": " << describe(spec, r) << '\n';
  ctx.report.add_run(section, spec, r);
  for (auto const& p : r.problems) {
    ctx.report.note(section, std::string(path_name(spec.path)) + " " +
                                 size_label(spec.payload_bytes) + ": " + p);
  }
  return r;
}

ThroughputFigures measure_throughput(SectionContext& ctx, std::string const& section,
                                     std::size_t payload, std::uint64_t messages, int reps,
                                     bool with_floor) {
  // 0: direct, 1: podrelay, 2: direct through the forwarders.
  std::vector<double> rates[3];
  for (int rep = 0; rep < reps; ++rep) {
    for (int layout = 0; layout < (with_floor ? 3 : 2); ++layout) {
      auto spec = throughput_spec(layout == 1 ? Path::podrelay : Path::direct, payload, messages,
                                  ctx.scaled(60, 10));
      spec.via_forwarders = layout == 2;
      auto const r = run_and_record(ctx, ctx.env, section, spec);
      rates[layout].push_back(r.messages_per_s());
    }
  }
  return {median(rates[0]), median(rates[1]), with_floor ? median(rates[2]) : double(NAN)};
}

void throughput_section(SectionContext& ctx) {
  auto const messages = ctx.count(500'000, 2'000);
  int const reps = ctx.options.quick ? 1 : 3;
  for (std::size_t const payload : {std::size_t{64}, std::size_t{1024}}) {
    auto const f = measure_throughput(ctx, "throughput", payload, messages, reps, true);
    ctx.report.add(
        {"throughput", "delivered msgs/s, " + size_label(payload), "msgs/s", f.direct, f.podrelay});
    ctx.report.add({"throughput", "two-hop floor (forwarders), " + size_label(payload), "msgs/s",
                    f.direct, f.floor});
    ctx.report.add({"throughput", "podrelay vs the two-hop floor, " + size_label(payload), "msgs/s",
                    f.floor, f.podrelay});
  }
  ctx.report.note("throughput",
                  std::to_string(messages) +
                      " messages per run; podrelay PUBs are acked "
                      "(request id != 0) and the direct PUBLISHes pipelined, both under the same "
                      "end-to-end window of " +
                      std::to_string(throughput_window) +
                      " messages published but not yet delivered. Rate = delivered / (first "
                      "publish .. last delivery); median of " +
                      std::to_string(reps) +
                      " runs, direct, podrelay and the two-hop floor (the direct clients through "
                      "podrelay-bench-forwarder, a byte-copying TCP proxy each) alternating.");
}

}  // namespace bench
