// The framed session's resume-subscribe (RSUB, protocol v2): replay a durable channel's
// stream from the client's last id, then switch to live delivery with no gap and no
// duplicate (core/resume.hpp decides; this file does the I/O). Same class and contract as
// session.cpp.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <string>
#include <vector>

#include "redis/stream_commands.hpp"
#include "server/relay.hpp"
#include "server/session.hpp"
#include "util/log.hpp"

namespace podrelay::server {

void Session::resume_subscribe(proto::Rsub const& rsub) {
  static_assert(replay_page <= redis::max_page_entries);  // Publisher::reply_limit's bound
  using proto::ErrorCode;
  auto const refuse = [&](ErrorCode code, std::string text) {
    reply_err(rsub.request_id, code, text);
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
  if (!cut_.empty()) {
    std::string_view const names[] = {rsub.channel};
    keep_subscribed(names);
  }
  resumes_.insert_or_assign(
      channel, Resuming{rsub.request_id, core::Resume(since, std::string(rsub.epoch))});
  ++subscription_requests_;
  core_requests_.push_back({CoreRequest::Kind::resume, channel});
  std::string_view const names[] = {rsub.channel};
  relay_.subscribe(*this, relay_.framed_names(), core::SubKind::channel, rsub.request_id, names);
}

void Session::resume_subscribed(std::string const& channel, std::optional<proto::ErrorCode> error,
                                std::string_view text) {
  auto const it = resumes_.find(channel);
  if (it == resumes_.end() || it->second.answered) return;
  if (error) return resume_failed(channel, *error, text, false);  // nothing to undo
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
    r.resume.page_asked(relay_.durable_position(relay_.framed_names().redis_channel(channel)));
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
  // Detached (a GOAWAY, a protocol error): the connection holds no subscription any more
  // and nothing more is sent for it.
  if (it == resumes_.end() || it->second.answered || closed_ || detached_) return;
  if (error || !reply || reply->type == REDIS_REPLY_ERROR) {
    auto const code = error.value_or(proto::ErrorCode::redis_error);
    // The publisher's texts speak of publishing; say what happened to this RSUB.
    std::string const why = code == proto::ErrorCode::outcome_unknown
                                ? std::string("the connection to Redis broke during it")
                                : std::string(reply ? redis::reply_string(*reply) : text);
    return resume_failed(channel, code,
                         "the resume of '" + channel.substr(0, 200) + "' stopped (" + why +
                             "); the channel is not subscribed: RSUB it again from the last id "
                             "received");
  }
  if (info) {
    it->second.resume.on_info(redis::parse_stream_info(*reply));
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
  if (r.resume.page_done(entries, replay_page, position)) return resume_next_page(channel);
  resume_done(r);
}

void Session::resume_next_page(std::string const& channel) {
  // A replay is a pull: it goes at the app's pace. Pages queued faster than the app reads
  // would reach the slow-consumer limit and cut off an app that reads as fast as it can.
  auto const mark = relay_.config().soft_queue_bytes / 2;
  if (queued_bytes() <= mark) return resume_query(channel, false);
  replays_waiting_.push_back(channel);
  notify_when_below(mark);
}

void Session::on_queue_below_mark() {
  auto waiting = std::move(replays_waiting_);
  replays_waiting_.clear();
  for (auto const& channel : waiting) {
    auto const it = resumes_.find(channel);
    if (it == resumes_.end() || it->second.answered || detached_) continue;
    resume_query(channel, false);
  }
}

void Session::resume_done(Resuming& r) {
  r.answered = true;
  // Counted once per RSUB, when answered: a resume that fails later counts as "failed".
  relay_.metrics().durable_recovery(core::outcome_name(r.resume.outcome())).Increment();
  auto const last = r.resume.last().to_string();
  append_reply([&](std::string& out) {
    proto::encode_rsubok(out, r.request_id, r.resume.recovered() ? 1 : 0, r.resume.epoch(), last);
  });
  subscription_answered();
}

void Session::resume_failed(std::string const& channel, proto::ErrorCode code,
                            std::string_view text, bool unsubscribe) {
  auto const it = resumes_.find(channel);
  if (it == resumes_.end()) return;
  auto const request_id = it->second.request_id;
  resumes_.erase(it);
  std::erase(replays_waiting_, channel);  // a later RSUB of it must not get this one's page
  relay_.metrics().durable_recovery("failed").Increment();
  reply_err(request_id, code, text);
  if (unsubscribe && !detached_) {
    // The replay stopped part way, so live messages from here on would follow a gap: the
    // app gets the ERR and no subscription (PROTOCOL.md section 9); it resumes again.
    cut_.push_back(channel);
    boost::asio::post(executor(), [self = std::static_pointer_cast<Session>(shared_from_this()),
                                   channel] { self->end_cut(channel); });
  }
  subscription_answered();
}

void Session::end_cut(std::string const& channel) {
  auto const it = std::find(cut_.begin(), cut_.end(), channel);
  if (it == cut_.end()) return;  // subscribed again meanwhile
  cut_.erase(it);
  if (detached_) return;
  core_requests_.push_back({CoreRequest::Kind::silent, {}});
  std::string_view const names[] = {channel};
  relay_.unsubscribe(*this, relay_.framed_names(), core::SubKind::channel, 0, names);
}

void Session::keep_subscribed(std::span<std::string_view const> channels) {
  for (auto const c : channels) {
    std::erase_if(cut_, [&](std::string const& name) { return name == c; });
  }
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
                    "unsubscribed before the resume completed", false);  // the UNSUB ends it
    }
  }
}

}  // namespace podrelay::server
