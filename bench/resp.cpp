// The RESP front end (issue 11): redis-benchmark's PUBLISH against a sidecar's --resp-listen
// port versus Redis directly, non-pipelined and pipelined (-P 16), beside the framed path's
// throughput ratio from the same run. Until the daemon has --resp-listen, only the direct
// figures are measured and the section says it is unsupported.
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <sstream>
#include <stdexcept>

#include "child_processes.hpp"
#include "sections.hpp"

namespace bench {
namespace {

constexpr std::size_t payload_bytes = 64;
constexpr int clients = 50;  // redis-benchmark's default -c

// One PUBLISH on a blocking connection; true when the server answered an integer.
bool publish_answers(std::uint16_t port, std::string const& channel) {
  int const fd = connect_blocking(port, 2000);
  if (fd < 0) return false;
  std::string const cmd = "*3\r\n$7\r\nPUBLISH\r\n$" + std::to_string(channel.size()) + "\r\n" +
                          channel + "\r\n$1\r\nx\r\n";
  char buf[256];
  ssize_t n = -1;
  if (::send(fd, cmd.data(), cmd.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(cmd.size())) {
    n = ::recv(fd, buf, sizeof buf, 0);
  }
  ::close(fd);
  return n > 0 && buf[0] == ':';
}

// requests/s of `redis-benchmark ... --csv PUBLISH channel payload`, which is what
// `-t publish` would run (redis-benchmark 7.0 has no built-in publish test).
double redis_benchmark(SectionContext& ctx, std::uint16_t port, std::string const& channel,
                       int pipeline, std::uint64_t requests, std::string const& label) {
  std::ostringstream cmd;
  cmd << "timeout " << int(ctx.scaled(60, 20)) << " redis-benchmark -h 127.0.0.1 -p " << port
      << " -c " << clients << " -n " << requests << " -P " << pipeline << " --csv PUBLISH "
      << shell_quote(channel) << ' ' << std::string(payload_bytes, 'x');
  auto const r = run_command(cmd.str());
  // "test","rps",...  then  "PUBLISH bench.resp xxx","123456.78",...
  double rps = NAN;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    auto const sep = line.find("\",\"");
    if (line.rfind("\"test\"", 0) == 0 || sep == std::string::npos) continue;
    char* end = nullptr;
    double const v = std::strtod(line.c_str() + sep + 3, &end);
    if (end != line.c_str() + sep + 3) rps = v;
  }
  if (r.status != 0 || !std::isfinite(rps)) {
    throw std::runtime_error("redis-benchmark (" + label + ", status " + std::to_string(r.status) +
                             ") gave no PUBLISH figure: " + r.output.substr(0, 500));
  }
  std::cerr << "  resp: " << label << " -P " << pipeline << ": " << rps << " requests/s\n";
  std::ostringstream raw;
  raw << "{\"tool\":\"redis-benchmark\",\"target\":" << json_string(label)
      << ",\"pipeline\":" << pipeline << ",\"clients\":" << clients << ",\"requests\":" << requests
      << ",\"payload_bytes\":" << payload_bytes << ",\"requests_per_s\":" << json_number(rps)
      << '}';
  ctx.report.add_raw("resp", raw.str());
  return rps;
}

}  // namespace

void resp_section(SectionContext& ctx) {
  auto const help = run_command(shell_quote(ctx.options.podrelay) + " --help");
  bool const supported = help.output.find("--resp-listen") != std::string::npos;
  int const reps = ctx.options.quick ? 1 : 3;
  std::string const direct_channel = "direct.bench.resp." + std::to_string(::getpid());
  std::string const relay_channel = "bench.resp." + std::to_string(::getpid());
  if (!publish_answers(ctx.env.redis_port(), direct_channel)) {
    throw std::runtime_error("redis-server did not answer PUBLISH with an integer");
  }
  Sidecar* r = nullptr;
  if (supported) {
    r = &ctx.env.start_sidecar("r", true);
    if (!publish_answers(r->resp_port, relay_channel)) {
      throw std::runtime_error("the sidecar's RESP port did not answer PUBLISH with an integer");
    }
  }

  for (int const pipeline : {1, 16}) {
    auto const requests = pipeline == 1 ? ctx.count(100'000, 2'000) : ctx.count(500'000, 5'000);
    std::vector<double> rps[2];
    for (int rep = 0; rep < reps; ++rep) {
      rps[0].push_back(
          redis_benchmark(ctx, ctx.env.redis_port(), direct_channel, pipeline, requests, "direct"));
      if (r != nullptr) {
        rps[1].push_back(redis_benchmark(ctx, r->resp_port, relay_channel, pipeline, requests,
                                         "podrelay RESP port"));
      }
    }
    auto const label =
        std::string("PUBLISH requests/s, redis-benchmark -c ") + std::to_string(clients) +
        (pipeline == 1 ? "" : " -P " + std::to_string(pipeline)) + ", " + size_label(payload_bytes);
    ctx.report.add({"resp", label, "requests/s", median(rps[0]), median(rps[1])});
  }
  if (r != nullptr) ctx.env.stop_sidecar("r");

  ThroughputFigures framed;
  auto const messages = ctx.count(500'000, 2'000);
  if (supported) framed = measure_throughput(ctx, "resp", payload_bytes, messages, reps);
  ctx.report.add({"resp", "framed path (same run), delivered msgs/s, " + size_label(payload_bytes),
                  "msgs/s", framed.direct, framed.podrelay});

  ctx.report.note("resp", "redis-benchmark -c " + std::to_string(clients) + " PUBLISH <channel> <" +
                              std::to_string(payload_bytes) +
                              " B> (what -t publish would run; redis-benchmark 7.0 has no "
                              "publish test), no subscribers; direct: redis-server's port, "
                              "podrelay: a fresh sidecar's --resp-listen port; median of " +
                              std::to_string(reps) + " runs, direct and podrelay alternating.");
  if (!supported) {
    std::string const reason =
        "this podrelay has no --resp-listen (podrelay --help), so the RESP "
        "front end cannot be measured";
    ctx.report.unsupported("resp", reason);
    ctx.report.note("resp", reason +
                                "; the direct redis-benchmark figures are measured, the "
                                "podrelay column is null and the framed comparison is in "
                                "the throughput section.");
    return;
  }
  ctx.report.note("resp", "framed path: the throughput section's measurement (" +
                              std::to_string(messages) +
                              " messages, acked PUBs vs pipelined PUBLISH, end-to-end window " +
                              std::to_string(throughput_window) +
                              ") run again in this section, so its ratio and the RESP ratios "
                              "come from the same run. Issue 11 asks the RESP ratio to reach "
                              "at least the framed ratio.");
}

}  // namespace bench
