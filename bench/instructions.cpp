// Instructions per relayed message: a fixed workload with redis-server and both sidecars
// counted by `perf stat -e instructions:u` (where the machine has the counter) or run under
// `valgrind --tool=callgrind`. Instruction counts barely move with other load on the
// machine, so a change can be judged here where CPU seconds are noisy.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "child_processes.hpp"
#include "sections.hpp"

namespace bench {
namespace {

using Targets = std::vector<std::pair<std::string, pid_t>>;  // JSON name ("redis"), pid

// Counts user-space instructions of some processes over a window (start .. stop).
class InstructionCounter {
 public:
  virtual ~InstructionCounter() = default;
  virtual std::string name() const = 0;
  // Wrapper argv for a child of the counted environment ("redis", "sidecar-a").
  virtual std::vector<std::string> wrap(std::string const& child) = 0;
  virtual void start(Targets const& targets) = 0;
  // Instructions of each target since start(); throws when a count cannot be read.
  virtual std::map<std::string, double> stop() = 0;
};

// `perf stat -x, -e instructions:u -p PID` per process, stopped with SIGINT.
class PerfCounter final : public InstructionCounter {
 public:
  explicit PerfCounter(std::string dir) : dir_(std::move(dir)) {}
  std::string name() const override { return "perf stat -e instructions:u"; }
  std::vector<std::string> wrap(std::string const&) override { return {}; }

  void start(Targets const& targets) override {
    running_.clear();
    for (auto const& [name, pid] : targets) {
      auto const out = dir_ + "/perf-" + name + ".csv";
      std::filesystem::remove(out);
      running_.push_back(
          {name, out,
           std::make_unique<ChildProcess>(
               std::vector<std::string>{"perf", "stat", "-x,", "-e", "instructions:u", "-p",
                                        std::to_string(pid), "-o", out},
               dir_ + "/perf.log")});
    }
    // perf attaches within milliseconds; let it, so the first messages are counted.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }

  std::map<std::string, double> stop() override {
    std::map<std::string, double> counts;
    for (auto& r : running_) r.process->stop_with(SIGINT, 5);  // perf prints on SIGINT
    for (auto& r : running_) {
      std::ifstream in(r.out_file);
      double count = NAN;
      for (std::string line; std::getline(in, line);) {
        // 123456789,,instructions:u,2001234,100.00,,
        std::stringstream fields(line);
        std::string value, unit, event;
        std::getline(fields, value, ',');
        std::getline(fields, unit, ',');
        std::getline(fields, event, ',');
        if (event.rfind("instructions", 0) != 0) continue;
        char* end = nullptr;
        double const v = std::strtod(value.c_str(), &end);
        if (end != value.c_str()) count = v;
      }
      if (!std::isfinite(count)) {
        throw std::runtime_error("perf stat gave no instruction count for " + r.name + " (" +
                                 r.out_file + ")");
      }
      counts[r.name] = count;
    }
    running_.clear();
    return counts;
  }

 private:
  struct Running {
    std::string name;
    std::string out_file;
    std::unique_ptr<ChildProcess> process;
  };
  std::string dir_;
  std::vector<Running> running_;
};

// Every child under `valgrind --tool=callgrind`; `callgrind_control -z` zeroes its counters
// at start, `callgrind_control -d` dumps them at stop into <out-file>.<n>, whose
// "summary:" line is the instruction count (Ir) since the zeroing.
class CallgrindCounter final : public InstructionCounter {
 public:
  explicit CallgrindCounter(std::string dir) : dir_(std::move(dir)) {}
  std::string name() const override { return "valgrind --tool=callgrind"; }

  std::vector<std::string> wrap(std::string const& child) override {
    return {"valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file(child),
            "--dump-instr=no", "--trace-children=no"};
  }

  void start(Targets const& targets) override {
    targets_ = targets;
    control("-z");
  }

  std::map<std::string, double> stop() override {
    control("-d");
    std::map<std::string, double> counts;
    for (auto const& [name, pid] : targets_) counts[name] = last_dump_total(child_of(name));
    return counts;
  }

 private:
  // The JSON names ("sidecar_a") back to the child names ("sidecar-a").
  static std::string child_of(std::string name) {
    std::replace(name.begin(), name.end(), '_', '-');
    return name;
  }
  std::string out_file(std::string const& child) const { return dir_ + "/" + child + ".callgrind"; }

  void control(std::string const& flag) {
    std::vector<std::string> commands;
    for (auto const& [name, pid] : targets_) {
      commands.push_back("timeout 30 callgrind_control " + flag + " " + std::to_string(pid));
    }
    auto const results = run_commands(commands);
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i].status != 0) {
        throw std::runtime_error("callgrind_control " + flag + " of " + targets_[i].first +
                                 " failed (status " + std::to_string(results[i].status) +
                                 "): " + results[i].output);
      }
    }
  }

