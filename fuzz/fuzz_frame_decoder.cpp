// libFuzzer target: the frame decoder must never crash, leak or read out of bounds on any
// byte stream fed in any chunking, and every frame it accepts must re-encode to the exact
// bytes it came from. Seeds: proto/vectors (see scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/frame.hpp"

using namespace podrelay::proto;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the chunk size, so splits at odd boundaries are explored too.
  std::size_t const chunk = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<char const*>(data + 1), size - 1);
  Decoder d(4096);
  std::string consumed;  // every byte handed to the decoder, to check re-encoding
  std::size_t frame_start = 0;
  while (!in.empty()) {
    auto const piece = in.substr(0, chunk);
    in.remove_prefix(piece.size());
    d.feed(piece);
    consumed.append(piece);
    for (;;) {
      auto r = d.next();
      if (r.status == Decoder::Status::need_more) break;
      if (r.status == Decoder::Status::error) return 0;
      std::string again;
      encode(again, r.frame);
      if (consumed.compare(frame_start, again.size(), again) != 0) std::abort();
      frame_start += again.size();
    }
  }
  return 0;
}
