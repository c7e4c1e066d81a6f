"""Fan-out shares each message's frame among the receivers (runs of consecutive frames in
shared blocks, one buffer per run; a connection whose socket is full copies what it would
otherwise hold a whole block for). What a user sees must not change: every subscriber, fast
or slow, gets every message of its channels whole and in publish order, with its own
replies (PONG) in between, whatever the sizes, and no one is disconnected while it keeps
reading within the queue limits.
"""

from __future__ import annotations

import socket
import threading
import time

from harness import IntegrationCase, proto
from harness_ext import Collector, metric, sidecar_metrics

# Small frames share blocks; 20 KiB ones get blocks of their own.
SIZES = [40, 40, 40, 1000, 40, 40, 20000, 40, 300, 40]
MESSAGES = 1500
SLOW = 3
FAST = 12


def payload(seq: int) -> bytes:
    head = b"%d:" % seq
    return head + b"x" * (SIZES[seq % len(SIZES)] - len(head))


def channel_of(seq: int) -> bytes:
    return b"fan" if seq % 3 else b"side"


class SlowReader:
    """Subscribes to both channels with a tiny receive buffer, reads in small sips with
    pauses (its socket stays full while the publisher bursts) and sends PINGs as it goes."""

    def __init__(self, port: int, name: str):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        self.sock = s
        self.dec = proto.Decoder(1 << 24)
        self.frames = []
        self.pings = 0
        s.sendall(proto.encode_hello(name.encode()) + proto.encode_sub(1, [b"fan", b"side"]))
        deadline = time.monotonic() + 10
        while not any(isinstance(f, proto.Ok) for f in self.frames):
            if time.monotonic() > deadline:
                raise AssertionError("no OK for the slow reader's SUB")
            data = s.recv(4096)
            if not data:
                raise AssertionError("slow reader closed during setup")
            self.frames += self.dec.feed(data)
        self.frames = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        deadline = time.monotonic() + 120
        n = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.frames += self.dec.feed(data)
            n += 1
            if n % 50 == 0:
                self.pings += 1
                try:
                    self.sock.sendall(proto.encode_ping(1000 + self.pings))
                except OSError:
                    return
            time.sleep(0.002)

    def msgs(self):
        return [f for f in self.frames if isinstance(f, proto.Msg)]

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class FanoutRunsTest(IntegrationCase):

    def test_fast_and_slow_subscribers_get_everything_in_order(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        b = self.start_sidecar("podB", redis, ["--max-queue-bytes", str(256 << 20),
                                               "--soft-queue-bytes", str(128 << 20)])
        fast = [Collector.connect(b.port, ["fan"], name=f"fast{i}") for i in range(FAST)]
        for c in fast:
            self.addCleanup(c.close)
        slow = [SlowReader(b.port, f"slow{i}") for i in range(SLOW)]
        for s in slow:
            self.addCleanup(s.close)
        redis.wait_numsub("podrelay:fan", 1)
        redis.wait_numsub("podrelay:side", 1)

        pub = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        self.addCleanup(pub.close)
        dec = proto.Decoder(1 << 24)
        pub.sendall(proto.encode_hello(b"pub"))
        # Bursts of 200 PUBs, both channels from one connection, so Redis keeps their order.
        oks = 0
        peak_queued = 0
        for start in range(0, MESSAGES, 200):
            pub.sendall(b"".join(proto.encode_pub(s + 1, channel_of(s), payload(s))
                                 for s in range(start, min(MESSAGES, start + 200))))
            peak_queued = max(peak_queued, metric(sidecar_metrics(b),
                                                  "podrelay_outbound_queue_bytes"))
        deadline = time.monotonic() + 30
        while oks < MESSAGES and time.monotonic() < deadline:
            for f in dec.feed(pub.recv(65536)):
                self.assertIsInstance(f, (proto.Welcome, proto.Ok), f)
                oks += isinstance(f, proto.Ok)
        self.assertEqual(oks, MESSAGES)

        want_all = [(channel_of(s), payload(s)) for s in range(MESSAGES)]
        want_fan = [p for ch, p in want_all if ch == b"fan"]
        for c in fast:
            self.assertTrue(c.wait_for(lambda c_: len(c_.msgs) >= len(want_fan), 30))
            self.assertTrue(c.payloads() == want_fan, f"{len(c.payloads())} messages, "
                            "not the published stream in order")
            self.assertIsNone(c.goaway)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(len(s.msgs()) < MESSAGES for s in slow):
            peak_queued = max(peak_queued, metric(sidecar_metrics(b),
                                                  "podrelay_outbound_queue_bytes"))
            time.sleep(0.05)
        for s in slow:
            got = [(m.channel, m.payload) for m in s.msgs()]
            self.assertEqual(len(got), MESSAGES)
            self.assertTrue(got == want_all, "a slow reader got different messages or order")
            pongs = [f.request_id for f in s.frames if isinstance(f, proto.Pong)]
            others = [f for f in s.frames if not isinstance(f, (proto.Msg, proto.Pong))]
            self.assertEqual(others, [])
            # Every PING sent before the last message was read has its PONG by now or soon.
            s.stop.set()
            s.thread.join(5)
            self.assertEqual(pongs, list(range(1001, 1001 + len(pongs))))
        m = sidecar_metrics(b)
        self.assertEqual(metric(m, "podrelay_slow_consumer_disconnects_total"), 0)
        # The slow readers' sockets really were full: the sidecar held a backlog for them.
        self.assertGreater(peak_queued, 64 * 1024)
        self.assertTrue(b.proc.alive())
