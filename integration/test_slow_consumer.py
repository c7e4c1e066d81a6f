"""Slow consumers: a subscriber that stops reading is disconnected (hard and soft limits),
counted in podrelay_slow_consumer_disconnects_total, and nobody else loses a message.

What the stalled client finds when it finally reads (PROTOCOL.md section 3, GOAWAY): the
MSG frames that were already on the wire, then GOAWAY SLOW_CONSUMER (400) and EOF; "with
the other codes it closes as soon as the GOAWAY is written". A client that never reads
cannot take the GOAWAY, so the sidecar may also close without it (EOF after the MSGs).
"""

from __future__ import annotations

import re
import socket
import time
import unittest

from harness import IntegrationCase, proto
from harness_ext import (AckedPublisher, Collector, figure, metric, read_frames_until_close,
                         sidecar_metrics)

PREFIX = "podrelay:"
PAYLOAD = 1024


def stalled_subscriber(case, port, channel):
    """A raw connection with a tiny receive buffer that subscribes and then never reads."""
    s = socket.socket()
    case.addCleanup(s.close)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(proto.encode_hello(b"stalled") + proto.encode_sub(1, [channel.encode()]))
    dec = proto.Decoder(1 << 24)
    got = []
    deadline = time.monotonic() + 10
    while not any(isinstance(f, proto.Ok) for f in got):
        case.assertLess(time.monotonic(), deadline, "no OK for the stalled SUB")
        data = s.recv(4096)
        case.assertTrue(data, "stalled client closed during setup")
        got += dec.feed(data)
    return s


