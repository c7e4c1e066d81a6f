// The processes under test: one redis-server and podrelay sidecars, each on free loopback
// ports, started and awaited (Redis answers PING, the sidecar's /readyz says 200), and
// stopped in reverse order. Child output goes to log files in `log_dir`.
// Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "child_processes.hpp"
#include "options.hpp"

namespace bench {

struct Sidecar {
  std::string name;
  std::uint16_t port = 0;
  std::uint16_t admin_port = 0;
  std::uint16_t resp_port = 0;  // 0: no --resp-listen
  std::string unix_path;        // a second --listen: the framed protocol on a Unix socket
  std::unique_ptr<ChildProcess> process;
  pid_t pid() const { return process ? process->pid() : -1; }
};

// A podrelay-bench-forwarder in front of our Redis: the two-hop floor (bench/README.md).
struct Forwarder {
  std::uint16_t port = 0;
  std::unique_ptr<ChildProcess> process;
  pid_t pid() const { return process ? process->pid() : -1; }
};

class Environment {
 public:
  Environment(Options const& options, std::string log_dir);
  ~Environment();

  // Every child started from now on runs as wrap(child) + its own argv (child: "redis",
  // "sidecar-<name>"), e.g. under valgrind; readiness is then awaited up to
  // `startup_timeout_s` instead of 10 s (Redis) and 15 s (sidecars).
  using Wrapper = std::function<std::vector<std::string>(std::string const& child)>;
  void wrap_children(Wrapper wrap, double startup_timeout_s);

  void start_redis();
  // Starts a sidecar connected to our Redis and waits for /readyz; with `resp_listen` it
  // also serves the RESP front end on a free port (`--resp-listen`, resp_port).
  Sidecar& start_sidecar(std::string const& name, bool resp_listen = false);
  void stop_sidecar(std::string const& name);
  Sidecar& sidecar(std::string const& name);
  // The forwarder `name` to our Redis, started (and awaited) on first use.
  Forwarder& forwarder(std::string const& name);

  std::uint16_t redis_port() const noexcept { return redis_port_; }
  pid_t redis_pid() const { return redis_ ? redis_->pid() : -1; }
  std::string const& log_dir() const noexcept { return log_dir_; }
  // Throws if any child died (with the tail of its log in the message).
  void check_alive();

  // The sum over all samples (label sets) of a metric on a sidecar's /metrics; 0 when it
  // has no sample, -1 when the sidecar is unknown or /metrics unreachable.
  double sidecar_metric(std::string const& name, std::string const& metric);
  // INFO field of Redis (e.g. "used_memory"), or empty.
  std::string redis_info(std::string const& field);

 private:
  std::uint16_t free_port();

  Options const& options_;
  std::string log_dir_;
  std::vector<std::string> wrapped(std::string const& child, std::vector<std::string> argv) const;
  double startup_timeout_s(double normal) const { return wrap_ ? startup_timeout_s_ : normal; }

  Wrapper wrap_;
  double startup_timeout_s_ = 0;
  std::uint16_t redis_port_ = 0;
  std::unique_ptr<ChildProcess> redis_;
  std::map<std::string, Sidecar> sidecars_;
  std::map<std::string, Forwarder> forwarders_;
  std::vector<std::uint16_t> used_ports_;
};

// One blocking HTTP/1.0 GET on 127.0.0.1:port; returns {status, body} ({0, ""} on error).
std::pair<int, std::string> http_get(std::uint16_t port, std::string const& path);

// A blocking TCP connection to 127.0.0.1:port with send/receive timeouts; -1 on failure.
int connect_blocking(std::uint16_t port, int timeout_ms);

}  // namespace bench
