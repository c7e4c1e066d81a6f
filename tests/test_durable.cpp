// Durable channels without I/O: the glob matcher, stream ids, channel selection and keys,
// the stream reader's cursor, and a resume's replay state machine, step by step.
#include <doctest/doctest.h>

#include "core/durable_channels.hpp"
#include "core/glob.hpp"
#include "core/resume.hpp"
#include "core/stream_cursor.hpp"
#include "core/stream_id.hpp"

using namespace podrelay::core;

namespace {
StreamId id(char const* text) { return *StreamId::parse(text); }
}  // namespace

TEST_CASE("glob_match follows Redis' stringmatchlen") {
  CHECK(glob_match("room:*", "room:42"));
  CHECK(glob_match("room:*", "room:"));
  CHECK_FALSE(glob_match("room:*", "roo"));
  CHECK(glob_match("*", ""));
  CHECK(glob_match("r?om", "room"));
  CHECK_FALSE(glob_match("r?om", "rom"));
  CHECK(glob_match("[abc]x", "bx"));
  CHECK_FALSE(glob_match("[abc]x", "dx"));
  CHECK(glob_match("[^abc]x", "dx"));
  CHECK(glob_match("[a-c]", "b"));
  CHECK_FALSE(glob_match("[a-c]", "d"));
  CHECK(glob_match("a\\*b", "a*b"));
  CHECK_FALSE(glob_match("a\\*b", "axb"));
  CHECK(glob_match("*a*b*c", "xxaybzzc"));
  CHECK_FALSE(glob_match("*a*b*c", "xxaybzz"));
  CHECK(glob_match("chat.**", "chat.x"));
}

TEST_CASE("stream ids parse strictly and compare numerically") {
  CHECK(StreamId::parse("1-2") == StreamId{1, 2});
  CHECK(StreamId::parse("7") == StreamId{7, 0});
  CHECK_FALSE(StreamId::parse("").has_value());
  CHECK_FALSE(StreamId::parse("1-").has_value());
  CHECK_FALSE(StreamId::parse("-1").has_value());
  CHECK_FALSE(StreamId::parse("1-2-3").has_value());
  CHECK_FALSE(StreamId::parse("x-1").has_value());
  CHECK_FALSE(StreamId::parse("99999999999999999999-0").has_value());
  CHECK(id("9-0") < id("10-0"));
  CHECK(id("10-1") > id("10-0"));
  CHECK(id("10-1").to_string() == "10-1");
}

TEST_CASE("durable channels: globs over app names, hash-tagged keys, spaced TTL refresh") {
  DurableChannels::Options o;
  o.patterns = {"room:*", "feed"};
  o.ttl = std::chrono::seconds(100);
  o.ttl_cache_entries = 2;
  DurableChannels d("podrelay:", o);
  CHECK(d.enabled());
  CHECK(d.is_durable("room:1"));
  CHECK(d.is_durable("feed"));
  CHECK_FALSE(d.is_durable("feeds"));
  CHECK(d.durable_app_channel("podrelay:room:1") == "room:1");
  CHECK_FALSE(d.durable_app_channel("other:room:1").has_value());
  CHECK_FALSE(d.durable_app_channel("podrelay:chat").has_value());
  CHECK(d.stream_key("room:1") == "podrelay:{room:1}");
  CHECK(d.epoch_key("room:1") == "podrelay:{room:1}:epoch");
  CHECK(d.wake_channel("room:1") == "podrelay:{room:1}:wake");
  CHECK(d.app_of_wake("podrelay:{room:1}:wake") == "room:1");
  CHECK(d.app_of_wake(d.wake_channel("room:}x")) == "room:}x");
  CHECK_FALSE(d.app_of_wake("podrelay:{chat}:wake").has_value());  // not durable
  CHECK_FALSE(d.app_of_wake("podrelay:room:1").has_value());
  CHECK_FALSE(d.app_of_wake("podrelay:{room:1}:epoch").has_value());
  CHECK_FALSE(d.app_of_wake("podrelay:{}:wake").has_value());
  CHECK_FALSE(d.app_of_wake("x:{room:1}:wake").has_value());

  auto const t0 = DurableChannels::Clock::now();
  CHECK(d.ttl_refresh_due("a", t0));
  CHECK_FALSE(d.ttl_refresh_due("a", t0 + std::chrono::seconds(24)));
  CHECK(d.ttl_refresh_due("a", t0 + std::chrono::seconds(26)));
  CHECK(d.ttl_refresh_due("b", t0));
  CHECK(d.ttl_refresh_due("c", t0));  // full: forgotten as a whole, bounded
  CHECK(d.ttl_refresh_due("a", t0 + std::chrono::seconds(27)));

  DurableChannels none("p:", {});
  CHECK_FALSE(none.enabled());
  CHECK_FALSE(none.durable_app_channel("p:room:1").has_value());
}

