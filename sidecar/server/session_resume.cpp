// The framed session's resume-subscribe (RSUB, protocol v2): replay a durable channel's
// stream from the client's last id, then switch to live delivery with no gap and no
// duplicate (core/resume.hpp decides; this file does the I/O). Same class and contract as
// session.cpp.
#include <string>
#include <vector>

#include "redis/stream_commands.hpp"
#include "server/relay.hpp"
#include "server/session.hpp"
#include "util/log.hpp"

namespace podrelay::server {

void Session::resume_subscribe(proto::Rsub const& rsub) {
  using proto::ErrorCode;
  auto const refuse = [&](ErrorCode code, std::string text) {
    append_reply([&](std::string& out) { proto::encode_err(out, rsub.request_id, code, text); });
  };
  std::string channel(rsub.channel);
  if (!relay_.durable().is_durable(channel)) {
    return refuse(ErrorCode::not_supported,
                  "channel '" + channel.substr(0, 200) +
                      "' is not durable (the sidecar's --durable patterns do not match it)");
  }
  std::optional<core::StreamId> since;
  if (!rsub.since_id.empty()) {
    since = core::StreamId::parse(rsub.since_id);
    if (!since) {
      return refuse(ErrorCode::invalid_argument, "since_id '" +
                                                     std::string(rsub.since_id.substr(0, 64)) +
                                                     "' is not a stream id (<ms>-<seq>)");
    }
  }
  if (auto const it = resumes_.find(channel); it != resumes_.end() && !it->second.answered) {
    return refuse(ErrorCode::invalid_argument,
                  "an RSUB of '" + channel.substr(0, 200) + "' is still in progress");
  }
  resumes_.insert_or_assign(
      channel, Resuming{rsub.request_id, core::Resume(since, std::string(rsub.epoch))});
  ++subscription_requests_;
  core_requests_.push_back(channel);
  std::string_view const names[] = {rsub.channel};
  relay_.subscribe(*this, relay_.framed_names(), core::SubKind::channel, rsub.request_id, names);
}

void Session::resume_subscribed(std::string const& channel, std::optional<proto::ErrorCode> error,
                                std::string_view text) {
  auto const it = resumes_.find(channel);
  if (it == resumes_.end() || it->second.answered) return;
  if (error) return resume_failed(channel, *error, text);
  it->second.resume.on_subscribed(
      relay_.durable_position(relay_.framed_names().redis_channel(channel)));
  resume_query(channel, true);
}

void Session::resume_query(std::string const& channel, bool info) {
  auto& r = resumes_.at(channel);
  auto const& durable = relay_.durable();
  std::string command;
  if (info) {
    redis::append_stream_info(command, durable.stream_key(channel), durable.epoch_key(channel),
                              relay_.new_epoch(), durable.options().ttl);
  } else {
    redis::append_xrange_after(command, durable.stream_key(channel),
                               r.resume.replay_after().to_string(), replay_page);
  }
  auto const token = next_token_++;
  if (auto nack = relay_.durable_query(*this, token, command, durable.stream_key(channel))) {
    return resume_failed(channel, nack->code, nack->text);
  }
  queries_.emplace(token, std::make_pair(channel, info));
}

void Session::on_durable_reply(std::uint64_t token, std::optional<proto::ErrorCode> error,
                               std::string_view text, redisReply const* reply) {
  auto const q = queries_.find(token);
  if (q == queries_.end()) return;
  auto const [channel, info] = std::move(q->second);
  queries_.erase(q);
  auto const it = resumes_.find(channel);
  if (it == resumes_.end() || it->second.answered || closed_) return;
  if (error || !reply || reply->type == REDIS_REPLY_ERROR) {
    return resume_failed(channel, error.value_or(proto::ErrorCode::redis_error),
                         reply ? redis::reply_string(*reply) : text);
  }
  if (info) {
    auto const outcome = it->second.resume.on_info(redis::parse_stream_info(*reply));
    relay_.metrics().durable_recovery(core::outcome_name(outcome)).Increment();
    return resume_query(channel, false);
  }
  resume_page(channel, it->second, *reply);
}

void Session::resume_page(std::string const& channel, Resuming& r, redisReply const& reply) {
  auto const max_frame = relay_.config().max_frame_bytes;
  std::size_t delivered = 0;
  auto const entries = redis::for_each_entry(reply, [&](std::string_view id,
                                                        std::string_view payload) {
    auto const parsed = core::StreamId::parse(id);
    if (!parsed || !r.resume.on_replayed(*parsed)) return;
    if (proto::smsg_frame_size(channel.size(), id.size(), payload.size()) - proto::header_bytes >
        max_frame) {
      relay_.metrics().message_dropped(proto::ErrorCode::frame_too_large).Increment();
      return;
    }
    append_reply([&](std::string& out) { proto::encode_smsg(out, channel, id, payload); });
    ++delivered;
  });
  relay_.metrics().durable_replayed.Increment(static_cast<double>(delivered));
  auto const position = relay_.durable_position(relay_.framed_names().redis_channel(channel));
  if (r.resume.page_done(entries, replay_page, position)) return resume_query(channel, false);
  resume_done(r);
}

void Session::resume_done(Resuming& r) {
  r.answered = true;
  if (subscription_requests_ > 0) --subscription_requests_;
  auto const last = r.resume.last().to_string();
  append_reply([&](std::string& out) {
    proto::encode_rsubok(out, r.request_id, r.resume.recovered() ? 1 : 0, r.resume.epoch(), last);
  });
  if (closing_) wake_writer();
}

void Session::resume_failed(std::string const& channel, proto::ErrorCode code,
                            std::string_view text) {
  auto const it = resumes_.find(channel);
  if (it == resumes_.end()) return;
  auto const request_id = it->second.request_id;
  resumes_.erase(it);
  relay_.metrics().durable_recovery("failed").Increment();
  if (subscription_requests_ > 0) --subscription_requests_;
  append_reply([&](std::string& out) { proto::encode_err(out, request_id, code, text); });
  if (closing_) wake_writer();
}

void Session::forget_resumes(std::span<std::string_view const> channels) {
  // An UNSUB ends a resume: one still in progress is answered as cut short.
  std::vector<std::string> gone;
  if (channels.empty()) {
    for (auto const& [name, r] : resumes_) gone.push_back(name);
  } else {
    for (auto const c : channels) {
      if (resumes_.contains(std::string(c))) gone.emplace_back(c);
    }
  }
  for (auto const& name : gone) {
    auto const it = resumes_.find(name);
    if (it->second.answered) {
      resumes_.erase(it);
    } else {
      resume_failed(name, proto::ErrorCode::invalid_argument,
                    "unsubscribed before the resume completed");
    }
  }
}

}  // namespace podrelay::server
