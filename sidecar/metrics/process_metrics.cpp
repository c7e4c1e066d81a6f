#include "metrics/process_metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace podrelay::metrics {
namespace {

void metric(std::string& out, char const* name, char const* type, char const* help, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  out += buf;
  out += '\n';
}

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double v = 0;
      in >> v;
      return v;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

void append_process_metrics(std::string& out) {
  auto const ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto const page = static_cast<double>(sysconf(_SC_PAGESIZE));

  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the ")" that closes the command name; utime is field 14, stime 15,
  // starttime 22, vsize 23, rss 24 (1-based, as in proc(5)).
  auto const close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(line.substr(close + 2));
    std::string f[23];
    for (auto& s : f) fields >> s;
    double const utime = std::stod(f[11]);
    double const stime = std::stod(f[12]);
    double const start = std::stod(f[19]);
    double const vsize = std::stod(f[20]);
    double const rss = std::stod(f[21]);
    metric(out, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.", (utime + stime) / ticks);
    metric(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           rss * page);
    metric(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
    metric(out, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.",
           boot_time_seconds() + start / ticks);
  }

  int fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) fds += e->d_name[0] != '.' ? 1 : 0;
    closedir(d);
    --fds;  // the directory stream itself
  }
  metric(out, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    metric(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
           static_cast<double>(lim.rlim_cur));
  }
}

}  // namespace podrelay::metrics
