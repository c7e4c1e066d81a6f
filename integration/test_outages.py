"""Redis outages and publish accounting, against real processes.

What an acknowledged publish means (PROTOCOL.md section 3): OK = Redis replied to the
PUBLISH; ERR 300/301 = never written to Redis; ERR 302 = written, fate unknown. Redis
pub/sub itself drops a message for a subscriber connection that is down when the message
is published, so "acked => delivered everywhere" is only required for messages whose PUB
was sent after every pod's subscription was confirmed on Redis (PUBSUB NUMSUB) and whose
OK arrived before the next kill. Everything else is checked for every message: exactly one
answer, no duplicates, nothing delivered that was not published, nothing delivered that
was nacked 300/301, per-publisher order, one order on every pod.
"""

from __future__ import annotations

import random
import signal
import time
import unittest

from harness import IntegrationCase, proto, wait_for
from harness_ext import (AckedPublisher, Collector, check_accounting, figure, metric,
                         redis_unpause, restart_redis_paused, sidecar_metrics)

PREFIX = "podrelay:"


def _nack_label(code: int) -> str:
    return {300: "buffer_full", 301: "timeout", 302: "outcome_unknown"}[code]


class OutageCase(IntegrationCase):

    def collectors(self, pods, channel):
        cols = {}
        for name, pod in pods.items():
            c = Collector.connect(pod.port, [channel], name=f"col-{name}")
            self.addCleanup(c.close)
            cols[name] = c
        return cols

    def publisher(self, pod, channel, tag, rate, count, seconds, **kw):
        p = AckedPublisher.connect(pod.port, channel, tag, rate, count, seconds, name=tag, **kw)
        self.addCleanup(p.close)
        return p

    def check_nack_metrics(self, pod, publishers):
        oks = sum(p.counts()["ok"] for p in publishers)
        codes = {}
        for p in publishers:
            for k, v in p.counts().items():
                if k.startswith("err"):
                    codes[int(k[3:])] = codes.get(int(k[3:]), 0) + v
        m = sidecar_metrics(pod)
        self.assertEqual(metric(m, "podrelay_publish_acks_total"), oks,
                         "podrelay_publish_acks_total != OKs the apps received")
        for code in (300, 301, 302):
            self.assertEqual(metric(m, "podrelay_publish_nacks_total", reason=_nack_label(code)),
                             codes.get(code, 0),
                             f"podrelay_publish_nacks_total{{reason={_nack_label(code)}}}")
        self.assertEqual(metric(m, "podrelay_publish_nacks_total"), sum(codes.values()),
                         "nacks with other reasons")
        return oks, codes


