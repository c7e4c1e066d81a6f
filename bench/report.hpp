// The bench's results: rows of "metric | direct | podrelay | ratio", notes, and the raw
// figures of every run, printed as a table and written as JSON. Not thread-safe.
#pragma once

#include <cmath>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "pubsub_run.hpp"

namespace bench {

struct Row {
  std::string section;
  std::string metric;
  std::string unit;
  double direct = NAN;                                // NAN: no baseline figure
  double podrelay = NAN;                              // NAN: not measured
  double ratio() const { return podrelay / direct; }  // NAN when either is missing
};

class Report {
 public:
  void add(Row row) { rows_.push_back(std::move(row)); }
  void note(std::string const& section, std::string text) {
    notes_.emplace_back(section, std::move(text));
  }
  void error(std::string const& section, std::string text) {
    errors_.emplace_back(section, std::move(text));
  }
  // The section could not measure podrelay on this build (e.g. a daemon flag it lacks):
  // its rows carry podrelay = null and the JSON says "unsupported": reason.
  void unsupported(std::string const& section, std::string reason) {
    unsupported_.emplace_back(section, std::move(reason));
  }
  void add_run(std::string const& section, RunSpec const& spec, RunResult const& result);
  void add_raw(std::string const& section, std::string json_object) {
    raw_.emplace_back(section, std::move(json_object));
  }
  void meta(std::string key, std::string value) {
    meta_.emplace_back(std::move(key), std::move(value));
  }
  void section_ran(std::string const& section) { sections_.push_back(section); }
  bool ok() const { return errors_.empty(); }

  void print_table(std::ostream& out) const;
  // Writes the JSON document; false with `error` set when the file cannot be written.
  bool write_json(std::string const& path, std::string& error) const;

 private:
  using Tagged = std::pair<std::string, std::string>;
  std::vector<Row> rows_;
  std::vector<Tagged> notes_;
  std::vector<Tagged> errors_;
  std::vector<Tagged> unsupported_;
  std::vector<Tagged> raw_;  // per section: pre-rendered JSON objects (runs, readings)
  std::vector<Tagged> meta_;
  std::vector<std::string> sections_;
};

// JSON string literal of `s` (quotes included).
std::string json_string(std::string const& s);
// JSON number, or null when not finite.
std::string json_number(double v);

}  // namespace bench
