"""Mixed protocols and a Redis outage (issue 11).

An app on the RESP port of pod A and an app on the framed port of pod B exchange messages
(both pods ``--channel-prefix ''``, so a framed client's channel ``x`` is Redis ``x``, as
a RESP client's is). Then Redis is SIGKILLed and restarted mid-run while the RESP app
publishes: through podrelay, the RESP connections stay up, keep their subscriptions
without reconnecting (podrelay resubscribes for them) and every PUBLISH is answered
exactly once (Redis' integer, or an error once podrelay gives up on it).

``...DirectTest``: the RESP app on redis-server itself (the control). For the outage it
shows what podrelay is for: the kill closes the app's own connections to Redis.
``...SidecarTest``: the RESP app on pod A's RESP port.
"""

from __future__ import annotations

import threading
import time
import unittest

from harness import Redis, wait_for
from harness_ext import Collector, figure
from resp_harness import Error, RespConn, RespPeerCase

NO_PREFIX = ["--channel-prefix", ""]


class RespPublisher:
    """PUBLISH ``channel`` ``tag:seq`` at ``rate``/s on one RESP connection (a writer thread
    on a dup of the socket, a reader thread parsing every reply in order). Bounded by
    ``max_count`` and ``max_seconds``."""

    def __init__(self, port: int, channel: str, tag: str, rate: float, max_count: int,
                 max_seconds: float):
        self.conn = RespConn(port, timeout=30)
        self.channel, self.tag = channel, tag
        self.rate, self.max_count, self.max_seconds = rate, max_count, max_seconds
        self.sent = 0
        self.replies = []  # in order: int or Error
        self.end = None
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._w = threading.Thread(target=self._write, daemon=True)
        self._r = threading.Thread(target=self._read, daemon=True)

    def start(self):
        self._r.start()
        self._w.start()
        return self

    def payload(self, seq: int) -> bytes:
        return f"{self.tag}:{seq}".encode()

    def _write(self):
        w = self.conn.sock.dup()
        w.settimeout(10)
        t0 = time.monotonic()
        try:
            while (not self._stop.is_set() and self.sent < self.max_count
                   and time.monotonic() - t0 < self.max_seconds):
                seq = self.sent + 1
                p = self.payload(seq)
                w.sendall(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                    len(self.channel), self.channel.encode(), len(p), p))
                with self.lock:
                    self.sent = seq
                time.sleep(1.0 / self.rate)
        except OSError as e:
            self.end = self.end or f"send error: {e}"
        finally:
            w.close()

    def _read(self):
        deadline = time.monotonic() + self.max_seconds + 60
        while time.monotonic() < deadline:
            try:
                r = self.conn._read(deadline)
            except (ConnectionError, OSError) as e:
                self.end = self.end or f"closed: {e!r}"
                return
            with self.lock:
                self.replies.append(r)

    def stop(self):
        self._stop.set()
        self._w.join(10)

    def wait_answered(self, timeout: float) -> None:
        wait_for(lambda: len(self.replies) >= self.sent or self.end, timeout,
                 what=f"{self.tag}: every PUBLISH answered")

    def close(self):
        self._stop.set()
        self.conn.close()
        self._w.join(5)
        self._r.join(5)