TEST_CASE("the cursor fetches each new channel's position once and reads from there") {
  StreamCursor c;
  CHECK(c.empty());
  CHECK_FALSE(c.want("p:a", "p:{a}"));
  CHECK_FALSE(c.want("p:b", "p:{b}"));
  CHECK_FALSE(c.ready());
  auto const fetch = c.take_unpositioned();
  CHECK(fetch == std::vector<std::string>{"p:a", "p:b"});
  CHECK(c.take_unpositioned().empty());
  CHECK_FALSE(c.positioned("p:a"));  // fetching: its subscription is not confirmed yet
  CHECK(c.set_position("p:a", id("5-0")));
  CHECK(c.positioned("p:a"));
  CHECK_FALSE(c.positioned("p:b"));
  CHECK_FALSE(c.positioned("p:zz"));
  CHECK_FALSE(c.set_position("p:a", id("6-0")));  // once
  CHECK(c.set_position("p:b", id("0-0")));
  CHECK(c.ready());
  CHECK(c.xread_args(1000, 10) == std::vector<std::string>{"XREAD", "BLOCK", "1000", "COUNT", "10",
                                                           "STREAMS", "p:{a}", "p:{b}", "5-0",
                                                           "0-0"});
  CHECK(c.advance("p:a", id("6-0")));
  CHECK_FALSE(c.advance("p:a", id("6-0")));  // never twice
  CHECK_FALSE(c.advance("p:a", id("5-9")));  // never backwards
  CHECK_FALSE(c.advance("p:zz", id("9-0")));
  CHECK(*c.channel_of_key("p:{b}") == "p:b");
  CHECK(c.channel_of_key("p:{zz}") == nullptr);

  // A reconnect keeps positions: a channel wanted again is confirmed at once.
  auto const generation = c.generation();
  c.on_disconnected();
  CHECK(c.want("p:a", "p:{a}"));
  CHECK(c.position("p:a") == id("6-0"));
  c.retain_only({"p:a"});
  CHECK_FALSE(c.wanted("p:b"));
  CHECK(c.generation() != generation);

  // A position being fetched when the link broke is fetched again.
  CHECK_FALSE(c.want("p:c", "p:{c}"));
  CHECK(c.take_unpositioned() == std::vector<std::string>{"p:c"});
  c.on_disconnected();
  CHECK(c.take_unpositioned() == std::vector<std::string>{"p:c"});
  c.unwant("p:c");
  CHECK(c.ready());
  CHECK(c.size() == 1);
}

