#include "environment.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace bench {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Sends `request`, reads until EOF or until `done(reply)` says the reply is complete.
template <class Done>
std::string exchange(std::uint16_t port, std::string const& request, Done done) {
  int const fd = connect_blocking(port, 2000);
  if (fd < 0) return {};
  std::string reply;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    char buf[16384];
    for (int i = 0; i < 4096 && !done(reply); ++i) {
      auto const n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      reply.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

std::string log_tail(std::string const& path) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.size() > 2000) all = "..." + all.substr(all.size() - 2000);
  return all;
}

}  // namespace

int connect_blocking(std::uint16_t port, int timeout_ms) {
  int const fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr const*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::pair<int, std::string> http_get(std::uint16_t port, std::string const& path) {
  auto const reply = exchange(port, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                              [](std::string const&) { return false; });
  if (reply.rfind("HTTP/", 0) != 0) return {0, ""};
  auto const sp = reply.find(' ');
  int const status = std::atoi(reply.c_str() + sp + 1);
  auto const body = reply.find("\r\n\r\n");
  return {status, body == std::string::npos ? std::string() : reply.substr(body + 4)};
}

Environment::Environment(Options const& options, std::string log_dir)
    : options_(options), log_dir_(std::move(log_dir)) {}

Environment::~Environment() {
  // Sidecars first, so they do not log a lost Redis on the way out.
  for (auto& [name, s] : sidecars_) s.process.reset();
  forwarders_.clear();
  redis_.reset();
}

std::uint16_t Environment::free_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int const fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    if (port != 0 && std::find(used_ports_.begin(), used_ports_.end(), port) == used_ports_.end()) {
      used_ports_.push_back(port);
      return port;
    }
  }
  throw std::runtime_error("no free loopback port found");
}

void Environment::wrap_children(Wrapper wrap, double startup_timeout_s) {
  wrap_ = std::move(wrap);
  startup_timeout_s_ = startup_timeout_s;
}

std::vector<std::string> Environment::wrapped(std::string const& child,
                                              std::vector<std::string> argv) const {
  if (!wrap_) return argv;
  auto full = wrap_(child);
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

void Environment::start_redis() {
  redis_port_ = free_port();
  redis_ = std::make_unique<ChildProcess>(
      wrapped("redis", {options_.redis_server, "--port", std::to_string(redis_port_), "--bind",
                        "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients", "15000",
                        "--dir", log_dir_, "--loglevel", "warning"}),
      log_dir_ + "/redis.log");
  auto const timeout_s = startup_timeout_s(10);
  auto const deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                 std::chrono::duration<double>(timeout_s));
  while (SteadyClock::now() < deadline) {
    if (!redis_->running()) {
      throw std::runtime_error("redis-server " + redis_->exit_text() + ":\n" +
                               log_tail(redis_->log_path()));
    }
    auto const reply = exchange(redis_port_, "PING\r\n", [](std::string const& r) {
      return r.find("\r\n") != std::string::npos;
    });
    if (reply.rfind("+PONG", 0) == 0) return;
    std::this_thread::sleep_for(milliseconds(20));
  }
  throw std::runtime_error("redis-server did not answer PING within " +
                           std::to_string(int(timeout_s)) + " s; log: " + redis_->log_path());
}

