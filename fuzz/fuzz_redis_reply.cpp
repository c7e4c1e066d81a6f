// libFuzzer target: whatever a (broken or hostile) Redis sends, the reply reader and the
// pub/sub classifier must never crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>

#include "redis/resp.hpp"

using namespace podrelay::redis;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  ReplyReader reader;
  std::size_t const chunk = size == 0 ? 1 : 1 + data[0] % 32;
  auto const* p = reinterpret_cast<char const*>(data);
  for (std::size_t off = 0; off < size; off += chunk) {
    reader.feed(p + off, std::min(chunk, size - off));
    for (;;) {
      ReplyPtr reply;
      auto const st = reader.next(reply);
      if (st == ReplyReader::Status::error) return 0;
      if (st == ReplyReader::Status::need_more) break;
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