TEST_CASE("stream cursor: a reconnect tells a stream Redis lost from one it kept") {
  using C = StreamCursor::Continuity;
  StreamCursor c;
  for (auto const* ch : {"p:a", "p:b", "p:c", "p:d", "p:e", "p:f"}) {
    c.want(ch, std::string(ch) + "-key");
  }
  CHECK(c.take_unpositioned().size() == 6);
  for (auto const* ch : {"p:a", "p:b", "p:e", "p:f"}) CHECK(c.set_position(ch, id("5-0"), "E1"));
  CHECK(c.set_position("p:c", id("0-0"), "p:R"));  // reserved by an RSUB, no stream yet
  CHECK(c.set_position("p:d", id("0-0"), ""));     // neither
  for (auto const* ch : {"p:a", "p:b", "p:e", "p:f"}) CHECK(c.advance(ch, id("9-0")));
  CHECK(c.positioned_channels() ==
        std::vector<std::string>{"p:a", "p:b", "p:c", "p:d", "p:e", "p:f"});
  // Same epoch, Redis holds what was read: nothing to say.
  CHECK(c.recheck("p:a", "E1", id("12-0"), id("9-0")) == C::intact);
  CHECK(c.position("p:a") == id("9-0"));
  // Another epoch (Redis without persistence restarted, a new stream): read from its end.
  CHECK(c.recheck("p:a", "E2", id("3-0"), id("3-0")) == C::recreated);
  CHECK(c.position("p:a") == id("3-0"));
  CHECK(c.epoch("p:a") == "E2");
  // No stream and no epoch any more: recreated too.
  CHECK(c.recheck("p:a", "", id("0-0"), id("0-0")) == C::recreated);
  // Same epoch, but the last entry is before what was read (an older RDB snapshot).
  CHECK(c.recheck("p:b", "E1", id("7-0"), id("7-0")) == C::rolled_back);
  CHECK(c.position("p:b") == id("7-0"));
  CHECK(c.recheck("p:b", "E1", id("7-0"), id("7-0")) == C::intact);
  // The same, after a publish made the last entry newer again: the entry read last (9-0)
  // is gone, 7-0 is before it. Reading goes on after 7-0, so the new entry is read.
  CHECK(c.recheck("p:e", "E1", id("20-0"), id("7-0")) == C::rolled_back);
  CHECK(c.position("p:e") == id("7-0"));
  // Nothing at or before the entry read last, newer ones left: trimmed past it (or deleted).
  // Reading goes on from the end; the next recheck has nothing more to say.
  CHECK(c.recheck("p:f", "E1", id("30-0"), id("0-0")) == C::trimmed);
  CHECK(c.position("p:f") == id("30-0"));
  CHECK(c.recheck("p:f", "E1", id("30-0"), id("30-0")) == C::intact);
  // The publish that created the stream took the reserved epoch: the same stream. Nothing
  // was read from 0-0, so nothing read can be gone.
  CHECK(c.recheck("p:c", "R", id("4-0"), id("0-0")) == C::intact);
  CHECK(c.epoch("p:c") == "R");
  CHECK(c.recheck("p:c", "R2", id("4-0"), id("0-0")) == C::recreated);
  // A stream first seen without an epoch takes the one it has later.
  CHECK(c.recheck("p:d", "E9", id("2-0"), id("0-0")) == C::intact);
  CHECK(c.recheck("p:d", "E10", id("2-0"), id("0-0")) == C::recreated);
  // not read: nothing to judge
  CHECK(c.recheck("p:zz", "E", id("0-0"), id("0-0")) == C::intact);
}

TEST_CASE("resume without since: live from the reader's position, after catching up") {
  Resume r(std::nullopt, "");
  CHECK_FALSE(r.on_live(id("1-0")));  // not subscribed yet: the replay covers it
  r.on_subscribed(id("10-0"));
  CHECK(r.on_info({"E1", id("1-0"), id("12-0")}) == Resume::Outcome::fresh);
  CHECK(r.replay_after() == id("10-0"));
  CHECK_FALSE(r.on_live(id("11-0")));  // still replaying
  CHECK(r.on_replayed(id("11-0")));
  CHECK(r.on_replayed(id("12-0")));
  CHECK_FALSE(r.page_done(2, 256, id("11-0")));
  CHECK(r.phase() == Resume::Phase::live);
  CHECK(r.recovered());
  CHECK(r.epoch() == "E1");
  CHECK_FALSE(r.on_live(id("11-0")));  // delivered by the replay
  CHECK_FALSE(r.on_live(id("12-0")));
  CHECK(r.on_live(id("13-0")));
}

TEST_CASE("resume with since: replays from there, pages on until it caught up") {
  Resume r(id("3-0"), "E1");
  r.on_subscribed(id("10-0"));
  CHECK(r.on_info({"E1", id("2-0"), id("10-0")}) == Resume::Outcome::recovered);
  CHECK(r.replay_after() == id("3-0"));
  CHECK(r.on_replayed(id("4-0")));
  CHECK(r.on_replayed(id("5-0")));
  CHECK(r.page_done(2, 2, id("10-0")));  // a full page: ask again
  CHECK(r.replay_after() == id("5-0"));
  CHECK(r.on_replayed(id("10-0")));
  // The reader moved on while the page travelled: one more page.
  CHECK(r.page_done(1, 2, id("11-0")));
  CHECK(r.on_replayed(id("11-0")));
  CHECK_FALSE(r.page_done(1, 2, id("11-0")));
  CHECK(r.replayed() == 4);
  CHECK(r.recovered());
  CHECK(r.on_live(id("12-0")));
}