class RedisKillLoopTest(OutageCase):
    """(a) SIGKILL + restart five times under steady acked load."""

    def test_five_kills_under_load(self):
        rng = random.Random(1234)
        redis = self.start_redis()
        pods = {n: self.start_sidecar(f"pod{n}", redis) for n in "ABC"}
        cols = self.collectors(pods, "load")
        redis.wait_numsub(PREFIX + "load", 3)
        t_setup = time.monotonic()
        pubs = [self.publisher(pods["A"], "load", f"A{i}", 300, 40000, 90) for i in (1, 2)]
        for p in pubs:
            p.start()
        windows = [[t_setup, None]]  # [subscriptions confirmed, next kill]
        downs, resub, outages = [], [], []
        for k in range(5):
            time.sleep(1.2)
            down = rng.uniform(1.0, 2.0)
            t_kill = time.monotonic()
            redis.kill()
            windows[-1][1] = t_kill
            time.sleep(down)
            redis.start()
            outages.append((t_kill, time.monotonic()))
            redis.wait_numsub(PREFIX + "load", 3, timeout=20)
            t_back = time.monotonic()
            windows.append([t_back, None])
            downs.append(round(down, 2))
            resub.append(round(t_back - t_kill - down, 2))
        time.sleep(1.2)
        for p in pubs:
            p.stop_sending()
        t_end = time.monotonic()
        windows[-1][1] = float("inf")
        for p in pubs:
            left = p.wait_answered(30)
            self.assertEqual(left[:10], [], f"{p.tag}: {len(left)} unanswered after 30 s")

        def required(p, s):
            t_sent = p.sent[s]
            t_ack = p.replies[s][0][2]
            return any(a < t_sent and t_ack < b - 0.02 for a, b in windows)

        want = {p.payload(s) for p in pubs for s in list(p.sent)
                if p.outcome(s) == ("OK", 0) and required(p, s)}
        deadline = time.monotonic() + 20
        for col in cols.values():
            col.wait_for(lambda c_: want <= set(c_.payloads()),
                         max(0.1, deadline - time.monotonic()))
        time.sleep(0.5)  # late duplicates would show up now
        # the raw counts first, so that a failing run still shows them
        figure("outages.kill_loop.raw", down_s=downs, resubscribed_after_restart_s=resub,
               **{f"{p.tag.decode()}": p.counts() for p in pubs},
               **{f"delivered_{n}": len(c.msgs) for n, c in cols.items()})
        figs = check_accounting(self, pubs, cols, required)
        n_required = sum(1 for p in pubs for s in p.sent
                         if p.outcome(s) == ("OK", 0) and required(p, s))
        oks, codes = self.check_nack_metrics(pods["A"], pubs)
        self.assertGreater(n_required, 1000, "too few messages in the checked windows")
        # outages of at most 2 s plus reconnect backoff are far below the 10 s buffer
        # timeout and the 16 MiB buffer: a 300/301 here means a publisher that did not
        # come back (seen once, not reproduced since; see the figures)
        self.assertEqual({k: v for k, v in codes.items() if k in (300, 301)}, {},
                         "publishes refused/expired although Redis was back within 2 s")
        # Not asserted (Redis pub/sub semantics), but worth knowing: publishes buffered
        # while Redis was down, acked after the restart, and how many pods still got them
        # (the publisher may flush before the subscribers, even its own pod's, resubscribe).
        buffered = {p.payload(s) for p in pubs for s, t in p.sent.items()
                    if p.outcome(s) == ("OK", 0) and any(a <= t <= b for a, b in outages)}
        for n, col in cols.items():
            figs[f"buffered_acked_delivered_{n}"] = len(buffered & set(col.payloads()))
        figs["buffered_acked"] = len(buffered)
        for pod in pods.values():
            self.assertTrue(pod.proc.alive())
        figure("outages.kill_loop", seconds=t_end - t_setup, kills=5, down_s=downs,
               resubscribed_after_restart_s=resub, acked=oks,
               nacked={k: v for k, v in sorted(codes.items())},
               required_delivered_everywhere=n_required, **figs)


