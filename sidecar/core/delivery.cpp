#include "core/delivery.hpp"

#include "proto/frame.hpp"

namespace podrelay::core {

Delivery::MsgShape const* Delivery::msg_shape() {
  if (!shape_done_) {
    shape_done_ = true;
    auto const channel = names_.app_channel(channel_);
    if (!channel) return nullptr;
    // A name over a protocol string's 65,535 bytes (Redis allows them) cannot be framed:
    // counted with the frames that are too large, never dropped without a word.
    if (!proto::fits_str(*channel)) {
      too_large_ = true;
      return nullptr;
    }
    std::string_view pattern;
    if (!pattern_.empty()) {
      auto const p = names_.app_pattern(pattern_);
      if (!p) return nullptr;
      if (!proto::fits_str(*p)) {
        too_large_ = true;
        return nullptr;
      }
      pattern = *p;
    }
    auto const size = proto::msg_frame_size(channel->size(), pattern.size(), payload_.size());
    // The length prefix is not part of the frame length the peer's limit applies to.
    if (size - proto::header_bytes > max_frame_bytes_) {
      too_large_ = true;
      return nullptr;
    }
    shape_ = MsgShape{*channel, pattern};
  }
  return shape_ ? &*shape_ : nullptr;
}

SharedFrame const& Delivery::framed() {
  if (framed_done_) return framed_;
  framed_done_ = true;
  if (!can_frame()) return framed_;
  framed_ = FrameArena::local().encode([&](std::string& out) { append_framed(out); });
  return framed_;
}

bool Delivery::can_frame() { return msg_shape() != nullptr; }

void Delivery::append_framed(std::string& out) {
  auto const* shape = msg_shape();
  if (shape == nullptr) return;
  proto::encode_msg(out, shape->channel, shape->pattern, payload_);  // one resize itself
}

SharedFrame const& Delivery::framed_durable() {
  if (durable_done_) return durable_;
  durable_done_ = true;
  auto const channel = names_.app_channel(channel_);
  if (!channel) return durable_;
  if (!proto::fits_str(*channel)) {
    too_large_ = true;
    return durable_;
  }
  auto const size = proto::smsg_frame_size(channel->size(), stream_id_.size(), payload_.size());
  if (size - proto::header_bytes > max_frame_bytes_) {
    too_large_ = true;
    return durable_;
  }
  durable_ = FrameArena::local().encode(
      [&](std::string& out) { proto::encode_smsg(out, *channel, stream_id_, payload_); });
  return durable_;
}

SharedFrame const& Delivery::resp(resp_server::Protocol protocol, bool sharded) {
  auto const i = (protocol == resp_server::Protocol::resp3 ? 2U : 0U) + (sharded ? 1U : 0U);
  if (resp_done_[i]) return resp_[i];
  resp_done_[i] = true;
  auto const channel = resp_names_.app_channel(channel_);
  if (!channel) return resp_[i];
  auto& arena = FrameArena::local();
  if (pattern_.empty()) {
    resp_[i] = arena.encode([&](std::string& out) {
      if (sharded) {
        resp_server::append_smessage(out, protocol, *channel, payload_);
      } else {
        resp_server::append_message(out, protocol, *channel, payload_);
      }
    });
  } else {
    auto const pattern = resp_names_.app_pattern(pattern_);
    if (!pattern) return resp_[i];
    resp_[i] = arena.encode([&](std::string& out) {
      resp_server::append_pmessage(out, protocol, *pattern, *channel, payload_);
    });
  }
  return resp_[i];
}

}  // namespace podrelay::core