TEST_CASE("resume with since ahead of this pod's reader: nothing the app has is sent again") {
  // The app got 12-0 through another pod's sidecar; this pod's reader stands at 10-0.
  Resume r(id("12-0"), "E1");
  r.on_subscribed(id("10-0"));
  CHECK(r.on_info({"E1", id("1-0"), id("13-0")}) == Resume::Outcome::recovered);
  CHECK(r.replay_after() == id("12-0"));
  CHECK_FALSE(r.on_replayed(id("11-0")));
  CHECK(r.on_replayed(id("13-0")));
  CHECK_FALSE(r.page_done(1, 256, id("10-0")));
  CHECK_FALSE(r.on_live(id("11-0")));  // the reader catching up: the app had these
  CHECK_FALSE(r.on_live(id("13-0")));
  CHECK(r.on_live(id("14-0")));
  CHECK(r.last() == id("14-0"));
}

TEST_CASE("an empty page ends the replay even when the reader is ahead (stream deleted)") {
  Resume r(id("3-0"), "");
  r.on_subscribed(id("10-0"));
  CHECK(r.on_info({"E", id("1-0"), id("10-0")}) == Resume::Outcome::recovered);
  r.page_asked(id("10-0"));
  CHECK_FALSE(r.page_done(0, 256, id("10-0")));
  CHECK(r.phase() == Resume::Phase::live);
}

TEST_CASE("an empty page while the reader moved on asks again: the entry it saw is not lost") {
  // The page's XRANGE ran before 11-0 was appended, but the reader's XREAD reply with 11-0
  // reached the hub (and was left to the replay) before the page did.
  Resume r(std::nullopt, "");
  r.on_subscribed(id("10-0"));
  CHECK(r.on_info({"E", id("1-0"), id("10-0")}) == Resume::Outcome::fresh);
  r.page_asked(id("10-0"));
  CHECK_FALSE(r.on_live(id("11-0")));      // replaying: not delivered live
  CHECK(r.page_done(0, 256, id("11-0")));  // so the empty page must not end the replay
  r.page_asked(id("11-0"));
  CHECK(r.on_replayed(id("11-0")));
  CHECK_FALSE(r.page_done(1, 256, id("11-0")));
  CHECK(r.on_live(id("12-0")));
  CHECK(r.last() == id("12-0"));
}

TEST_CASE("resume outcomes that say: reload your state") {
  auto outcome = [](std::optional<StreamId> since, std::string epoch, StreamInfo info) {
    Resume r(since, std::move(epoch));
    r.on_subscribed(id("10-0"));
    auto const o = r.on_info(info);
    CHECK_FALSE(r.recovered());
    CHECK(r.replay_after() == id("10-0"));  // live from the subscription on
    return o;
  };
  CHECK(outcome(id("5-0"), "E1", {"E2", id("1-0"), id("10-0")}) == Resume::Outcome::epoch_changed);
  CHECK(outcome(id("5-0"), "E1", {"", std::nullopt, std::nullopt}) == Resume::Outcome::stream_gone);
  CHECK(outcome(id("5-0"), "E1", {"E1", id("6-0"), id("10-0")}) == Resume::Outcome::trimmed);
  CHECK(outcome(id("11-0"), "E1", {"E1", id("6-0"), id("10-0")}) == Resume::Outcome::unknown_id);
  CHECK(outcome(id("5-0"), "E1", {"E1", std::nullopt, id("10-0")}) == Resume::Outcome::trimmed);
  // With parts of the history removed, 0-0 (the app has nothing) is not a recovery either.
  CHECK(outcome(id("0-0"), "", {"E1", id("6-0"), id("10-0")}) == Resume::Outcome::trimmed);
  // An empty epoch from the app is not checked.
  Resume r(id("6-0"), "");
  r.on_subscribed(id("10-0"));
  CHECK(r.on_info({"E9", id("6-0"), id("10-0")}) == Resume::Outcome::recovered);
}

