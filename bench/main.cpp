// podrelay-bench: starts redis-server and podrelay sidecars on free loopback ports and
// measures podrelay against Redis used directly, side by side in one run. See README.md.
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>

#include "child_processes.hpp"
#include "environment.hpp"
#include "options.hpp"
#include "report.hpp"
#include "sections.hpp"

namespace {

using namespace bench;

std::string read_first_line(std::string const& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string command_output(std::string const& cmd) {
  auto out = run_command(cmd).output;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string utc_now() {
  std::time_t const t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (!parsed.error.empty()) {
    std::cerr << "podrelay-bench: " << parsed.error << "\n" << usage();
    return 2;
  }
  auto const& opt = parsed.options;
  if (opt.help) {
    std::cout << usage();
    return 0;
  }
  install_child_cleanup_handlers();
  // 10,000 idle connections plus the bench's own sockets; children inherit the limit.
  auto const fd_limit = raise_fd_limit(20'000);

  char dir_template[] = "/tmp/podrelay-bench.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    std::cerr << "podrelay-bench: cannot create a log directory in /tmp\n";
    return 1;
  }
  std::string const log_dir = dir_template;

  Report report;
  report.meta("date", utc_now());
  report.meta("cpus", std::to_string(std::thread::hardware_concurrency()));
  report.meta("loadavg_before", read_first_line("/proc/loadavg"));
  report.meta("kernel", read_first_line("/proc/sys/kernel/osrelease"));
  report.meta("podrelay",
              opt.podrelay + " (" + command_output(shell_quote(opt.podrelay) + " --version") + ")");
  report.meta("redis", command_output(opt.redis_server + " --version"));
  report.meta("mode", opt.quick ? "quick (smoke test; figures not meaningful)"
                                : "full, duration scale " + std::to_string(opt.duration_scale));
  report.meta("fd_limit", std::to_string(fd_limit));
  report.meta("core_sharing",
              "all processes share the machine's CPUs without pinning: the bench (1 thread, "
              "epoll), redis-server, podrelay sidecar a (publish side) and sidecar b "
              "(subscribe side), 1 thread each; a direct run keeps 2 processes busy (bench, "
              "redis), a podrelay run 4 (bench, redis, a, b)");
  report.meta("log_dir", log_dir);

  bool failed = false;
  {
    Environment env(opt, log_dir);
    SectionContext ctx{env, report, opt};
    try {
      std::cerr << "starting redis-server and sidecars (logs in " << log_dir << ")\n";
      env.start_redis();
      bool const need_pair = opt.wants("throughput") || opt.wants("latency") ||
                             opt.wants("fanout") || opt.wants("cpu") || opt.wants("cluster") ||
                             opt.wants("resp");
      if (need_pair) {
        env.start_sidecar("a");
        env.start_sidecar("b");
      }
    } catch (std::exception const& e) {
      std::cerr << "podrelay-bench: " << e.what() << '\n';
      return 1;
    }
    std::vector<std::pair<std::string, std::function<void(SectionContext&)>>> const sections{
        {"throughput", throughput_section},
        {"latency", latency_section},
        {"fanout", fanout_section},
        {"cpu", cpu_section},
        {"memory", memory_section},
        {"cluster", cluster_section},
        {"instructions", instructions_section},
        {"resp", resp_section},
    };
    for (auto const& [name, run] : sections) {
      if (!opt.wants(name)) continue;
      std::cerr << "section " << name << '\n';
      report.section_ran(name);
      try {
        run(ctx);
      } catch (std::exception const& e) {
        failed = true;
        report.error(name, e.what());
        std::cerr << "  section " << name << " failed: " << e.what() << '\n';
        try {
          env.check_alive();
        } catch (std::exception const& dead) {
          std::cerr << "podrelay-bench: giving up: " << dead.what() << '\n';
          break;
        }
      }
    }
    double const dropped_a = env.sidecar_metric("a", "podrelay_messages_dropped_total");
    double const dropped_b = env.sidecar_metric("b", "podrelay_slow_consumer_disconnects_total");
    report.meta("sidecar_a_messages_dropped_total", json_number(dropped_a));
    report.meta("sidecar_b_slow_consumer_disconnects_total", json_number(dropped_b));
    report.meta("loadavg_after", read_first_line("/proc/loadavg"));
  }  // children stopped here

  report.print_table(std::cout);
  if (!opt.json_path.empty()) {
    std::string error;
    if (!report.write_json(opt.json_path, error)) {
      std::cerr << "podrelay-bench: " << error << '\n';
      failed = true;
    }
  }
  if (!failed && !opt.keep_logs) {
    std::error_code ignored;
    std::filesystem::remove_all(log_dir, ignored);
  } else {
    std::cerr << "child logs kept in " << log_dir << '\n';
  }
  return failed ? 1 : 0;
}
