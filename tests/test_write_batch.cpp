#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "util/write_batch.hpp"

using podrelay::util::WriteBatch;

namespace {

// Queues as Connection and Link do, and records when it is flushed.
struct Recorder final : WriteBatch::Writer {
  explicit Recorder(std::vector<std::string>& log, std::string name)
      : log_(log), name_(std::move(name)) {}
  void queue() {
    if (!defer_to_batch()) log_.push_back(name_ + " woken at once");
  }
  void flush_batch() noexcept override {
    log_.push_back(name_ + " flushed");
    if (then) then();
  }
  std::vector<std::string>& log_;
  std::string name_;
  std::function<void()> then;
};

}  // namespace

TEST_CASE("write batch: writers registered inside a batch are flushed once, at its end") {
  std::vector<std::string> log;
  Recorder a(log, "a"), b(log, "b");
  {
    WriteBatch batch;
    CHECK(WriteBatch::active());
    a.queue();
    b.queue();
    a.queue();  // already registered: still one flush
    CHECK(log.empty());
    CHECK(WriteBatch::pending() == 2);
  }
  CHECK_FALSE(WriteBatch::active());
  CHECK(log == std::vector<std::string>{"a flushed", "b flushed"});
  CHECK(WriteBatch::pending() == 0);
  a.queue();  // no batch open: the caller wakes its writer itself
  CHECK(log.back() == "a woken at once");
}

TEST_CASE("write batch: nested batches flush when the outermost closes") {
  std::vector<std::string> log;
  Recorder a(log, "a");
  {
    WriteBatch outer;
    {
      WriteBatch inner;
      a.queue();
    }
    CHECK(log.empty());
    CHECK(WriteBatch::active());
  }
  CHECK(log == std::vector<std::string>{"a flushed"});
}

TEST_CASE("write batch: what a flush queues for another writer is flushed in the same close") {
  std::vector<std::string> log;
  Recorder a(log, "a"), b(log, "b");
  a.then = [&] { b.queue(); };  // a write error closing a connection wakes a Redis link
  {
    WriteBatch batch;
    a.queue();
  }
  CHECK(log == std::vector<std::string>{"a flushed", "b flushed"});
  CHECK_FALSE(WriteBatch::active());
}

TEST_CASE("write batch: a writer destroyed before the batch closes is never called") {
  std::vector<std::string> log;
  Recorder a(log, "a");
  {
    WriteBatch batch;
    {
      Recorder gone(log, "gone");
      gone.queue();
    }
    a.queue();
  }
  CHECK(log == std::vector<std::string>{"a flushed"});
}
