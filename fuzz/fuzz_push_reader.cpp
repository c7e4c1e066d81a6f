// libFuzzer target, differential: the subscriber's push reader, fed in reads of a size the
// first byte chooses, must make of any input what hiredis' reader alone makes of it (the
// same replies, classified the same, in the same order). It may refuse more (it is strict
// about lengths and CRLFs Redis always sends right), but then only at a reply hiredis would
// have read: what it returned before is exactly hiredis' prefix. Never a crash, a leak or
// an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "redis/push_reader.hpp"

using namespace podrelay::redis;

namespace {

void mismatch(char const* what, std::size_t index) {
  std::fprintf(stderr, "push reader differs from hiredis: %s at reply %zu\n", what, index);
  std::abort();
}

bool is_message(PubSubEvent const& ev) {
  return ev.kind == PubSubEvent::Kind::message || ev.kind == PubSubEvent::Kind::pmessage;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t const chunk = 1 + data[0] % 64;
  auto const* input = reinterpret_cast<char const*>(data + 1);
  std::size_t const n = size - 1;

  // The reference: hiredis' reader over the whole input.
  std::vector<std::string> expected;
  bool expected_error = false;
  {
    ReplyReader ref;
    ref.feed(input, n);
    for (;;) {
      ReplyPtr reply;
      auto const st = ref.next(reply);
      if (st == ReplyReader::Status::need_more) break;
      if (st == ReplyReader::Status::error) {
        expected_error = true;
        break;
      }
      expected.push_back(describe(classify_pubsub(*reply)));
    }
  }

  // Large enough that no fuzz input reaches it: skipping is checked in the unit tests.
  PushReader reader(std::size_t{1} << 20);
  std::vector<std::string> got;
  bool error = false;
  bool oversized = false;
  for (std::size_t off = 0; off < n && !error && !oversized; off += chunk) {
    auto const len = std::min(chunk, n - off);
    auto const space = reader.prepare();
    if (space.size() < len) mismatch("prepare() returned less than min_read", got.size());
    std::memcpy(space.data(), input + off, len);
    reader.commit(len);
    for (;;) {
      PushReader::Item item;
      auto const st = reader.next(item);
      if (st == PushReader::Status::need_more) break;
      if (st == PushReader::Status::error) {
        error = true;
        break;
      }
      if (st == PushReader::Status::oversized) {
        oversized = true;  // hiredis is still waiting for that payload
        break;
      }
      if (st == PushReader::Status::push) {
        if (!is_message(item.event)) mismatch("a push that is no message", got.size());
        got.push_back(describe(item.event));
      } else {
        auto const ev = classify_pubsub(*item.reply);
        if (is_message(ev)) mismatch("a message taken the slow way", got.size());
        got.push_back(describe(ev));
      }
      if (got.size() > expected.size() || got.back() != expected[got.size() - 1]) {
        mismatch("a different reply", got.size() - 1);
      }
    }
  }
  if (!error && !oversized) {
    if (got.size() != expected.size()) mismatch("fewer replies", got.size());
    if (expected_error) mismatch("accepted what hiredis refuses", got.size());
  }
  if (oversized && got.size() != expected.size()) mismatch("replies after an oversized one", 0);
  return 0;
}
