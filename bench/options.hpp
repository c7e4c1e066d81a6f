// Command-line flags of podrelay-bench. Parsing is pure (no I/O besides locating the
// default podrelay binary next to our own executable).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace bench {

// The sections, in the order they run. --only takes one or more of these, comma separated.
inline std::vector<std::string> const& all_sections() {
  static std::vector<std::string> const names{"throughput", "latency", "fanout",       "cpu",
                                              "memory",     "cluster", "instructions", "resp"};
  return names;
}

struct Options {
  std::string podrelay;   // sidecar binary
  std::string forwarder;  // podrelay-bench-forwarder, the two-hop floor
  std::string redis_server = "redis-server";
  std::string json_path;          // empty: no JSON file
  std::vector<std::string> only;  // empty: every section
  bool quick = false;             // tiny counts, a smoke test of a few seconds
  double duration_scale = 1.0;    // multiplies every count and duration
  bool keep_logs = false;         // keep child logs even on success
  bool help = false;

  bool wants(std::string const& section) const;
};

struct ParsedOptions {
  Options options;
  std::string error;  // non-empty: print with usage, exit 2
};

ParsedOptions parse_options(int argc, char** argv);
std::string usage();

}  // namespace bench
