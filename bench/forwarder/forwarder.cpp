// podrelay-bench-forwarder: the cheapest possible sidecar, as a baseline. It listens on
// 127.0.0.1:LISTEN_PORT and, for each connection it accepts, opens one to 127.0.0.1:UPSTREAM_PORT
// and copies bytes both ways, nothing else: no protocol, no parsing, no metrics. An app that
// speaks RESP through it to Redis crosses the same extra loopback hop and the same extra process
// wake-up as through a podrelay sidecar, so its CPU and latency are the floor that any sidecar
// design pays on this machine (bench/README.md, "Two-hop floor").
//
// One thread, level-triggered epoll: per readable socket one recv() into a 64 KiB buffer and one
// send() to the peer, which is the fewest syscalls a relay can make per message (epoll_wait,
// recv, send). What the peer does not take is buffered, and the source is not read again until
// it is written (bounded memory). Either side closing closes both. SIGTERM or SIGINT ends it.
//
//   podrelay-bench-forwarder LISTEN_PORT UPSTREAM_PORT
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

namespace {

constexpr std::size_t read_bytes = 64 * 1024;

volatile sig_atomic_t stopping = 0;
void on_signal(int) { stopping = 1; }

// One accepted connection and its upstream connection.
struct Pair {
  int fd[2] = {-1, -1};    // 0: app side, 1: upstream
  std::string pending[2];  // bytes waiting to be written to fd[i]
};

struct Watch {
  Pair* pair;
  int side;
};

int epoll_fd = -1;
std::unordered_map<int, Watch> watches;

void set_interest(Pair& p, int side) {
  // Read side `side` only while its peer has nothing pending; write it while it has.
  int const peer = 1 - side;
  std::uint32_t events = 0;
  if (p.pending[peer].empty()) events |= EPOLLIN;
  if (!p.pending[side].empty()) events |= EPOLLOUT;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = p.fd[side];
  ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, p.fd[side], &ev);
}

// Called once per pair: its watches are gone afterwards, so no later event reaches it.
void close_pair(Pair* p) {
  for (int fd : p->fd) {
    if (fd < 0) continue;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    watches.erase(fd);
    ::close(fd);
  }
  delete p;
}

int connect_upstream(unsigned short port) {
  int const fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr const*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool prepare(int fd) {
  int const one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int const flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

void watch(Pair* p, int side) {
  watches[p->fd[side]] = Watch{p, side};
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = p->fd[side];
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, p->fd[side], &ev);
}

void accept_one(int listener, unsigned short upstream_port) {
  int const fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return;
  int const up = connect_upstream(upstream_port);
  if (up < 0 || !prepare(fd) || !prepare(up)) {
    std::fprintf(stderr, "forwarder: cannot reach upstream port %u: %s\n", upstream_port,
                 std::strerror(errno));
    ::close(fd);
    if (up >= 0) ::close(up);
    return;
  }
  auto* p = new Pair;
  p->fd[0] = fd;
  p->fd[1] = up;
  watch(p, 0);
  watch(p, 1);
}

// Writes what `side` takes of its pending bytes; false when the pair was closed.
bool flush(Pair* p, int side) {
  auto& out = p->pending[side];
  while (!out.empty()) {
    auto const n = ::send(p->fd[side], out.data(), out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    close_pair(p);
    return false;
  }
  return true;
}

void on_event(Watch w, std::uint32_t events, std::array<char, read_bytes>& buf) {
  Pair* p = w.pair;
  int const side = w.side;
  int const peer = 1 - side;
  if (events & EPOLLOUT) {
    bool const had = !p->pending[side].empty();
    if (!flush(p, side)) return;
    if (had && p->pending[side].empty()) {
      set_interest(*p, side);
      set_interest(*p, peer);  // its reads may resume
    }
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || !p->pending[peer].empty()) return;
  auto const n = ::recv(p->fd[side], buf.data(), buf.size(), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    close_pair(p);
    return;
  }
  if (n < 0) return;
  std::size_t sent = 0;
  while (sent < static_cast<std::size_t>(n)) {
    auto const m =
        ::send(p->fd[peer], buf.data() + sent, static_cast<std::size_t>(n) - sent, MSG_NOSIGNAL);
    if (m > 0) {
      sent += static_cast<std::size_t>(m);
      continue;
    }
    if (m < 0 && errno == EINTR) continue;
    if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    close_pair(p);
    return;
  }
  if (sent < static_cast<std::size_t>(n)) {
    p->pending[peer].assign(buf.data() + sent, static_cast<std::size_t>(n) - sent);
    set_interest(*p, peer);  // write it when it drains
    set_interest(*p, side);  // and stop reading this side meanwhile
  }
}

int parse_port(char const* s) {
  char* end = nullptr;
  long const v = std::strtol(s, &end, 10);
  return (end && *end == '\0' && v > 0 && v < 65536) ? int(v) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  int const listen_port = argc == 3 ? parse_port(argv[1]) : -1;
  int const upstream_port = argc == 3 ? parse_port(argv[2]) : -1;
  if (listen_port < 0 || upstream_port < 0) {
    std::fprintf(stderr, "usage: podrelay-bench-forwarder LISTEN_PORT UPSTREAM_PORT\n");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  int const listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int const one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<unsigned short>(listen_port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr const*>(&a), sizeof a) != 0 ||
      ::listen(listener, 1024) != 0) {
    std::fprintf(stderr, "forwarder: cannot listen on 127.0.0.1:%d: %s\n", listen_port,
                 std::strerror(errno));
    return 1;
  }
  epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &ev);

  auto buf = std::make_unique<std::array<char, read_bytes>>();
  std::array<epoll_event, 64> ready{};
  while (!stopping) {
    int const n = ::epoll_wait(epoll_fd, ready.data(), int(ready.size()), -1);
    for (int i = 0; i < n; ++i) {
      int const fd = ready[i].data.fd;
      if (fd == listener) {
        accept_one(listener, static_cast<unsigned short>(upstream_port));
        continue;
      }
      auto const it = watches.find(fd);
      if (it != watches.end()) on_event(it->second, ready[i].events, *buf);
    }
  }
  return 0;
}
