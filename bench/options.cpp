#include "options.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace bench {
namespace {

// build/bin/<name> next to build/bin/podrelay-bench.
std::string sibling(std::string const& name) {
  char self[PATH_MAX] = {};
  auto const n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "build/bin/" + name;
  std::string path(self, static_cast<std::size_t>(n));
  auto const slash = path.rfind('/');
  return (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/" + name;
}

std::vector<std::string> split_commas(std::string const& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

bool Options::wants(std::string const& section) const {
  return only.empty() || std::find(only.begin(), only.end(), section) != only.end();
}

std::string usage() {
  std::ostringstream out;
  out << "usage: podrelay-bench [--quick] [--duration-scale X] [--only SECTION[,SECTION...]]\n"
         "                      [--json FILE] [--podrelay PATH] [--redis-server PATH] "
         "[--keep-logs]\n"
         "sections:";
  for (auto const& s : all_sections()) out << ' ' << s;
  out << "\nStarts its own redis-server and podrelay sidecars on free loopback ports, runs the\n"
         "sections and prints metric | direct | podrelay | ratio (podrelay / direct).\n";
  return out.str();
}

ParsedOptions parse_options(int argc, char** argv) {
  ParsedOptions r;
  auto& o = r.options;
  o.podrelay = sibling("podrelay");
  o.forwarder = sibling("podrelay-bench-forwarder");
  for (int i = 1; i < argc; ++i) {
    std::string const arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        r.error = arg + " needs a value";
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--help" || arg == "-h") {
      o.help = true;
    } else if (arg == "--quick") {
      o.quick = true;
    } else if (arg == "--keep-logs") {
      o.keep_logs = true;
    } else if (arg == "--json") {
      if (!value(o.json_path)) return r;
    } else if (arg == "--podrelay") {
      if (!value(o.podrelay)) return r;
    } else if (arg == "--redis-server") {
      if (!value(o.redis_server)) return r;
    } else if (arg == "--duration-scale") {
      if (!value(v)) return r;
      char* end = nullptr;
      o.duration_scale = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !std::isfinite(o.duration_scale) ||
          o.duration_scale <= 0 || o.duration_scale > 100) {
        r.error = "--duration-scale must be a number in (0, 100]";
        return r;
      }
    } else if (arg == "--only") {
      if (!value(v)) return r;
      for (auto const& s : split_commas(v)) {
        auto const& all = all_sections();
        if (std::find(all.begin(), all.end(), s) == all.end()) {
          r.error = "--only: unknown section '" + s + "'";
          return r;
        }
        o.only.push_back(s);
      }
      if (o.only.empty()) {
        r.error = "--only needs at least one section";
        return r;
      }
    } else {
      r.error = "unknown argument '" + arg + "'";
      return r;
    }
  }
  return r;
}

}  // namespace bench
