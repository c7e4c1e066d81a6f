// One message from Redis on its way to the local receivers that want it. Each wire format a
// receiver speaks is encoded once, on first use, into the thread's FrameArena, where every
// receiver of that format shares it (immutable): a fan-out to thousands of sessions costs
// one encoding per format. Lives for one fan-out on the io_context thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/channel_names.hpp"
#include "core/frame_arena.hpp"
#include "core/stream_id.hpp"
#include "resp_server/reply_writer.hpp"

namespace podrelay::core {

class Receiver;

class Delivery {
 public:
  // `redis_pattern` is empty for a message on a channel subscription. The views must outlive
  // the Delivery. `framed_names` and `resp_names` map the Redis names to the names of each
  // app protocol.
  Delivery(ChannelNames const& framed_names, ChannelNames const& resp_names,
           std::size_t max_frame_bytes, std::string_view redis_channel,
           std::string_view redis_pattern, std::string_view payload) noexcept
      : names_(framed_names),
        resp_names_(resp_names),
        max_frame_bytes_(max_frame_bytes),
        channel_(redis_channel),
        pattern_(redis_pattern),
        payload_(payload) {}

  // The framed protocol's MSG, or null when it cannot be sent: the names do not carry the
  // framed prefix, a name is longer than a `str`, or the frame would exceed the
  // max_frame_bytes the sidecar announced in WELCOME (counted by too_large()).
  SharedFrame const& framed();
  // Whether framed() is or would be non-null; then append_framed(out) appends the same MSG
  // to `out` instead of a shared buffer, for a receiver that is the message's only one (no
  // allocation, no second copy).
  bool can_frame();
  void append_framed(std::string& out);
  bool too_large() const noexcept { return too_large_; }
  // How many receivers the message goes to at most (the hub sets it before delivering).
  void set_receivers(std::size_t n) noexcept { receivers_ = n; }
  bool sole_receiver() const noexcept { return receivers_ == 1; }
  // A message of a durable channel carries its stream id; protocol version 2 receivers get
  // it in an SMSG (null under the same conditions as framed()).
  void set_stream_id(std::string_view id, StreamId parsed) noexcept {
    stream_id_ = id;
    parsed_id_ = parsed;
  }
  std::string_view stream_id() const noexcept { return stream_id_; }
  StreamId parsed_stream_id() const noexcept { return parsed_id_; }
  SharedFrame const& framed_durable();
  // The RESP push (message / pmessage, or smessage for a shard-channel subscriber), or null
  // when the names do not carry the RESP prefix.
  SharedFrame const& resp(resp_server::Protocol protocol, bool sharded);

  std::string_view redis_channel() const noexcept { return channel_; }
  std::string_view redis_pattern() const noexcept { return pattern_; }
  std::string_view payload() const noexcept { return payload_; }
  // The receiver this message is not for: the sender of a PUBX getting its echo back.
  void set_except(Receiver const* r) noexcept { except_ = r; }
  Receiver const* except() const noexcept { return except_; }

 private:
  ChannelNames const& names_;
  ChannelNames const& resp_names_;
  std::size_t max_frame_bytes_;
  std::string_view channel_;
  std::string_view pattern_;
  std::string_view payload_;
  Receiver const* except_ = nullptr;
  std::size_t receivers_ = 0;
  SharedFrame framed_;
  bool framed_done_ = false;
  std::string_view stream_id_;
  StreamId parsed_id_{};
  SharedFrame durable_;
  bool durable_done_ = false;
  SharedFrame resp_[4];  // by protocol (2, 3) x sharded
  bool resp_done_[4] = {};
  bool too_large_ = false;

  // The framed MSG's names, or nothing when it cannot be sent (see framed()).
  struct MsgShape {
    std::string_view channel;
    std::string_view pattern;
  };
  std::optional<MsgShape> shape_;
  bool shape_done_ = false;
  MsgShape const* msg_shape();
};

}  // namespace podrelay::core
