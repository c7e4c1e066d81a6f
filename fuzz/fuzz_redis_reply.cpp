// libFuzzer target: whatever a (broken or hostile) Redis sends, the reply reader and the
// pub/sub classifier must never crash, leak or read out of bounds; and next_view(), with
// its own integer parser, must read exactly what hiredis' next() reads from the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "redis/resp.hpp"

using namespace podrelay::redis;

namespace {

void describe_reply(redisReply const& r, std::string& out) {
  out += std::to_string(r.type);
  out += ':';
  if (r.type == REDIS_REPLY_INTEGER) out += std::to_string(r.integer);
  out += reply_string(r);
  if (r.type == REDIS_REPLY_ARRAY) {
    out += '[';
    for (std::size_t i = 0; i < r.elements; ++i) describe_reply(*r.element[i], out);
    out += ']';
  }
  out += ';';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  ReplyReader reader;
  ReplyReader viewer;  // the same bytes through next_view()
  std::size_t const chunk = size == 0 ? 1 : 1 + data[0] % 32;
  auto const* p = reinterpret_cast<char const*>(data);
  for (std::size_t off = 0; off < size; off += chunk) {
    reader.feed(p + off, std::min(chunk, size - off));
    viewer.feed(p + off, std::min(chunk, size - off));
    for (;;) {
      ReplyPtr reply;
      auto const st = reader.next(reply);
      redisReply const* lent = nullptr;
      if (viewer.next_view(lent) != st) std::abort();
      if (st == ReplyReader::Status::error) return 0;
      if (st == ReplyReader::Status::need_more) break;
      std::string a, b;
      describe_reply(*reply, a);
      describe_reply(*lent, b);
      if (a != b) std::abort();
      auto const ev = classify_pubsub(*reply);
      // Touch every view the classifier returned so ASan checks their bounds.
      volatile std::size_t sum = 0;
      for (char const c : ev.name) sum = sum + static_cast<unsigned char>(c);
      for (char const c : ev.channel) sum = sum + static_cast<unsigned char>(c);
      for (char const c : ev.payload) sum = sum + static_cast<unsigned char>(c);
      (void)sum;
    }
  }
  return 0;
}
