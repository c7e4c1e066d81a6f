#include "server/connection_slots.hpp"

#include <malloc.h>

#include <algorithm>
#include <chrono>

namespace podrelay::server {

void ConnectionSlots::opened() noexcept {
  ++open_;
  if (open_ > peak_) {
    peak_ = open_;
    trim_at_ = peak_ / 2;
  }
}

void ConnectionSlots::closed() {
  --open_;
  // After a burst of connections (a flood, an app rollout) glibc keeps the freed memory in
  // its heap; each time the count has halved, and once more when the last one is gone, give
  // it back to the kernel (a second later, so a mass close finishes first).
  if (trim_armed_ || peak_ < 256 || open_ > trim_at_) return;
  trim_armed_ = true;
  trim_timer_.expires_after(std::chrono::seconds(1));
  trim_timer_.async_wait([this](boost::system::error_code ec) {
    trim_armed_ = false;
    if (ec) return;
    ::malloc_trim(0);
    trim_at_ = open_ / 2;
    if (open_ == 0) peak_ = 0;
  });
}

}  // namespace podrelay::server