class MixedMixin:

    def _pods(self):
        """(RESP app's port, pod B): pod A (sidecar target) and pod B, both unprefixed."""
        (resp_port,) = self.start_pods(1, NO_PREFIX)
        pod_b = self.start_sidecar("podB", self.redis, NO_PREFIX)
        return resp_port, pod_b

    def test_resp_app_and_framed_app_exchange_messages(self):
        resp_port, pod_b = self._pods()
        rsub = RespConn(resp_port)
        self.addCleanup(rsub.close)
        self.assertEqual(rsub.call("SUBSCRIBE", "to-resp"), [b"subscribe", b"to-resp", 1])
        self.assertEqual(rsub.call("PSUBSCRIBE", "to-resp-*"),
                         [b"psubscribe", b"to-resp-*", 2])
        framed = pod_b.client()
        framed.subscribe("to-framed")
        self.redis.wait_numsub("to-resp", 1)
        self.redis.wait_numsub("to-framed", 1)

        framed.publish("to-resp", b"from framed \x00\xff")
        self.assertEqual(rsub.read(), [b"message", b"to-resp", b"from framed \x00\xff"])
        framed.publish("to-resp-x", b"pattern")
        self.assertEqual(rsub.read(), [b"pmessage", b"to-resp-*", b"to-resp-x", b"pattern"])

        rpub = RespConn(resp_port)
        self.addCleanup(rpub.close)
        for i in range(20):
            self.assertEqual(rpub.call("PUBLISH", "to-framed", f"from resp {i}"), 1)
        got = self.expect_msgs(framed, 20)
        self.assertEqual([(m.channel, m.payload) for m in got],
                         [(b"to-framed", f"from resp {i}".encode()) for i in range(20)])
        self.expect_no_msg(framed, 0.3)

    def test_redis_killed_and_restarted_mid_run(self):
        resp_port, pod_b = self._pods()
        rsub = RespConn(resp_port, timeout=30)
        self.addCleanup(rsub.close)
        self.assertEqual(rsub.call("SUBSCRIBE", "out"), [b"subscribe", b"out", 1])
        col = Collector.connect(pod_b.port, ["out"], name="col-B")
        self.addCleanup(col.close)
        self.redis.wait_numsub("out", 2)

        pub = RespPublisher(resp_port, "out", "R", rate=100, max_count=3000, max_seconds=20)
        self.addCleanup(pub.close)
        pub.start()
        wait_for(lambda: len(pub.replies) >= 100, 10, what="100 answered publishes")
        self.redis.kill()
        t_kill = time.monotonic()
        sent_at_kill = pub.sent
        time.sleep(1.0)
        self.redis.start()
        t_up = time.monotonic()

        if not self.sidecar:
            # the control: the app's own connections die with Redis
            wait_for(lambda: pub.end, 10, what="publisher connection closed by the kill")
            rsub.read_until_close(2)
            self.assertTrue(rsub.eof, "subscriber connection survived a Redis SIGKILL")
            self.assertLessEqual(len(pub.replies), pub.sent)
            figure("resp_outage_direct", sent=pub.sent, answered=len(pub.replies),
                   sent_at_kill=sent_at_kill, end=pub.end)
            return

        self.redis.wait_numsub("out", 2, timeout=20)  # podrelay resubscribed both pods
        t_resub = time.monotonic()
        wait_for(lambda: pub.sent > sent_at_kill + 300, 15, what="publishing after restart")
        pub.stop()
        pub.wait_answered(30)
        self.assertIsNone(pub.end, f"publisher connection ended: {pub.end}")
        time.sleep(0.5)  # a reply owed twice would show up here
        with pub.lock:
            replies, sent = list(pub.replies), pub.sent
        self.assertEqual(len(replies), sent, "every PUBLISH answered exactly once")
        ints = [r for r in replies if isinstance(r, int)]
        errs = [r for r in replies if isinstance(r, Error)]
        self.assertEqual(len(ints) + len(errs), sent, f"other replies: {replies[:5]}")
        self.assertTrue(all(r in (0, 1, 2) for r in ints), sorted(set(ints)))
        self.assertEqual(replies[-1], 2, "after the restart both pods receive again")

        # the subscriber kept its subscription on the same connection
        marker = RespConn(resp_port)
        self.addCleanup(marker.close)
        self.assertEqual(marker.call("PUBLISH", "out", "marker"), 2)
        payloads = []
        deadline = time.monotonic() + 15
        while b"marker" not in payloads and time.monotonic() < deadline:
            m = rsub.read(timeout=max(0.1, deadline - time.monotonic()))
            self.assertEqual(m[:2], [b"message", b"out"], m)
            payloads.append(m[2])
        self.assertIn(b"marker", payloads, "the RESP subscriber got nothing after the restart")
        self.assertFalse(rsub.eof)
        self.assertTrue(col.wait_payload(b"marker", 10), "the framed app got no marker")
        # every message delivered at most once, in publish order, and only ones published
        seqs = [int(p.split(b":")[1]) for p in payloads if p != b"marker"]
        self.assertEqual(seqs, sorted(set(seqs)), "duplicates or reordering on the RESP side")
        self.assertLessEqual(max(seqs, default=0), sent)
        figure("resp_outage_sidecar", sent=sent, ints=len(ints), errors=len(errs),
               delivered_resp=len(seqs), delivered_framed=len(col.payloads()),
               resub_s=t_resub - t_kill, down_s=t_up - t_kill)


class MixedDirectTest(MixedMixin, RespPeerCase):
    target = "direct"


class MixedSidecarTest(MixedMixin, RespPeerCase):
    target = "sidecar"


if __name__ == "__main__":
    unittest.main()
