#include "util/write_batch.hpp"

#include <algorithm>

namespace podrelay::util {

int& WriteBatch::depth() noexcept {
  thread_local int d = 0;
  return d;
}

std::vector<WriteBatch::Writer*>& WriteBatch::writers() noexcept {
  thread_local std::vector<Writer*> w;
  return w;
}

void WriteBatch::defer(Writer* w) { writers().push_back(w); }

void WriteBatch::forget(Writer* w) noexcept {
  auto& ws = writers();
  std::replace(ws.begin(), ws.end(), w, static_cast<Writer*>(nullptr));
}

void WriteBatch::close() noexcept {
  if (depth() > 1) {
    --depth();
    return;
  }
  // Still open while the writers run: what they queue for others (a write error closing a
  // connection releases its subscriptions, which wakes a Redis link) is written here too.
  auto& ws = writers();
  for (std::size_t i = 0; i < ws.size(); ++i) {
    if (auto* w = ws[i]) {
      ws[i] = nullptr;
      w->deferred_ = false;
      w->flush_batch();
    }
  }
  ws.clear();
  depth() = 0;
}

}  // namespace podrelay::util