TEST_CASE("resume from 0-0 replays the whole history while nothing was ever removed") {
  Resume r(id("0-0"), "E1");
  r.on_subscribed(id("10-0"));
  CHECK(r.on_info({"E1", id("4-0"), id("10-0"), true}) == Resume::Outcome::recovered);
  CHECK(r.recovered());
  CHECK(r.replay_after() == id("0-0"));
  // The same stream after a trim: the first entry is no proof that nothing came before it.
  Resume trimmed(id("0-0"), "E1");
  trimmed.on_subscribed(id("10-0"));
  CHECK(trimmed.on_info({"E1", id("4-0"), id("10-0"), false}) == Resume::Outcome::trimmed);
  // A complete history does not make an id from the future or another epoch good.
  Resume ahead(id("11-0"), "E1");
  ahead.on_subscribed(id("10-0"));
  CHECK(ahead.on_info({"E1", id("4-0"), id("10-0"), true}) == Resume::Outcome::unknown_id);
  Resume other(id("0-0"), "E0");
  other.on_subscribed(id("10-0"));
  CHECK(other.on_info({"E1", id("4-0"), id("10-0"), true}) == Resume::Outcome::epoch_changed);
}

TEST_CASE("an untrimmed stream never held an id before its first entry: it was created anew") {
  // Found by a client written from the spec alone: an app that subscribed before the first
  // publish had no epoch to resume with; the stream was lost and created anew while it was
  // away, and its resume without an epoch was answered "recovered" with a message missing.
  Resume lost(id("5-0"), "");
  lost.on_subscribed(id("10-0"));
  CHECK(lost.on_info({"E2", id("8-0"), id("10-0"), true}) == Resume::Outcome::unknown_id);
  CHECK_FALSE(lost.recovered());
  CHECK(lost.replay_after() == id("10-0"));  // live from the subscription on
  // 0-0 still asks for the whole history, and an id of the stream is still found.
  Resume whole(id("0-0"), "");
  whole.on_subscribed(id("10-0"));
  CHECK(whole.on_info({"E2", id("8-0"), id("10-0"), true}) == Resume::Outcome::recovered);
  Resume held(id("8-0"), "");
  held.on_subscribed(id("10-0"));
  CHECK(held.on_info({"E2", id("8-0"), id("10-0"), true}) == Resume::Outcome::recovered);
  CHECK(held.replay_after() == id("8-0"));
}

TEST_CASE("without a stream, only the unused epoch reserved at the subscription recovers") {
  // The app subscribed before anything was published: 0-0 and the reserved epoch R.
  Resume unused(id("0-0"), "R");
  unused.on_subscribed(id("0-0"));
  CHECK(unused.on_info({"R", std::nullopt, std::nullopt, false, true}) ==
        Resume::Outcome::recovered);
  CHECK(unused.recovered());
  CHECK(unused.epoch() == "R");
  CHECK(unused.replay_after() == id("0-0"));
  // Another reservation (R expired, or its stream came and went): something may be gone.
  Resume replaced(id("0-0"), "R");
  replaced.on_subscribed(id("0-0"));
  CHECK(replaced.on_info({"S", std::nullopt, std::nullopt, false, true}) ==
        Resume::Outcome::stream_gone);
  // An app with an id, or without an epoch, had a stream that is gone.
  Resume had(id("3-0"), "R");
  had.on_subscribed(id("0-0"));
  CHECK(had.on_info({"R", std::nullopt, std::nullopt, false, true}) ==
        Resume::Outcome::stream_gone);
  Resume unchecked(id("0-0"), "");
  unchecked.on_subscribed(id("0-0"));
  CHECK(unchecked.on_info({"R", std::nullopt, std::nullopt, false, true}) ==
        Resume::Outcome::stream_gone);
  // A fresh subscription learns the reserved epoch.
  Resume fresh(std::nullopt, "");
  fresh.on_subscribed(id("0-0"));
  CHECK(fresh.on_info({"R", std::nullopt, std::nullopt, false, true}) == Resume::Outcome::fresh);
  CHECK(fresh.epoch() == "R");
}
