// A first-in first-out queue on a vector that allocates nothing until its first push (a
// std::deque allocates about 600 bytes at construction, which thousands of idle connections
// each paid for their reply-order queues). Popping advances a head index; the storage is
// compacted once the popped part dominates, so push and pop stay amortised O(1).
// Single-threaded.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace podrelay::util {

template <class T>
class Fifo {
 public:
  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t size() const noexcept { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  T& back() { return items_.back(); }
  void push_back(T item) { items_.push_back(std::move(item)); }
  void pop_front() {
    ++head_;
    if (head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void pop_back() {
    items_.pop_back();
    if (head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    }
  }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const { return items_.end(); }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace podrelay::util