Sidecar& Environment::start_sidecar(std::string const& name, bool resp_listen) {
  Sidecar s;
  s.name = name;
  s.port = free_port();
  s.admin_port = free_port();
  s.unix_path = log_dir_ + "/podrelay-" + name + ".sock";
  std::vector<std::string> argv{options_.podrelay,
                                "--listen",
                                "127.0.0.1:" + std::to_string(s.port),
                                "--listen",
                                "unix:" + s.unix_path,
                                "--redis",
                                "redis://127.0.0.1:" + std::to_string(redis_port_),
                                "--admin-listen",
                                "127.0.0.1:" + std::to_string(s.admin_port),
                                "--max-queue-bytes",
                                "67108864",
                                "--log-level",
                                "warn"};
  if (resp_listen) {
    s.resp_port = free_port();
    argv.insert(argv.end(), {"--resp-listen", "127.0.0.1:" + std::to_string(s.resp_port)});
  }
  s.process = std::make_unique<ChildProcess>(wrapped("sidecar-" + name, std::move(argv)),
                                             log_dir_ + "/podrelay-" + name + ".log");
  auto const timeout_s = startup_timeout_s(15);
  auto const deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                 std::chrono::duration<double>(timeout_s));
  for (;;) {
    if (!s.process->running()) {
      throw std::runtime_error("podrelay " + name + " " + s.process->exit_text() + ":\n" +
                               log_tail(s.process->log_path()));
    }
    if (http_get(s.admin_port, "/readyz").first == 200) break;
    if (SteadyClock::now() > deadline) {
      throw std::runtime_error("podrelay " + name + " not ready within " +
                               std::to_string(int(timeout_s)) +
                               " s; log: " + s.process->log_path());
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  auto [it, inserted] = sidecars_.insert_or_assign(name, std::move(s));
  (void)inserted;
  return it->second;
}

Forwarder& Environment::forwarder(std::string const& name) {
  if (auto const it = forwarders_.find(name); it != forwarders_.end()) return it->second;
  Forwarder f;
  f.port = free_port();
  f.process = std::make_unique<ChildProcess>(
      wrapped("forwarder-" + name,
              {options_.forwarder, std::to_string(f.port), std::to_string(redis_port_)}),
      log_dir_ + "/forwarder-" + name + ".log");
  auto const deadline = SteadyClock::now() + std::chrono::seconds(10);
  for (;;) {
    if (!f.process->running()) {
      throw std::runtime_error("forwarder " + name + " " + f.process->exit_text() + ":\n" +
                               log_tail(f.process->log_path()));
    }
    int const fd = connect_blocking(f.port, 500);
    if (fd >= 0) {
      ::close(fd);
      break;
    }
    if (SteadyClock::now() > deadline) {
      throw std::runtime_error("forwarder " + name +
                               " not listening within 10 s; log: " + f.process->log_path());
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return forwarders_.emplace(name, std::move(f)).first->second;
}

void Environment::stop_sidecar(std::string const& name) {
  auto const it = sidecars_.find(name);
  if (it != sidecars_.end()) sidecars_.erase(it);
}

Sidecar& Environment::sidecar(std::string const& name) {
  auto const it = sidecars_.find(name);
  if (it == sidecars_.end()) throw std::logic_error("no sidecar " + name);
  return it->second;
}

void Environment::check_alive() {
  if (redis_ && !redis_->running()) {
    throw std::runtime_error("redis-server " + redis_->exit_text() + ":\n" +
                             log_tail(redis_->log_path()));
  }
  for (auto& [name, s] : sidecars_) {
    if (!s.process->running()) {
      throw std::runtime_error("podrelay " + name + " " + s.process->exit_text() + ":\n" +
                               log_tail(s.process->log_path()));
    }
  }
}

double Environment::sidecar_metric(std::string const& name, std::string const& metric) {
  auto const it = sidecars_.find(name);
  if (it == sidecars_.end()) return -1;
  auto const [status, body] = http_get(it->second.admin_port, "/metrics");
  if (status != 200) return -1;
  std::istringstream in(body);
  double sum = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(metric, 0) != 0) continue;
    auto const rest = line.substr(metric.size());
    if (!rest.empty() && rest[0] != ' ' && rest[0] != '{') continue;
    auto const sp = line.rfind(' ');
    sum += std::strtod(line.c_str() + sp + 1, nullptr);
  }
  // A labelled family nothing was counted in yet has no sample at all: zero.
  return sum;
}

std::string Environment::redis_info(std::string const& field) {
  auto const reply = exchange(redis_port_, "INFO\r\n", [](std::string const& r) {
    // $<len>\r\n<body>\r\n
    auto const nl = r.find("\r\n");
    if (r.empty() || r[0] != '$' || nl == std::string::npos) return false;
    auto const len = std::strtoul(r.c_str() + 1, nullptr, 10);
    return r.size() >= nl + 2 + len + 2;
  });
  auto const key = "\r\n" + field + ":";
  auto const at = reply.find(key);
  if (at == std::string::npos) return {};
  auto const end = reply.find("\r\n", at + key.size());
  return reply.substr(at + key.size(), end - at - key.size());
}

}  // namespace bench