class PublishBufferTest(OutageCase):
    """(b) publishes while Redis is away wait in the buffer, then OK / 300 / 301."""

    def _await_replies(self, c, ids, timeout):
        t0 = time.monotonic()
        replies = {}
        while len(replies) < len(ids) and time.monotonic() - t0 < timeout:
            f = c.recv_frame(timeout=max(0.0, timeout - (time.monotonic() - t0)))
            if f is None:
                break
            self.assertIsInstance(f, (proto.Ok, proto.Err), f)
            self.assertIn(f.request_id, ids)
            self.assertNotIn(f.request_id, replies, "two replies to one PUB")
            replies[f.request_id] = (f.code if isinstance(f, proto.Err) else 0,
                                     time.monotonic())
        return replies

    def test_buffer_full_then_ok_when_redis_returns(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis, ["--publish-buffer-bytes", "2048",
                                               "--publish-buffer-timeout", "15",
                                               "--redis-ping-timeout", "10"])
        b = self.start_sidecar("podB", redis)
        col = Collector.connect(b.port, ["buf"], name="col-B")
        self.addCleanup(col.close)
        redis.wait_numsub(PREFIX + "buf", 1)
        c = a.client()
        redis.kill()
        a.wait_readyz(503, timeout=10)
        ids = [c.next_request_id() for _ in range(12)]
        t0 = time.monotonic()
        c.send_raw(b"".join(proto.encode_pub(i, "buf", b"%d:" % i + b"b" * 400) for i in ids))
        first = self._await_replies(c, ids, 1.5)
        full = sorted(i for i, (code, _) in first.items() if code == proto.PUBLISH_BUFFER_FULL)
        self.assertEqual(set(first), set(full), f"only 300 may come while Redis is away: {first}")
        waiting = [i for i in ids if i not in first]
        self.assertTrue(full, "nothing refused although 12 x 400 B > 2048 B buffer")
        self.assertTrue(waiting, "nothing buffered")
        self.assertEqual(waiting, ids[:len(waiting)], "the first publishes must be the buffered")
        t_full = max(t for _, t in first.values()) - t0
        # Redis back within the timeout: the waiting ones are executed once B resubscribed
        t_up, raced = restart_redis_paused(self, redis, 8000)
        redis.wait_numsub(PREFIX + "buf", 1, timeout=7)
        redis_unpause(redis)
        rest = self._await_replies(c, waiting, 12)
        self.assertEqual(sorted(rest), waiting, f"buffered publishes unanswered: {rest}")
        self.assertEqual({code for code, _ in rest.values()}, {0}, f"expected OK: {rest}")
        want = [b"%d:" % i + b"b" * 400 for i in waiting]
        if raced:
            print("note: podrelay reconnected before CLIENT PAUSE; delivery not asserted")
        else:
            self.assertTrue(col.wait_for(lambda c_: len(c_.msgs) >= len(want), 10))
            time.sleep(0.3)
            self.assertEqual(col.payloads(), want, "B must get exactly the buffered ones")
        m = sidecar_metrics(a)
        self.assertEqual(metric(m, "podrelay_publish_nacks_total", reason="buffer_full"),
                         len(full))
        self.assertEqual(metric(m, "podrelay_publish_acks_total"), len(waiting))
        figure("outages.buffer_full", buffered=len(waiting), refused_300=len(full),
               refused_within_s=t_full, ok_after_restart=len(rest),
               ok_latency_after_unpause_s=max(t for _, t in rest.values()) - t_up,
               delivered_B=len(col.msgs))

    def test_buffer_timeout_301(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis, ["--publish-buffer-timeout", "1"])
        c = a.client()
        redis.kill()
        a.wait_readyz(503, timeout=10)
        ids = [c.next_request_id() for _ in range(5)]
        t0 = time.monotonic()
        c.send_raw(b"".join(proto.encode_pub(i, "t", b"x") for i in ids))
        replies = self._await_replies(c, ids, 6)
        self.assertEqual(sorted(replies), ids)
        self.assertEqual({code for code, _ in replies.values()}, {proto.PUBLISH_TIMEOUT},
                         replies)
        at = [t - t0 for _, t in replies.values()]
        self.assertGreaterEqual(min(at), 0.95, f"301 before the 1 s timeout: {at}")
        self.assertLess(max(at), 2.5, f"301 long after the 1 s timeout: {at}")
        m = sidecar_metrics(a)
        self.assertEqual(metric(m, "podrelay_publish_nacks_total", reason="timeout"), 5)
        # fire-and-forget: no reply, counted as dropped
        c.send_raw(proto.encode_pub(0, "t", b"ff"))
        self.assertIsNone(c.recv_frame(timeout=1.6), "reply to a fire-and-forget PUB")
        m = sidecar_metrics(a)
        self.assertEqual(metric(m, "podrelay_messages_dropped_total", reason="timeout"), 1)
        figure("outages.buffer_timeout", n=5, nack_301_after_s_min=min(at),
               nack_301_after_s_max=max(at))


