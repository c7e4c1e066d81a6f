// Max delivered throughput: one publisher, one subscriber, a fixed count of messages
// published as fast as an end-to-end window allows.
#include <iostream>

#include "sections.hpp"

namespace bench {

void throughput_section(SectionContext& ctx) {
  constexpr std::size_t window = 4096;
  auto const messages = ctx.count(500'000, 2'000);
  int const reps = ctx.options.quick ? 1 : 3;
  for (std::size_t const payload : {std::size_t{64}, std::size_t{1024}}) {
    Row row{"throughput", "delivered msgs/s, " + size_label(payload), "msgs/s"};
    std::vector<double> rates[2];
    for (int rep = 0; rep < reps; ++rep) {
      for (Path const path : {Path::direct, Path::podrelay}) {
        RunSpec spec;
        spec.path = path;
        spec.payload_bytes = payload;
        spec.messages = messages;
        spec.window = window;
        spec.time_limit_s = ctx.scaled(60, 10);
        auto const r = run_pubsub(ctx.env, spec);
        std::cerr << "  throughput: " << describe(spec, r) << '\n';
        ctx.report.add_run("throughput", spec, r);
        rates[path == Path::podrelay].push_back(r.messages_per_s());
        for (auto const& p : r.problems) {
          ctx.report.note("throughput",
                          std::string(path_name(path)) + " " + size_label(payload) + ": " + p);
        }
      }
    }
    row.direct = median(rates[0]);
    row.podrelay = median(rates[1]);
    ctx.report.add(row);
  }
  ctx.report.note("throughput",
                  std::to_string(messages) +
                      " messages per run; podrelay PUBs are acked "
                      "(request id != 0) and the direct PUBLISHes pipelined, both under the same "
                      "end-to-end window of " +
                      std::to_string(window) +
                      " messages published but not yet delivered. Rate = delivered / (first "
                      "publish .. last delivery); median of " +
                      std::to_string(reps) + " runs, direct and podrelay alternating.");
}

}  // namespace bench
