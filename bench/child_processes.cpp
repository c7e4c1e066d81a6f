#include "child_processes.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace bench {
namespace {

// Fixed-size table readable from a signal handler: 0 marks a free slot.
constexpr std::size_t max_children = 16;
std::array<volatile pid_t, max_children> g_children{};

void register_child(pid_t pid) {
  for (auto& slot : g_children) {
    if (slot == 0) {
      slot = pid;
      return;
    }
  }
}

void unregister_child(pid_t pid) {
  for (auto& slot : g_children) {
    if (slot == pid) slot = 0;
  }
}

extern "C" void on_fatal_signal(int sig) {
  for (auto const& slot : g_children) {
    pid_t const pid = slot;
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  ::_exit(128 + sig);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> const& argv, std::string const& log_path)
    : log_path_(log_path) {
  if (argv.empty()) throw std::runtime_error("ChildProcess: empty argv");
  name_ = argv.front();
  if (auto const slash = name_.rfind('/'); slash != std::string::npos) {
    name_ = name_.substr(slash + 1);
  }
  int const log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw std::runtime_error("cannot open " + log_path + ": " + std::strerror(errno));
  }
  std::vector<char*> args;
  for (auto const& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t const parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) {
    ::close(log_fd);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid_ == 0) {
    // Child: die with the bench, whatever kills it; own process group so a terminal ^C
    // reaches only the bench, which then cleans up in order.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::setpgid(0, 0);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    int const devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(log_fd);
  register_child(pid_);
}

ChildProcess::~ChildProcess() { stop(); }

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t const r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  exit_text_ = r == pid_ ? describe_status(status) : "lost";
  unregister_child(pid_);
  pid_ = -1;
  return false;
}

void ChildProcess::stop_with(int signal, double grace_s) {
  if (!running()) return;
  ::kill(pid_, signal);
  auto const deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(grace_s));
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_text_ = describe_status(status);
      unregister_child(pid_);
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  exit_text_ = "killed after signal " + std::to_string(signal) + " grace";
  unregister_child(pid_);
  pid_ = -1;
}

std::vector<CommandResult> run_commands(std::vector<std::string> const& commands) {
  std::vector<CommandResult> results(commands.size());
  std::vector<FILE*> pipes;
  for (auto const& c : commands) pipes.push_back(::popen((c + " 2>&1").c_str(), "r"));
  for (std::size_t i = 0; i < pipes.size(); ++i) {
    if (pipes[i] == nullptr) continue;
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipes[i])) results[i].output += buf;
    int const status = ::pclose(pipes[i]);
    results[i].status = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return results;
}

std::string shell_quote(std::string const& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void install_child_cleanup_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

unsigned long raise_fd_limit(unsigned long want) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  rlim_t target = want;
  if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max) target = rl.rlim_max;
  if (target > rl.rlim_cur) {
    rl.rlim_cur = target;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return static_cast<unsigned long>(rl.rlim_cur);
}

}  // namespace bench
