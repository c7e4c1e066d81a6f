// A FIFO on one growable circular buffer: push at the back, pop at the front, index from
// the front. Unlike std::deque it keeps its storage when it empties and refills, so a queue
// that a steady stream passes through allocates nothing once it has grown to its working
// size (the publisher's deque allocated and freed a node every few commands). Capacity is a
// power of two; it doubles when full and never shrinks. Single-threaded.
#pragma once

#include <cassert>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace podrelay::core {

template <class T>
class Ring {
 public:
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return slots_.size(); }

  T& operator[](std::size_t i) noexcept {
    assert(i < size_);
    return slots_[(head_ + i) & mask()];
  }
  T const& operator[](std::size_t i) const noexcept {
    assert(i < size_);
    return slots_[(head_ + i) & mask()];
  }
  T& front() noexcept { return (*this)[0]; }
  T const& front() const noexcept { return (*this)[0]; }
  T& back() noexcept { return (*this)[size_ - 1]; }

  void push_back(T value) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & mask()] = std::move(value);
    ++size_;
  }
  // Moves the front element out; its slot keeps the moved-from shell (for the smart
  // pointers and strings it is used with, an empty one) until it is reused.
  T take_front() noexcept(std::is_nothrow_move_constructible_v<T>) {
    assert(size_ > 0);
    T value = std::move(slots_[head_]);
    head_ = (head_ + 1) & mask();
    --size_;
    return value;
  }
  // The front element is reset to T{} (what it held is released now, not when the slot is
  // reused).
  void pop_front() noexcept {
    assert(size_ > 0);
    slots_[head_] = T{};
    head_ = (head_ + 1) & mask();
    --size_;
  }
  void pop_back() noexcept {
    assert(size_ > 0);
    back() = T{};
    --size_;
  }
  void clear() noexcept {
    while (size_ > 0) pop_back();
    head_ = 0;
  }

 private:
  std::vector<T> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;

  std::size_t mask() const noexcept { return slots_.size() - 1; }
  void grow() {
    std::vector<T> bigger(slots_.empty() ? 16 : slots_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move((*this)[i]);
    slots_ = std::move(bigger);
    head_ = 0;
  }
};

}  // namespace podrelay::core