  // The "summary:" of the newest dump <out-file>.<n> of `child`.
  double last_dump_total(std::string const& child) const {
    auto const base = std::filesystem::path(out_file(child)).filename().string() + ".";
    auto const deadline = Clock::now() + std::chrono::seconds(10);
    for (;;) {
      long newest = -1;
      std::filesystem::path newest_path;
      for (auto const& entry : std::filesystem::directory_iterator(dir_)) {
        auto const file = entry.path().filename().string();
        if (file.rfind(base, 0) != 0) continue;
        char* end = nullptr;
        long const n = std::strtol(file.c_str() + base.size(), &end, 10);
        if (*end == '\0' && n > newest) {
          newest = n;
          newest_path = entry.path();
        }
      }
      if (newest > dumps_read_[child]) {
        std::ifstream in(newest_path);
        for (std::string line; std::getline(in, line);) {
          if (line.rfind("summary:", 0) == 0) {
            dumps_read_[child] = newest;
            return std::strtod(line.c_str() + 8, nullptr);
          }
        }
      }
      // callgrind_control returns once the dump is requested; the file may follow.
      if (Clock::now() > deadline) {
        throw std::runtime_error("no new callgrind dump with a summary for " + child + " in " +
                                 dir_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::string dir_;
  Targets targets_;
  mutable std::map<std::string, long> dumps_read_;
};

// One counted window: the counts and the wall time between the midpoints of start() and
// stop() (each takes a while under callgrind: callgrind_control is a perl script reaching
// the process through vgdb; the zeroing and the dump happen somewhere inside those calls).
struct Window {
  std::map<std::string, double> counts;
  double seconds = 0;
};

class WindowClock {
 public:
  void start(InstructionCounter& counter, Targets const& targets) {
    auto const t0 = Clock::now();
    counter.start(targets);
    start_mid_ = t0 + (Clock::now() - t0) / 2;
  }
  Window stop(InstructionCounter& counter) {
    auto const t0 = Clock::now();
    Window w;
    w.counts = counter.stop();
    w.seconds = seconds_between(start_mid_, t0 + (Clock::now() - t0) / 2);
    return w;
  }

 private:
  Clock::time_point start_mid_{};
};

// perf when `perf stat -e instructions:u true` prints a count, else callgrind.
std::unique_ptr<InstructionCounter> pick_counter(std::string const& dir, std::string& why) {
  auto const perf = run_command("perf stat -x, -e instructions:u true");
  char* end = nullptr;
  double const n = std::strtod(perf.output.c_str(), &end);
  if (perf.status == 0 && end != perf.output.c_str() && n > 0) {
    why = "perf stat -e instructions:u counts on this machine";
    return std::make_unique<PerfCounter>(dir);
  }
  auto const first_line = perf.output.substr(0, perf.output.find('\n'));
  why = "perf stat -e instructions:u unusable here: " +
        (perf.status == 0 ? first_line : "status " + std::to_string(perf.status));
  if (run_command("valgrind --version").status != 0 ||
      run_command("command -v callgrind_control").status != 0) {
    throw std::runtime_error(why + ", which is not installed either (scripts/install-deps.sh)");
  }
  return std::make_unique<CallgrindCounter>(dir);
}

}  // namespace

void instructions_section(SectionContext& ctx) {
  auto const dir = ctx.env.log_dir() + "/instructions";
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    throw std::runtime_error("mkdir " + dir + ": " + std::strerror(errno));
  }
  std::string why;
  auto counter = pick_counter(dir, why);
  auto const messages = ctx.count(20'000, 500);

  // Our own Redis and sidecars, every one counted (under valgrind: started under it).
  Environment env(ctx.options, dir);
  env.wrap_children([&](std::string const& child) { return counter->wrap(child); }, 120);
  env.start_redis();
  env.start_sidecar("a");
  env.start_sidecar("b");
  Targets const all{{"redis", env.redis_pid()},
                    {"sidecar_a", env.sidecar("a").pid()},
                    {"sidecar_b", env.sidecar("b").pid()}};

  // What the processes' timers cost with nothing to relay (Redis' cron runs 10 times a
  // second): instructions per second, subtracted from each run for its window's length.
  WindowClock clock;
  clock.start(*counter, all);
  std::this_thread::sleep_for(std::chrono::duration<double>(ctx.scaled(1, 0.5)));
  auto const idle = clock.stop(*counter);
  std::map<std::string, double> idle_per_s;
  {
    std::ostringstream raw;
    raw << "{\"idle_window_s\":" << json_number(idle.seconds) << ",\"instructions\":{";
    bool first = true;
    for (auto const& [name, n] : idle.counts) {
      idle_per_s[name] = idle.seconds > 0 ? n / idle.seconds : NAN;
      raw << (first ? "" : ",") << json_string(name) << ':' << json_number(n);
      first = false;
    }
    raw << "}}";
    ctx.report.add_raw("instructions", raw.str());
  }
  ctx.report.add({"instructions", "idle (timers only)", "instructions / s", idle_per_s["redis"],
                  idle_per_s["sidecar_a"] + idle_per_s["sidecar_b"]});

  for (std::size_t const payload : {std::size_t{64}, std::size_t{1024}}) {
    std::map<std::string, double> per_msg[2];
    for (Path const path : {Path::direct, Path::podrelay}) {
      Targets targets{{"redis", env.redis_pid()}};
      if (path == Path::podrelay) {
        targets.push_back({"sidecar_a", env.sidecar("a").pid()});
        targets.push_back({"sidecar_b", env.sidecar("b").pid()});
      }
      // The sidecars' own counts of this run, read outside the counted window: where a
      // message went missing, if one did.
      static constexpr std::pair<char const*, char const*> watched[] = {
          {"a", "podrelay_messages_published_total"},
          {"b", "podrelay_messages_received_total"},
          {"b", "podrelay_messages_delivered_total"},
          {"b", "podrelay_messages_dropped_total"},
          {"b", "podrelay_slow_consumer_disconnects_total"},
          {"b", "podrelay_redis_reconnects_total"}};
      auto read_metrics = [&] {
        std::vector<double> v;
        if (path == Path::podrelay) {
          for (auto const& [who, metric] : watched) v.push_back(env.sidecar_metric(who, metric));
        }
        return v;
      };
      auto const metrics_before = read_metrics();
      Window window;
      auto spec = throughput_spec(path, payload, messages, ctx.scaled(60, 20));
      spec.before_publishing = [&] { clock.start(*counter, targets); };
      spec.after_run = [&] { window = clock.stop(*counter); };
      auto const r = run_and_record(ctx, env, "instructions", spec);
      auto const metrics_after = read_metrics();
      std::ostringstream raw;
      raw << "{\"path\":" << json_string(path_name(path)) << ",\"payload_bytes\":" << payload
          << ",\"messages\":" << r.published << ",\"window_s\":" << json_number(window.seconds)
          << ",\"instructions\":{";
      bool first = true;
      for (auto const& [name, n] : window.counts) {
        raw << (first ? "" : ",") << json_string(name) << ':' << json_number(n);
        first = false;
        double const relayed = n - idle_per_s[name] * window.seconds;
        per_msg[path == Path::podrelay][name] =
            r.published > 0 ? relayed / double(r.published) : NAN;
      }
      raw << '}';
      if (!metrics_after.empty()) {
        raw << ",\"sidecar_metrics\":{";
        for (std::size_t i = 0; i < metrics_after.size(); ++i) {
          raw << (i ? "," : "")
              << json_string(std::string(watched[i].first) + ":" + watched[i].second) << ':'
              << json_number(metrics_after[i] - metrics_before[i]);
        }
        raw << '}';
        if (!r.complete) {
          std::ostringstream what;
          what << "podrelay " << size_label(payload) << " incomplete run, the sidecars' counts:";
          for (std::size_t i = 0; i < metrics_after.size(); ++i) {
            what << ' ' << watched[i].first << ':' << watched[i].second << '='
                 << metrics_after[i] - metrics_before[i];
          }
          ctx.report.note("instructions", what.str());
        }
      }
      raw << '}';
      ctx.report.add_raw("instructions", raw.str());
    }
    auto get = [](std::map<std::string, double> const& m, std::string const& who) {
      auto const it = m.find(who);
      return it == m.end() ? double(NAN) : it->second;
    };
    auto const& d = per_msg[0];
    auto const& p = per_msg[1];
    auto const label = size_label(payload);
    std::string const unit = "instructions / msg";
    double const sidecars = get(p, "sidecar_a") + get(p, "sidecar_b");
    ctx.report.add(
        {"instructions", "sidecars a+b vs redis, " + label, unit, get(d, "redis"), sidecars});
    ctx.report.add(
        {"instructions", "sidecar a (publish side), " + label, unit, NAN, get(p, "sidecar_a")});
    ctx.report.add(
        {"instructions", "sidecar b (subscribe side), " + label, unit, NAN, get(p, "sidecar_b")});
    ctx.report.add(
        {"instructions", "redis-server, " + label, unit, get(d, "redis"), get(p, "redis")});
    ctx.report.add({"instructions", "all server processes, " + label, unit, get(d, "redis"),
                    get(p, "redis") + sidecars});
  }
  ctx.report.note("instructions", "counted with " + counter->name() + " (" + why + ")");
  ctx.report.add_raw("instructions", "{\"counter\":" + json_string(counter->name()) + "}");
  ctx.report.note(
      "instructions",
      std::to_string(messages) +
          " messages per run, 1 publisher and 1 subscriber, the throughput workload (acked PUBs, "
          "pipelined PUBLISHes, end-to-end window " +
          std::to_string(throughput_window) +
          ") on a redis-server and two sidecars of this section's own, every one counted; "
          "user-space instructions of each process from right before the first publish to "
          "right after the last delivery, minus its idle rate ('idle' row, measured first "
          "over " +
          num(idle.seconds) +
          " s with nothing to relay) times the window's length, divided by the messages "
          "published. Raw counts and windows are in the JSON runs.");
}

}  // namespace bench