class SlowConsumerCase(IntegrationCase):

    def setup_pods(self, extra):
        self.redis = self.start_redis()
        self.a = self.start_sidecar("podA", self.redis, extra)
        self.b = self.start_sidecar("podB", self.redis)
        self.stalled = stalled_subscriber(self, self.a.port, "busy")
        self.fast_a = Collector.connect(self.a.port, ["busy"], name="fastA")
        self.fast_b = Collector.connect(self.b.port, ["busy"], name="fastB")
        for c in (self.fast_a, self.fast_b):
            self.addCleanup(c.close)
        self.redis.wait_numsub(PREFIX + "busy", 2)
        self.pub = AckedPublisher.connect(self.b.port, "busy", "P", 1000, 20000, 60, name="pub")
        self.addCleanup(self.pub.close)
        self.pub.payload = lambda seq: b"P:%d:" % seq + b"x" * PAYLOAD

    def disconnect_log(self):
        lines = [l for l in self.a.proc.stderr_text().splitlines()
                 if "disconnecting slow consumer" in l]
        self.assertEqual(len(lines), 1, lines)
        queued = int(re.search(r"queued_bytes=(\d+)", lines[0]).group(1))
        return lines[0], queued

    def finish_and_check(self, t0):
        """Stop publishing, check the fast ones got everything and what the stalled one gets."""
        self.pub.stop_sending()
        self.assertEqual(self.pub.wait_answered(20), [])
        c = self.pub.counts()
        self.assertEqual(c["ok"], c["sent"], c)
        want = [self.pub.payload(s) for s in sorted(self.pub.sent)]
        for col in (self.fast_a, self.fast_b):
            col.wait_for(lambda c_: len(c_.msgs) >= len(want), 20)
            time.sleep(0.2)
            got = col.payloads()
            self.assertEqual(len(got), len(want), "a fast subscriber lost or duplicated messages")
            self.assertTrue(got == want, "a fast subscriber got different messages or order")
            self.assertIsNone(col.goaway)
            self.assertIsNone(col.end)
        frames, end, trailing = read_frames_until_close(self.stalled, 20)
        self.assertNotEqual(end, "timeout", "stalled client still connected")
        msgs = [f for f in frames if isinstance(f, proto.Msg)]
        others = [f for f in frames if not isinstance(f, proto.Msg)]
        self.assertEqual([m.payload for m in msgs], want[:len(msgs)],
                         "what the stalled client got is not a prefix of the published stream")
        self.assertLess(len(msgs), len(want))
        goaway = None
        if others:
            self.assertEqual(len(others), 1, others)
            goaway = others[0]
            self.assertIsInstance(goaway, proto.Goaway)
            self.assertEqual(goaway.code, proto.SLOW_CONSUMER)
            self.assertIs(frames[-1], goaway, "GOAWAY must be the last frame")
        m = sidecar_metrics(self.a)
        self.assertEqual(metric(m, "podrelay_slow_consumer_disconnects_total"), 1)
        self.assertTrue(self.a.proc.alive())
        return dict(published=len(want), fast_received=len(want),
                    stalled_msgs_read=len(msgs),
                    stalled_end=("GOAWAY400+" if goaway else "") + end,
                    stalled_trailing_partial_bytes=trailing)

    def wait_disconnect(self, t0, timeout, on_sample=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = sidecar_metrics(self.a)
            if on_sample:
                on_sample(m)
            if metric(m, "podrelay_slow_consumer_disconnects_total") >= 1:
                return time.monotonic()
            time.sleep(0.05)
        self.fail("stalled subscriber not disconnected")


class HardLimitTest(SlowConsumerCase):

    def test_queue_over_max_queue_bytes_disconnects(self):
        # the soft window is long here so that only the hard limit can act
        self.setup_pods(["--max-queue-bytes", "262144", "--soft-queue-bytes", "65536",
                         "--soft-queue-seconds", "30", "--max-frame-bytes", "16384"])
        t0 = time.monotonic()
        self.pub.start()
        t_disc = self.wait_disconnect(t0, 30)
        sent_at_disc = len(self.pub.sent)
        time.sleep(1.0)  # keep the channel busy after the disconnect too
        figs = self.finish_and_check(t0)
        line, queued = self.disconnect_log()
        self.assertIn("max_queue_bytes", line)
        self.assertGreater(queued, 262144)
        figure("slow_consumer.hard", disconnect_after_s=t_disc - t0,
               published_at_disconnect=sent_at_disc, queued_bytes_at_disconnect=queued,
               **figs)


class SoftLimitTest(SlowConsumerCase):

    def test_queue_above_soft_limit_for_longer_than_window_disconnects(self):
        self.setup_pods(["--max-queue-bytes", "262144", "--soft-queue-bytes", "65536",
                         "--soft-queue-seconds", "1", "--max-frame-bytes", "16384"])
        t0 = time.monotonic()
        state = {"over": None, "peak": 0, "above": 0}

        def sample(m):
            q = metric(m, "podrelay_outbound_queue_bytes")
            state["peak"] = max(state["peak"], q)
            # Three samples in a row above the soft limit (~150 ms): the kernel's send buffer
            # is full, not just taking a large write (it can grow by megabytes, and at the
            # slow rate it would then absorb everything for longer than the test waits).
            state["above"] = state["above"] + 1 if q > 65536 else 0
            if state["above"] >= 3 and state["over"] is None:
                state["over"] = time.monotonic()
                self.pub.rate = 20  # ~21 KiB/s: hard limit ~9 s away, soft window 1 s
        self.pub.rate = 500
        self.pub.start()
        t_disc = self.wait_disconnect(t0, 40, sample)
        self.assertIsNotNone(state["over"], "never saw the queue above the soft limit")
        above = t_disc - state["over"]
        time.sleep(0.5)
        figs = self.finish_and_check(t0)
        line, queued = self.disconnect_log()
        self.assertIn("soft_queue_bytes", line)
        self.assertLess(queued, 262144, "hard limit reached: the soft limit did not act")
        self.assertGreater(queued, 65536)
        self.assertGreaterEqual(above, 0.5, f"disconnected {above:.2f}s after crossing soft")
        self.assertLess(above, 4.0, f"disconnected only {above:.2f}s after crossing soft")
        figure("slow_consumer.soft", over_soft_to_disconnect_s=above,
               queued_bytes_at_disconnect=queued, peak_gauge_bytes=int(state["peak"]), **figs)


if __name__ == "__main__":
    unittest.main()
