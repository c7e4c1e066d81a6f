"""Hostile input on the RESP port (issue 11): garbage, a ``*999999999`` header, a 2 GB bulk
length, an unterminated 10 MB inline line, 3,000 connections. Each gets ``-ERR Protocol
error: ...`` and a close; the server and its other clients are unaffected and its RSS
comes back near the baseline.

``...DirectTest`` sends the same bytes to redis-server (the control, proving the test);
``...SidecarTest`` to pod 1's RESP port. Redis 7.0 accepts a ``*999999999`` header and
waits for the arguments; podrelay refuses it (its README's deviations): that one vector's
expectation depends on the target.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import unittest

from harness import wait_for
from harness_ext import ensure_nofile, figure, rss_kib
from resp_harness import RespConn, RespPeerCase

FLOOD = 3000
# podrelay: back within 12 MiB of the baseline, the bound of the framed flood test
# (test_hostile.FloodTest) for the same 3,000 connections: glibc keeps about 8 MiB of a
# burst's heap even after malloc_trim (README, known limits; measured 16.6 MiB against a
# 7.2 MiB baseline here). Redis (the control) keeps more of what its allocator freed
# (jemalloc); the control proves the harness, not Redis' allocator.
RSS_SLACK_KIB = {"sidecar": 12 * 1024, "direct": 24 * 1024}


class HostileMixin:

    def setUp(self):
        super().setUp()
        # 3,000 connections from here, and the server (Redis or the pods) inherits the limit
        ensure_nofile(FLOOD + 1024)

    def _server_pid(self) -> int:
        return (self.sidecars[0] if self.sidecar else self.redis).proc.pid

    def _exchange(self, port: int, data: bytes, timeout: float = 10.0):
        """Send ``data`` (in 64 KiB pieces, from a thread, so a close mid-send is seen) while
        reading; returns (bytes received, closed?)."""
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sent = [0]

        def writer():
            try:
                for i in range(0, len(data), 65536):
                    s.sendall(data[i:i + 65536])
                    sent[0] = i + 65536
            except OSError:
                pass
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        c = RespConn.__new__(RespConn)
        c.sock, c.timeout, c.buf, c.eof = s, timeout, b"", False
        got = c.read_until_close(timeout)
        t.join(timeout)
        s.close()
        return got, c.eof

    def _still_fine(self, port: int, sub: RespConn, pinger: RespConn, n: int) -> None:
        """The server and its other clients are unaffected: a long-lived connection still
        answers, a subscriber still gets what is published."""
        self.assertEqual(pinger.call("PING", f"p{n}"), f"p{n}".encode())
        pub = RespConn(port)
        try:
            self.assertEqual(pub.call("PUBLISH", "alive", f"m{n}"), 2)
        finally:
            pub.close()
        self.assertEqual(sub.read(), [b"message", b"alive", f"m{n}".encode()])
        if self.sidecar:
            for pod in self.sidecars:
                self.assertEqual(pod.readyz(), 200, pod.name)
                self.assertTrue(pod.proc.alive(), pod.name)
        self.assertTrue(self.redis.proc.alive())

    def test_hostile_input_error_and_close(self):
        p1, p2, _ = self.start_pods(3)
        sub = RespConn(p1)
        sub2 = RespConn(p2)
        pinger = RespConn(p1)
        for c in (sub, sub2, pinger):
            self.addCleanup(c.close)
        self.assertEqual(sub.call("SUBSCRIBE", "alive"), [b"subscribe", b"alive", 1])
        self.assertEqual(sub2.call("SUBSCRIBE", "alive"), [b"subscribe", b"alive", 1])
        self.wait_redis_numsub("alive", 2)
        self._still_fine(p1, sub, pinger, 0)
        self.assertEqual(sub2.read(), [b"message", b"alive", b"m0"])
        time.sleep(0.5)
        baseline = rss_kib(self._server_pid())

        vectors = [
            ("garbage", b"*1\r\nxyz\r\n\x00\xff\xfe garbage", b"expected '$', got 'x'"),
            ("bad count", b"*abc\r\n", b"invalid multibulk length"),
            ("unbalanced quotes", b'SUBSCRIBE "abc\r\n', b"unbalanced quotes in request"),
            ("2 GB bulk", b"*1\r\n$2147483648\r\n", b"invalid bulk length"),
            ("10 MB inline", b"A" * (10 << 20), b"too big inline request"),
        ]
        if self.sidecar:
            vectors.append(("*999999999", b"*999999999\r\n", b"invalid multibulk length"))
        for n, (name, data, text) in enumerate(vectors, 1):
            got, closed = self._exchange(p1, data)
            self.assertEqual(got, b"-ERR Protocol error: " + text + b"\r\n", name)
            self.assertTrue(closed, f"{name}: connection not closed after the error")
            self._still_fine(p1, sub, pinger, n)
            self.assertEqual(sub2.read(), [b"message", b"alive", f"m{n}".encode()])
        if not self.sidecar:
            # Redis 7.0 takes the header and waits for 999,999,999 arguments (no reply)
            c = RespConn(p1, timeout=1.0)
            self.addCleanup(c.close)
            c.sock.sendall(b"*999999999\r\n")
            self.assertEqual(c.read_until_close(0.5), b"")
            self.assertFalse(c.eof)

        # 3,000 connections at once, then hostile bytes on each: an error and a close each
        t0 = time.monotonic()
        socks = []
        try:
            for _ in range(FLOOD):
                socks.append(socket.create_connection(("127.0.0.1", p1), timeout=10))
            t_open = time.monotonic() - t0
            peak = rss_kib(self._server_pid())
            for s in socks:
                s.sendall(b"*1\r\n$2147483648\r\n")
            errors = closes = 0
            deadline = time.monotonic() + 60
            for s in socks:
                c = RespConn.__new__(RespConn)
                c.sock, c.timeout, c.buf, c.eof = s, 10.0, b"", False
                got = c.read_until_close(max(0.1, deadline - time.monotonic()))
                errors += got == b"-ERR Protocol error: invalid bulk length\r\n"
                closes += c.eof
        finally:
            for s in socks:
                s.close()
        t_flood = time.monotonic() - t0
        self.assertEqual((errors, closes), (FLOOD, FLOOD),
                         "every flood connection: one error, then a close")
        self._still_fine(p1, sub, pinger, 99)
        self.assertEqual(sub2.read(), [b"message", b"alive", b"m99"])

        last = [0]

        def rss_back():
            last[0] = rss_kib(self._server_pid())
            return last[0] <= baseline + RSS_SLACK_KIB[self.target]
        figure(f"resp_hostile_{self.target}", rss_baseline_kib=baseline, rss_flood_kib=peak,
               flood_open_s=t_open, flood_total_s=t_flood)
        if os.environ.get("PODRELAY_SANITIZED") == "1":
            print("    RSS check skipped: sanitized build (PODRELAY_SANITIZED=1)")
            return
        try:
            wait_for(rss_back, 15, interval=0.25, what="RSS back near the baseline")
        except AssertionError as e:
            raise AssertionError(f"{e}: {last[0]} KiB vs baseline {baseline} KiB "
                                 f"(+{RSS_SLACK_KIB[self.target]} KiB allowed)") from None
        figure(f"resp_hostile_{self.target}_after", rss_after_kib=last[0])


class HostileDirectTest(HostileMixin, RespPeerCase):
    target = "direct"


class HostileSidecarTest(HostileMixin, RespPeerCase):
    target = "sidecar"


if __name__ == "__main__":
    unittest.main()
