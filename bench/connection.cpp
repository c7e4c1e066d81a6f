#include "connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace bench {
namespace {

constexpr int connect_timeout_ms = 5000;
// Reads per readiness event: enough to drain a busy socket without starving the others.
constexpr int reads_per_event = 4;
// Output beyond this is written at once even when deferred, so buffers stay small.
constexpr std::size_t eager_flush_bytes = 256 * 1024;

}  // namespace

Connection::Connection(EventLoop& loop, Address const& address) : loop_(loop) {
  bool const tcp = address.unix_path.empty();
  int const fd = ::socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in in{};
  sockaddr_un un{};
  if (tcp) {
    in.sin_family = AF_INET;
    in.sin_port = htons(address.port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else {
    if (address.unix_path.size() >= sizeof un.sun_path) {
      ::close(fd);
      throw std::runtime_error("unix socket path too long: " + address.unix_path);
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, address.unix_path.data(), address.unix_path.size());
  }
  int rc = tcp ? ::connect(fd, reinterpret_cast<sockaddr const*>(&in), sizeof in)
               : ::connect(fd, reinterpret_cast<sockaddr const*>(&un), sizeof un);
  if (rc != 0 && (errno == EINPROGRESS || errno == EAGAIN)) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, connect_timeout_ms);
    int err = 0;
    socklen_t len = sizeof err;
    if (rc == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      rc = 0;
    } else {
      errno = rc == 0 ? ETIMEDOUT : (err != 0 ? err : errno);
      rc = -1;
    }
  }
  if (rc != 0) {
    auto const why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("connect to " + address.text() + ": " + why);
  }
  int const one = 1;
  if (tcp) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
  loop_.add(fd_, EPOLLIN, this);
}

Connection::~Connection() {
  if (fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
  }
}

void Connection::send(std::string_view bytes, bool defer) {
  if (fd_ < 0) return;
  out_.append(bytes);
  if (!defer || pending_output() >= eager_flush_bytes) flush();
}

void Connection::flush() {
  while (fd_ >= 0 && out_off_ < out_.size()) {
    auto const n = ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    if (n > 0) {
      out_off_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail(std::string("send: ") + std::strerror(errno));
    return;
  }
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  } else if (out_off_ > out_.size() / 2) {
    out_.erase(0, out_off_);
    out_off_ = 0;
  }
  update_interest();
}

void Connection::update_interest() {
  if (fd_ < 0) return;
  bool const want_out = pending_output() > 0;
  if (want_out == watching_out_) return;
  watching_out_ = want_out;
  loop_.modify(fd_, EPOLLIN | (want_out ? EPOLLOUT : 0u), this);
}

void Connection::on_ready(std::uint32_t events) {
  if (fd_ < 0) return;
  if (events & EPOLLOUT) flush();
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  auto const buf = loop_.scratch();
  for (int i = 0; i < reads_per_event && fd_ >= 0; ++i) {
    auto const n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n > 0) {
      bytes_in_ += static_cast<std::uint64_t>(n);
      on_bytes(buf.data(), static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < buf.size()) break;
      continue;
    }
    if (n == 0) {
      fail("closed by peer");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      fail(std::string("recv: ") + std::strerror(errno));
    }
    break;
  }
}

void Connection::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  if (fd_ < 0) return;
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace bench
