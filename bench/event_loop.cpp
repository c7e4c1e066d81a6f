#include "event_loop.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

namespace bench {
namespace {

constexpr int max_events = 256;
constexpr std::size_t scratch_bytes = 64 * 1024;

[[noreturn]] void fail(char const* what) {
  throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

}  // namespace

EventLoop::EventLoop() : scratch_(scratch_bytes) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) fail("epoll_create1");
}

EventLoop::~EventLoop() { ::close(epfd_); }

void EventLoop::add(int fd, std::uint32_t events, Handler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) fail("epoll_ctl(ADD)");
}

void EventLoop::modify(int fd, std::uint32_t events, Handler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) fail("epoll_ctl(MOD)");
}

void EventLoop::remove(int fd) { ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

int EventLoop::poll(std::chrono::nanoseconds timeout) {
  epoll_event events[max_events];
  if (timeout.count() < 0) timeout = std::chrono::nanoseconds(0);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
  int const n = ::epoll_pwait2(epfd_, events, max_events, &ts, nullptr);
  if (n < 0) {
    if (errno == EINTR) return 0;
    fail("epoll_pwait2");
  }
  for (int i = 0; i < n; ++i) {
    static_cast<Handler*>(events[i].data.ptr)->on_ready(events[i].events);
  }
  return n;
}

}  // namespace bench
