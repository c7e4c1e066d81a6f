// The child processes the bench starts (redis-server, sidecars). Every child is registered
// in a process-wide table so it is killed on every way out: normal return, exception,
// SIGINT/SIGTERM (signal handler), and the bench itself being killed (PR_SET_PDEATHSIG).
// Single-threaded use; the signal handler only reads the table and calls kill().
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace bench {

class ChildProcess {
 public:
  // Starts argv[0] (looked up in PATH) with stdout and stderr appended to `log_path`.
  // Throws std::runtime_error when fork/exec preparation fails; an exec failure shows up
  // as the child exiting with status 127 (see running()).
  ChildProcess(std::vector<std::string> const& argv, std::string const& log_path);
  ~ChildProcess();  // SIGTERM, a short grace, then SIGKILL; always reaped
  ChildProcess(ChildProcess const&) = delete;
  ChildProcess& operator=(ChildProcess const&) = delete;

  pid_t pid() const noexcept { return pid_; }
  std::string const& name() const noexcept { return name_; }
  std::string const& log_path() const noexcept { return log_path_; }
  // False once the child has exited (reaped); `exit_text` then says how.
  bool running();
  std::string const& exit_text() const noexcept { return exit_text_; }
  // Stops the child now (idempotent).
  void stop() { stop_with(SIGTERM, 3.0); }
  // Sends `signal`, waits up to `grace_s` for the child to exit, then SIGKILL (idempotent).
  void stop_with(int signal, double grace_s);

 private:
  pid_t pid_ = -1;
  std::string name_;
  std::string log_path_;
  std::string exit_text_;
};

// The exit status and standard output of a shell command (stderr joined), run by popen.
struct CommandResult {
  int status = -1;  // exit status; -1 when it could not run or was killed
  std::string output;
};
// Runs every command at once (each `sh -c`) and waits for all; results in order.
std::vector<CommandResult> run_commands(std::vector<std::string> const& commands);
inline CommandResult run_command(std::string const& command) { return run_commands({command})[0]; }
// `s` quoted for sh: 'it'\''s'.
std::string shell_quote(std::string const& s);

// Installs SIGINT/SIGTERM handlers that kill every registered child and exit(130/143).
void install_child_cleanup_handlers();
// Raises RLIMIT_NOFILE to `want` (capped at the hard limit); returns the new soft limit.
// Children inherit it.
unsigned long raise_fd_limit(unsigned long want);

}  // namespace bench
