#include "relay_client.hpp"

#include <array>
#include <variant>
#include <vector>

namespace bench {
namespace {

namespace proto = podrelay::proto;
// The sidecar never sends more than its own max frame (1 MiB by default) to a client.
constexpr std::size_t max_frame_bytes = 2 * 1024 * 1024;

}  // namespace

RelayClient::RelayClient(EventLoop& loop, Address const& address, std::string_view client_name)
    : PubSubClient(loop, address), decoder_(max_frame_bytes) {
  proto::encode_hello(frame_, client_name, "");
  send(frame_);
  frame_.clear();
}

std::uint32_t RelayClient::next_request_id() {
  if (next_id_ == 0) next_id_ = 1;
  return next_id_++;
}

void RelayClient::subscribe(std::string_view channel) {
  sub_request_id_ = next_request_id();
  std::array<std::string_view, 1> const names{channel};
  frame_.clear();
  proto::encode_name_list(frame_, proto::FrameType::sub, sub_request_id_, names);
  send(frame_);
}

void RelayClient::subscribe_all(std::span<std::string const> channels) {
  sub_request_id_ = next_request_id();
  std::vector<std::string_view> const names(channels.begin(), channels.end());
  frame_.clear();
  proto::encode_name_list(frame_, proto::FrameType::sub, sub_request_id_, names);
  send(frame_);
}

void RelayClient::publish(std::string_view channel, std::string_view payload, bool acked,
                          bool defer) {
  frame_.clear();
  proto::encode_pub(frame_, acked ? next_request_id() : 0, channel, payload);
  send(frame_, defer);
}

void RelayClient::on_bytes(char const* data, std::size_t n) {
  decoder_.feed(std::string_view(data, n));
  for (;;) {
    auto r = decoder_.next();
    if (r.status == proto::Decoder::Status::need_more) return;
    if (r.status == proto::Decoder::Status::error) {
      fail("undecodable frame from the sidecar: " + std::string(proto::error_name(r.error)));
      return;
    }
    if (auto const* msg = std::get_if<proto::Msg>(&r.frame)) {
      ++messages_;
      if (sink_ != nullptr) sink_->on_message(msg->payload);
    } else if (auto const* ok = std::get_if<proto::Ok>(&r.frame)) {
      if (ok->request_id == sub_request_id_ && !subscribed_) {
        subscribed_ = true;
      } else {
        ++acks_;
      }
    } else if (auto const* err = std::get_if<proto::Err>(&r.frame)) {
      if (err->code >= 300 && err->code < 400) {
        ++nacks_;
      } else {
        server_error_ = "ERR " + std::to_string(err->code) + " " + std::string(err->message);
        if (err->code < 200) fail(server_error_);
      }
    } else if (std::holds_alternative<proto::Welcome>(r.frame)) {
      ready_ = true;
    } else if (auto const* bye = std::get_if<proto::Goaway>(&r.frame)) {
      server_error_ = "GOAWAY " + std::to_string(bye->code) + " " + std::string(bye->message);
      fail(server_error_);
      return;
    }
  }
}

}  // namespace bench
