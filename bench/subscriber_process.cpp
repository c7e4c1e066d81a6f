#include "subscriber_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "run_parts.hpp"

namespace bench {
namespace {

constexpr int ready_timeout_ms = 30'000;

bool write_all(int fd, void const* data, std::size_t n) {
  auto const* p = static_cast<char const*>(data);
  while (n > 0) {
    auto const w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    auto const r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Waits until `fd` is readable; false after `timeout_ms`.
bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int const n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

// Notices the control pipe's EOF: the parent wants the counts.
class ControlWatch final : public EventLoop::Handler {
 public:
  void on_ready(std::uint32_t) override { stop = true; }
  bool stop = false;
};

[[noreturn]] void child_main(Environment& env, RunSpec const& spec, std::string const& channel,
                             int control, int report) {
  int rc = 0;
  try {
    EventLoop loop;
    std::uint64_t const expected = spec.messages * spec.subscribers;
    DeliverySink sink(spec, expected);
    if (spec.record_latency) sink.latencies_ns.reserve(spec.messages);
    auto subs = connect_subscribers(loop, env, spec, channel, sink);
    ControlWatch watch;
    loop.add(control, EPOLLIN, &watch);
    write_all(report, "R", 1);
    bool said_done = false;
    while (!watch.stop) {
      loop.poll(std::chrono::milliseconds(100));
      if (!said_done && sink.delivered >= expected) {
        said_done = true;
        write_all(report, "D", 1);
      }
    }
    std::int64_t const last = sink.last_delivery == Clock::time_point{}
                                  ? 0
                                  : std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        sink.last_delivery.time_since_epoch())
                                        .count();
    std::uint64_t const n = sink.latencies_ns.size();
    bool const ok = write_all(report, "F", 1) &&
                    write_all(report, &sink.delivered, sizeof sink.delivered) &&
                    write_all(report, &last, sizeof last) && write_all(report, &n, sizeof n) &&
                    write_all(report, sink.latencies_ns.data(), n * sizeof(std::int64_t));
    rc = ok ? 0 : 1;
  } catch (std::exception const& e) {
    std::string const text = std::string("E") + e.what();
    write_all(report, text.data(), text.size());
    rc = 1;
  }
  // Never the parent's destructors or stdio buffers.
  ::_exit(rc);
}

}  // namespace

SubscriberProcess::SubscriberProcess(Environment& env, RunSpec const& spec,
                                     std::string const& channel) {
  int control[2];
  int report[2];
  if (::pipe2(control, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(control[0]);
    ::close(control[1]);
    throw std::runtime_error("pipe2 failed");
  }
  pid_ = ::fork();
  if (pid_ < 0) {
    for (int fd : {control[0], control[1], report[0], report[1]}) ::close(fd);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid_ == 0) {
    ::close(control[1]);
    ::close(report[0]);
    child_main(env, spec, channel, control[0], report[1]);
  }
  ::close(control[0]);
  ::close(report[1]);
  control_ = control[1];
  report_ = report[0];
  char c = 0;
  if (!wait_readable(report_, ready_timeout_ms) || !read_all(report_, &c, 1) || c != 'R') {
    std::string why = "subscriber process not ready within 30 s";
    if (c == 'E') {
      char buf[512];
      auto const n = ::read(report_, buf, sizeof buf);
      why = "subscriber process failed: " + std::string(buf, n > 0 ? std::size_t(n) : 0);
    }
    finish();
    throw std::runtime_error(why);
  }
}

SubscriberProcess::~SubscriberProcess() {
  if (pid_ > 0) finish();
}

void SubscriberProcess::watch(EventLoop& loop) {
  loop_ = &loop;
  loop.add(report_, EPOLLIN, this);
}

void SubscriberProcess::on_ready(std::uint32_t) {
  char c = 0;
  if (!read_all(report_, &c, 1) || c == 'D') done_ = true;  // EOF: it is gone; stop waiting
  if (loop_) {
    loop_->remove(report_);
    loop_ = nullptr;
  }
}

SubscriberProcess::Result SubscriberProcess::finish() {
  Result r;
  if (pid_ <= 0) return r;
  if (loop_) {
    loop_->remove(report_);
    loop_ = nullptr;
  }
  ::close(control_);
  control_ = -1;
  // What remains: 'D' if not read yet, then 'F' and the counts.
  char c = 0;
  while (read_all(report_, &c, 1) && c == 'D') {
  }
  if (c == 'F') {
    std::uint64_t n = 0;
    if (read_all(report_, &r.delivered, sizeof r.delivered) &&
        read_all(report_, &r.last_delivery_ns, sizeof r.last_delivery_ns) &&
        read_all(report_, &n, sizeof n)) {
      r.latencies_ns.resize(n);
      if (!read_all(report_, r.latencies_ns.data(), n * sizeof(std::int64_t))) {
        r.latencies_ns.clear();
      }
    }
  }
  ::close(report_);
  report_ = -1;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return r;
}

}  // namespace bench
