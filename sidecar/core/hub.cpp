#include "core/hub.hpp"

#include <algorithm>

namespace podrelay::core {

bool Hub::subscribe(SubKind kind, std::string_view name, Receiver* sub) {
  auto& m = map(kind);
  auto it = m.find(name);
  bool const first = it == m.end();
  if (first) it = m.emplace(std::string(name), std::vector<Receiver*>{}).first;
  it->second.push_back(sub);
  ++counter(kind);
  return first;
}

bool Hub::unsubscribe(SubKind kind, std::string_view name, Receiver* sub) {
  auto& m = map(kind);
  auto const it = m.find(name);
  if (it == m.end()) return false;
  auto& subs = it->second;
  auto const pos = std::find(subs.begin(), subs.end(), sub);
  if (pos == subs.end()) return false;
  // Order among local receivers carries no meaning, so swap-and-pop keeps removal O(1)
  // after the search.
  *pos = subs.back();
  subs.pop_back();
  --counter(kind);
  if (!subs.empty()) return false;
  m.erase(it);
  return true;
}

std::size_t Hub::deliver(SubKind kind, std::string_view name, Delivery& message) const {
  auto const& m = map(kind);
  auto const it = m.find(name);
  if (it == m.end()) return 0;
  std::size_t n = 0;
  auto const* except = message.except();
  message.set_receivers(it->second.size());
  for (auto* r : it->second) {
    if (r != except) n += r->deliver(message) ? 1 : 0;
  }
  return n;
}

std::vector<Receiver*> Hub::receivers(SubKind kind, std::string_view name) const {
  auto const& m = map(kind);
  auto const it = m.find(name);
  return it == m.end() ? std::vector<Receiver*>{} : it->second;
}

std::size_t Hub::receiver_count(SubKind kind, std::string_view name) const {
  auto const& m = map(kind);
  auto const it = m.find(name);
  return it == m.end() ? 0 : it->second.size();
}

}  // namespace podrelay::core
