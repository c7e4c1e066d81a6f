// Fan-out: one publisher, N subscriber connections on one channel. Through podrelay all N
// sit on sidecar b (one Redis subscription, local fan-out); directly, N Redis subscribers.
#include <iostream>

#include "sections.hpp"

namespace bench {

void fanout_section(SectionContext& ctx) {
  for (std::size_t const payload : {std::size_t{64}, std::size_t{1024}}) {
    double const target_deliveries = payload <= 64 ? 4e6 : 2e6;
    for (std::size_t const n : {std::size_t{1}, std::size_t{100}, std::size_t{1000}}) {
      // Bytes in flight (window x subscribers x message) stay under ~256 MiB, the same
      // window for both paths.
      double const per_window = double(n) * double(payload + 64);
      auto const window =
          static_cast<std::size_t>(std::clamp(256.0 * 1024 * 1024 / per_window, 64.0, 4096.0));
      Row row{"fanout",
              "deliveries/s, 1 pub -> " + std::to_string(n) + " subs, " + size_label(payload),
              "deliveries/s"};
      for (Path const path : {Path::direct, Path::podrelay}) {
        RunSpec spec;
        spec.path = path;
        spec.payload_bytes = payload;
        spec.subscribers = n;
        spec.messages = std::max<std::uint64_t>(
            20, ctx.count(target_deliveries / double(n), 2000.0 / double(n)));
        spec.window = window;
        spec.time_limit_s = ctx.scaled(60, 10);
        auto const r = run_pubsub(ctx.env, spec);
        std::cerr << "  fanout: " << describe(spec, r) << '\n';
        ctx.report.add_run("fanout", spec, r);
        (path == Path::direct ? row.direct : row.podrelay) = r.deliveries_per_s();
        for (auto const& p : r.problems) {
          ctx.report.note("fanout", std::string(path_name(path)) + " x" + std::to_string(n) + " " +
                                        size_label(payload) + ": " + p);
        }
      }
      ctx.report.add(row);
    }
  }
  ctx.report.note("fanout",
                  "podrelay: publisher on sidecar a, all subscribers on sidecar b (one Redis "
                  "SUBSCRIBE, fan-out inside b); direct: N Redis subscriber connections. "
                  "Window mode as in throughput, window = min(4096, 256 MiB / (N x (payload + "
                  "64))) messages for both paths.");
}

}  // namespace bench