class OutcomeUnknownTest(OutageCase):
    """(c) Redis hung (SIGSTOP) with acked publishes in flight, then SIGKILLed."""

    def test_sigstop_then_sigkill_gives_302(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis, ["--redis-ping-timeout", "1"])
        b = self.start_sidecar("podB", redis)
        cols = {"B": Collector.connect(b.port, ["hang"], name="col-B")}
        self.addCleanup(cols["B"].close)
        redis.wait_numsub(PREFIX + "hang", 1)
        pub = self.publisher(a, "hang", "H", 200, 20000, 60).start()
        time.sleep(1.0)
        t_stop = time.monotonic()
        redis.proc.send_signal(signal.SIGSTOP)

        def first_302():
            with pub.lock:
                ts = [r[0][2] for r in pub.replies.values() if r[0][:2] == ("ERR", 302)]
            return min(ts) if ts else None
        t302 = wait_for(first_302, 10, what="a 302 OUTCOME_UNKNOWN after SIGSTOP")
        detect = t302 - t_stop
        ready_503 = None
        for _ in range(100):
            if a.readyz() == 503:
                ready_503 = time.monotonic() - t_stop
                break
            time.sleep(0.05)
        redis.proc.send_signal(signal.SIGKILL)
        redis.proc.wait(5)
        time.sleep(0.5)
        redis.start()
        redis.wait_numsub(PREFIX + "hang", 1, timeout=20)
        t_back = time.monotonic()
        time.sleep(1.0)
        pub.stop_sending()
        left = pub.wait_answered(20)
        self.assertEqual(left[:10], [], f"{len(left)} unanswered")

        def required(p, s):
            t_sent, t_ack = p.sent[s], p.replies[s][0][2]
            return t_ack < t_stop - 0.02 or t_sent > t_back
        cols["B"].wait_for(lambda c_: len(c_.msgs) >= sum(
            1 for s in pub.sent if pub.outcome(s) == ("OK", 0) and required(pub, s)), 10)
        time.sleep(0.3)
        figs = check_accounting(self, [pub], cols, required)
        oks, codes = self.check_nack_metrics(a, [pub])
        self.assertGreater(codes.get(302, 0), 0, "no 302 although publishes were in flight")
        # ping interval 1 s + ping timeout 1 s, plus scheduling slack
        self.assertLess(detect, 3.5, f"hung Redis detected after {detect:.2f}s")
        in_flight_302_delivered = sum(
            1 for s in pub.sent if pub.outcome(s) == ("ERR", 302)
            and pub.payload(s) in set(cols["B"].payloads()))
        figure("outages.outcome_unknown", detection_s=detect,
               readyz_503_after_s=ready_503, acked=oks,
               nacked={k: v for k, v in sorted(codes.items())},
               nack302_delivered_anyway=in_flight_302_delivered, **figs)


class ReadyzHungRedisTest(OutageCase):
    """(d) /readyz 503 within ping interval + ping timeout (1 s + 3 s) of Redis hanging."""

    def test_readyz_follows_a_hung_redis(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        c = a.client()
        c.subscribe("r")
        redis.wait_numsub(PREFIX + "r", 1)
        time.sleep(0.3)
        t_stop = time.monotonic()
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            t503 = None
            deadline = t_stop + 10
            while time.monotonic() < deadline:
                st, body = a.get("/readyz")
                if st == 503:
                    t503 = time.monotonic() - t_stop
                    break
                self.assertEqual(st, 200)
                time.sleep(0.05)
            self.assertIsNotNone(t503, "/readyz still 200 10 s after Redis hung")
            self.assertEqual(len(body.strip().splitlines()), 1, body)
            c.ping(timeout=2)  # the app side stays responsive
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        t_cont = time.monotonic()
        a.wait_readyz(200, timeout=15)
        t200 = time.monotonic() - t_cont
        redis.wait_numsub(PREFIX + "r", 1, timeout=10)
        c.publish("r", b"after hang", timeout=10)
        self.assertEqual(self.expect_msgs(c, 1)[0].payload, b"after hang")
        self.assertLessEqual(t503, 4.0 + 0.75, f"readyz 503 after {t503:.2f}s, bound 4 s")
        # then a restart (kill while hung, start again)
        redis.proc.send_signal(signal.SIGSTOP)
        a.wait_readyz(503, timeout=10)
        redis.kill()
        redis.start()
        t_start = time.monotonic()
        a.wait_readyz(200, timeout=15)
        t200b = time.monotonic() - t_start
        figure("outages.readyz_hung", readyz_503_after_sigstop_s=t503, bound_s=4.0,
               readyz_200_after_sigcont_s=t200, readyz_200_after_restart_s=t200b,
               reason=body.strip())


if __name__ == "__main__":
    unittest.main()
