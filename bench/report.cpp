#include "report.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "stats.hpp"

namespace bench {
namespace {

std::string format_value(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  double const a = std::fabs(v);
  if (a >= 100000) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (a >= 100) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

std::string format_ratio(double r) {
  if (!std::isfinite(r)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

}  // namespace

std::string json_string(std::string const& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream s;
  s << std::setprecision(10) << v;
  return s.str();
}

void Report::add_run(std::string const& section, RunSpec const& spec, RunResult const& r) {
  std::ostringstream j;
  j << "{\"path\":" << json_string(path_name(spec.path))
    << ",\"unix_app_sockets\":" << (spec.unix_app_sockets ? "true" : "false")
    << ",\"via_forwarders\":" << (spec.via_forwarders ? "true" : "false")
    << ",\"payload_bytes\":" << spec.payload_bytes << ",\"subscribers\":" << spec.subscribers
    << ",\"mode\":" << json_string(spec.rate > 0 ? "paced_fire_and_forget" : "window_acked")
    << ",\"rate\":" << json_number(spec.rate) << ",\"window\":" << spec.window
    << ",\"published\":" << r.published << ",\"acks\":" << r.acks << ",\"nacks\":" << r.nacks
    << ",\"delivered\":" << r.delivered << ",\"expected\":" << r.expected
    << ",\"complete\":" << (r.complete ? "true" : "false")
    << ",\"elapsed_s\":" << json_number(r.elapsed_s) << ",\"setup_s\":" << json_number(r.setup_s)
    << ",\"deliveries_per_s\":" << json_number(r.deliveries_per_s())
    << ",\"max_send_lag_us\":" << json_number(r.max_send_lag_s * 1e6) << ",\"cpu_s\":{";
  bool first = true;
  for (auto const& [name, secs] : r.cpu_s) {
    j << (first ? "" : ",") << json_string(name) << ':' << json_number(secs);
    first = false;
  }
  j << '}';
  if (spec.record_latency) {
    auto const p = percentiles(r.latencies_ns);
    j << ",\"latency_us\":{\"samples\":" << p.samples << ",\"p50\":" << json_number(p.p50_us)
      << ",\"p90\":" << json_number(p.p90_us) << ",\"p99\":" << json_number(p.p99_us)
      << ",\"p99_9\":" << json_number(p.p999_us) << ",\"max\":" << json_number(p.max_us) << '}';
  }
  j << ",\"problems\":[";
  for (std::size_t i = 0; i < r.problems.size(); ++i) {
    j << (i ? "," : "") << json_string(r.problems[i]);
  }
  j << "]}";
  add_raw(section, j.str());
}

void Report::print_table(std::ostream& out) const {
  std::size_t w_metric = 6, w_val = 10;
  for (auto const& r : rows_) {
    w_metric = std::max(w_metric, r.metric.size() + r.unit.size() + 3);
    w_val = std::max({w_val, format_value(r.direct).size(), format_value(r.podrelay).size()});
  }
  auto line = [&](std::string const& m, std::string const& d, std::string const& p,
                  std::string const& ratio) {
    out << std::left << std::setw(static_cast<int>(w_metric)) << m << " | " << std::right
        << std::setw(static_cast<int>(w_val)) << d << " | " << std::setw(static_cast<int>(w_val))
        << p << " | " << std::setw(7) << ratio << '\n';
  };
  for (auto const& [k, v] : meta_) out << "# " << k << ": " << v << '\n';
  for (auto const& section : sections_) {
    out << "\n== " << section << " ==\n";
    line("metric", "direct", "podrelay", "ratio");
    out << std::string(w_metric + 2 * w_val + 16, '-') << '\n';
    for (auto const& r : rows_) {
      if (r.section != section) continue;
      line(r.metric + " (" + r.unit + ")", format_value(r.direct), format_value(r.podrelay),
           format_ratio(r.ratio()));
    }
    for (auto const& [s, text] : notes_) {
      if (s == section) out << "  note: " << text << '\n';
    }
    for (auto const& [s, text] : unsupported_) {
      if (s == section) out << "  unsupported: " << text << '\n';
    }
    for (auto const& [s, text] : errors_) {
      if (s == section) out << "  ERROR: " << text << '\n';
    }
  }
  for (auto const& [s, text] : errors_) {
    if (std::find(sections_.begin(), sections_.end(), s) == sections_.end()) {
      out << "ERROR (" << s << "): " << text << '\n';
    }
  }
}

bool Report::write_json(std::string const& path, std::string& error) const {
  std::ostringstream j;
  j << "{\n  \"meta\": {";
  for (std::size_t i = 0; i < meta_.size(); ++i) {
    j << (i ? ", " : "") << json_string(meta_[i].first) << ": " << json_string(meta_[i].second);
  }
  j << "},\n  \"ok\": " << (ok() ? "true" : "false") << ",\n  \"sections\": {";
  for (std::size_t si = 0; si < sections_.size(); ++si) {
    auto const& section = sections_[si];
    j << (si ? "," : "") << "\n    " << json_string(section) << ": {\n      \"rows\": [";
    bool first = true;
    for (auto const& r : rows_) {
      if (r.section != section) continue;
      j << (first ? "" : ",") << "\n        {\"metric\": " << json_string(r.metric)
        << ", \"unit\": " << json_string(r.unit) << ", \"direct\": " << json_number(r.direct)
        << ", \"podrelay\": " << json_number(r.podrelay)
        << ", \"ratio\": " << json_number(r.ratio()) << '}';
      first = false;
    }
    j << "],\n      \"notes\": [";
    first = true;
    for (auto const& [s, text] : notes_) {
      if (s != section) continue;
      j << (first ? "" : ", ") << json_string(text);
      first = false;
    }
    j << "],\n      \"errors\": [";
    first = true;
    for (auto const& [s, text] : errors_) {
      if (s != section) continue;
      j << (first ? "" : ", ") << json_string(text);
      first = false;
    }
    j << "],\n      \"runs\": [";
    first = true;
    for (auto const& [s, obj] : raw_) {
      if (s != section) continue;
      j << (first ? "" : ",") << "\n        " << obj;
      first = false;
    }
    j << ']';
    for (auto const& [s, text] : unsupported_) {
      if (s == section) j << ",\n      \"unsupported\": " << json_string(text);
    }
    j << "\n    }";
  }
  j << "\n  }\n}\n";
  std::ofstream out(path, std::ios::trunc);
  if (!out) {
    error = "cannot write " + path;
    return false;
  }
  out << j.str();
  out.close();
  if (!out) {
    error = "write to " + path + " failed";
    return false;
  }
  return true;
}

}  // namespace bench
