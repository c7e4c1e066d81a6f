"""End-to-end tests: real redis-server, real podrelay daemons, real podrelay-cli.

Run: python3 -m unittest discover -s integration -p 'test_*.py' -v   (or integration/run.sh)
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
import unittest

from harness import (PODRELAY_BIN, PODRELAY_CLI_BIN, REDIS_CLI, Client, ConnectionClosed,
                     READY_TIMEOUT, IntegrationCase, Proc, Redis, ServerError, free_port,
                     http_get, proto, wait_for)

PREFIX = "podrelay:"


def msg_tuple(m):
    return (m.channel, m.pattern, m.payload)


class ThreePods(IntegrationCase):
    """One Redis, three sidecars A, B, C (three pods of a Deployment)."""

    def setUp(self):
        super().setUp()
        self.redis = self.start_redis()
        self.a = self.start_sidecar("podA", self.redis)
        self.b = self.start_sidecar("podB", self.redis)
        self.c = self.start_sidecar("podC", self.redis)


class RelayTest(ThreePods):

    def test_publish_on_a_reaches_a_b_c_exactly_once(self):
        subs = {name: pod.client() for name, pod in
                (("A", self.a), ("B", self.b), ("C", self.c))}
        for c in subs.values():
            c.subscribe("fanout")
        # OK comes only after Redis confirmed the SUBSCRIBE: no polling needed
        self.assertEqual(self.redis.numsub(PREFIX + "fanout"), 3)
        pub = self.a.client()
        pub.publish("fanout", b"hello pods")
        for name, c in subs.items():
            with self.subTest(pod=name):
                [m] = self.expect_msgs(c, 1)
                self.assertEqual(msg_tuple(m), (b"fanout", b"", b"hello pods"))
        for name, c in subs.items():
            with self.subTest(pod=name, check="no duplicate"):
                self.expect_no_msg(c, grace=0.4)

    def test_publisher_subscribed_to_own_channel_gets_own_message(self):
        c = self.a.client()
        c.subscribe("self")
        c.publish("self", b"mine")
        [m] = self.expect_msgs(c, 1)
        self.assertEqual(msg_tuple(m), (b"self", b"", b"mine"))
        self.expect_no_msg(c, grace=0.3)

    def test_pattern_subscriptions(self):
        b = self.b.client()
        b.psubscribe("news.*", "h?llo", "[a-c]x")
        c = self.c.client()
        c.subscribe("hello")
        c.psubscribe("h?llo")
        self.assertEqual(self.redis.numpat(), 3)  # "h?llo" once per pod, shared
        pub = self.a.client()
        for ch in ("news.sport", "hello", "hallo", "hllo", "bx", "cx", "dx", "news", "ax"):
            pub.publish(ch, b"p-" + ch.encode())
        want_b = sorted([
            (b"news.sport", b"news.*", b"p-news.sport"),
            (b"hello", b"h?llo", b"p-hello"),
            (b"hallo", b"h?llo", b"p-hallo"),
            (b"bx", b"[a-c]x", b"p-bx"),
            (b"cx", b"[a-c]x", b"p-cx"),
            (b"ax", b"[a-c]x", b"p-ax"),
        ])
        got_b = sorted(msg_tuple(m) for m in self.expect_msgs(b, len(want_b)))
        self.assertEqual(got_b, want_b)
        self.expect_no_msg(b, grace=0.4)
        # a channel and a matching pattern subscription: once per subscription
        want_c = sorted([
            (b"hello", b"", b"p-hello"),
            (b"hello", b"h?llo", b"p-hello"),
            (b"hallo", b"h?llo", b"p-hallo"),
        ])
        got_c = sorted(msg_tuple(m) for m in self.expect_msgs(c, len(want_c)))
        self.assertEqual(got_c, want_c)
        self.expect_no_msg(c, grace=0.2)

    def test_unsubscribe_stops_delivery_and_releases_redis_subscription(self):
        chan = PREFIX + "chan"
        a1 = self.a.client()
        b1, b2 = self.b.client(), self.b.client()
        for c in (a1, b1, b2):
            c.subscribe("chan", "other")
        self.assertEqual(self.redis.numsub(chan), 2)  # one per pod, not per connection
        pub = self.c.client()

        b1.unsubscribe("chan")  # b2 still holds B's subscription
        self.assertEqual(self.redis.numsub(chan), 2)
        pub.publish("chan", b"one")
        self.assertEqual(msg_tuple(self.expect_msgs(b2, 1)[0]), (b"chan", b"", b"one"))
        self.assertEqual(msg_tuple(self.expect_msgs(a1, 1)[0]), (b"chan", b"", b"one"))
        self.expect_no_msg(b1, grace=0.3)

        b2.unsubscribe()  # empty list: all of b2's channels
        self.redis.wait_numsub(chan, 1, timeout=5)
        self.assertEqual(self.redis.numsub(PREFIX + "other"), 2)  # b1 still has "other"
        pub.publish("chan", b"two")
        self.assertEqual(msg_tuple(self.expect_msgs(a1, 1)[0]), (b"chan", b"", b"two"))
        self.expect_no_msg(b2, grace=0.3)
        self.expect_no_msg(b1, grace=0.0)

        a1.close()  # closing the connection removes its subscriptions
        self.redis.wait_numsub(chan, 0, timeout=5)
        b1.unsubscribe("other")
        self.redis.wait_numsub(PREFIX + "other", 0, timeout=5)

        # patterns: the Redis PSUBSCRIBE goes away with the last local pattern subscriber
        p1, p2 = self.b.client(), self.b.client()
        p1.psubscribe("pat.*")
        p2.psubscribe("pat.*")
        self.assertEqual(self.redis.numpat(), 1)
        p1.punsubscribe("pat.*")
        self.assertEqual(self.redis.numpat(), 1)
        pub.publish("pat.x", b"p")
        self.assertEqual(msg_tuple(self.expect_msgs(p2, 1)[0]), (b"pat.x", b"pat.*", b"p"))
        self.expect_no_msg(p1, grace=0.3)
        p2.punsubscribe()
        self.redis.wait_numpat(0, timeout=5)
        pub.publish("pat.x", b"q")
        self.expect_no_msg(p2, grace=0.3)
        # the connections are still usable
        p1.ping()
        p2.ping()

    def test_hundred_local_subscribers_share_one_redis_subscription(self):
        chan = PREFIX + "many"
        many = [self.a.client() for _ in range(100)]
        for c in many:
            c.subscribe("many")
        self.assertEqual(self.redis.numsub(chan), 1)
        few = [self.b.client() for _ in range(3)]
        for c in few:
            c.subscribe("many")
        self.assertEqual(self.redis.numsub(chan), 2)
        self.c.client().publish("many", b"to all")
        for i, c in enumerate(many + few):
            m = c.recv_msg(timeout=10)
            self.assertIsNotNone(m, f"subscriber {i} got nothing")
            self.assertEqual(msg_tuple(m), (b"many", b"", b"to all"), f"subscriber {i}")
        time.sleep(0.3)
        for i, c in enumerate(many + few):
            self.assertIsNone(c.recv_msg(timeout=0), f"subscriber {i} got a duplicate")

    def test_redis_cli_publish_reaches_app_and_app_publish_reaches_redis_cli(self):
        app = self.a.client()
        app.subscribe("C")
        out = self.redis.cli("PUBLISH", PREFIX + "C", "hi").strip()
        self.assertEqual(out, "1", "one Redis subscriber (pod A) expected")
        self.assertEqual(msg_tuple(self.expect_msgs(app, 1)[0]), (b"C", b"", b"hi"))
        # channels outside the prefix never reach apps, not even an app's "*" pattern
        app.psubscribe("*")
        self.assertEqual(self.redis.cli("PUBLISH", "C", "unprefixed").strip(), "0")
        self.redis.cli("PUBLISH", "other:C", "foreign")
        self.expect_no_msg(app, grace=0.3)
        app.punsubscribe()

        lines: "queue.Queue[bytes]" = queue.Queue()
        cli = subprocess.Popen([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.redis.port),
                                "SUBSCRIBE", PREFIX + "C"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (cli.kill(), cli.wait(5), cli.stdout.close()))

        def reader():
            for line in cli.stdout:
                lines.put(line.rstrip(b"\n"))
        threading.Thread(target=reader, daemon=True).start()

        def next_line(timeout=10.0):
            try:
                return lines.get(timeout=timeout)
            except queue.Empty:
                self.fail("redis-cli SUBSCRIBE printed nothing in time")
        self.assertEqual([next_line() for _ in range(3)], [b"subscribe", b"podrelay:C", b"1"])
        self.b.client().publish("C", b"from-app")
        self.assertEqual([next_line() for _ in range(3)],
                         [b"message", b"podrelay:C", b"from-app"])

    def test_ten_thousand_messages_complete_and_in_order_everywhere(self):
        n = 10000
        subs = [pod.client() for pod in (self.a, self.b, self.c)]
        for c in subs:
            c.subscribe("seq")
        pub = self.a.client()
        payloads = [b"m%05d" % i for i in range(n)]
        pub.publish_many("seq", payloads)
        pub.publish("seq", b"end")  # acked: everything before it was written
        for name, c in zip("ABC", subs):
            got = [m.payload for m in self.expect_msgs(c, n + 1, timeout=60)]
            self.assertEqual(got[-1], b"end", f"pod {name}")
            if got[:-1] != payloads:
                first = next(i for i, (x, y) in enumerate(zip(got, payloads)) if x != y)
                self.fail(f"pod {name}: order/content differs first at index {first}: "
                          f"got {got[first]!r}, want {payloads[first]!r}")
        for c in subs:
            self.expect_no_msg(c, grace=0.2)

    def test_small_and_large_messages_and_replies_keep_their_order(self):
        # The sidecar copies a small MSG frame into the connection's own buffer (where its
        # replies are) and queues a large one as a shared buffer: sizes on both sides of
        # that line, several local receivers, and PINGs answered in between must still
        # reach each app whole and in publish order.
        sizes = [0, 1, 100, 400, 450, 480, 490, 500, 510, 520, 600, 1000, 4000, 70000]
        payloads = [bytes([i % 251]) * sizes[(i * 7) % len(sizes)] + b"#%05d" % i
                    for i in range(3000)]
        subs = [self.b.client() for _ in range(3)]
        for c in subs:
            c.subscribe("mix")
        pub = self.a.client()
        pings = 50
        half = len(payloads) // 2
        pub.publish_many("mix", payloads[:half])
        for c in subs:  # requests on the receivers' own connections, mid-stream
            c.send_raw(b"".join(proto.encode_ping(1000 + k) for k in range(pings)))
        pub.publish_many("mix", payloads[half:])
        pub.publish("mix", b"end")
        for k, c in enumerate(subs):
            got, pongs = [], []
            deadline = time.monotonic() + 60
            while (len(got) < len(payloads) + 1 or len(pongs) < pings) \
                    and time.monotonic() < deadline:
                f = c.recv_frame(timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(f, proto.Msg):
                    got.append(f.payload)
                elif isinstance(f, proto.Pong):
                    pongs.append(f.request_id)
            self.assertEqual(pongs, list(range(1000, 1000 + pings)), f"receiver {k}")
            self.assertEqual(len(got), len(payloads) + 1, f"receiver {k}")
            if got[:-1] != payloads:
                first = next(i for i, (x, y) in enumerate(zip(got, payloads)) if x != y)
                self.fail(f"receiver {k}: differs first at index {first} "
                          f"({len(got[first])} vs {len(payloads[first])} bytes)")
            self.assertEqual(got[-1], b"end")

    def test_binary_channel_and_payload_round_trip(self):
        channel = bytes(range(256))
        payload = bytes(range(256)) * 4 + b"\x00\xff\r\n"
        sub = self.b.client()
        sub.subscribe(channel)
        # byte for byte on Redis too: a raw RESP subscriber on prefix+channel
        raw = RawRedisSubscriber(self.redis.port, PREFIX.encode() + channel)
        self.addCleanup(raw.close)
        self.a.client().publish(channel, payload)
        [m] = self.expect_msgs(sub, 1)
        self.assertEqual(m.channel, channel)
        self.assertEqual(m.pattern, b"")
        self.assertEqual(m.payload, payload)
        self.assertEqual(raw.next_message(timeout=10), (PREFIX.encode() + channel, payload))
        # empty payload too
        self.a.client().publish(channel, b"")
        self.assertEqual(msg_tuple(self.expect_msgs(sub, 1)[0]), (channel, b"", b""))

    def test_publish_ack_and_fire_and_forget(self):
        c = self.a.client()
        c.send_raw(proto.encode_pub(4242, "ack", b"x"))
        f = c.recv_frame(timeout=10)
        self.assertEqual(f, proto.Ok(4242))
        # request id 0: no reply at all; the next frame must be the PONG
        c.send_raw(proto.encode_pub(0, "ack", b"y") + proto.encode_ping(7))
        f = c.recv_frame(timeout=10)
        self.assertEqual(f, proto.Pong(7))
        self.assertIsNone(c.recv_frame(timeout=0.4))

    def test_welcome_and_ping(self):
        c = self.a.client()
        w = c.welcome
        self.assertEqual(w.version, 1)
        self.assertGreater(w.max_frame_bytes, 0)
        self.assertGreater(w.max_queue_bytes, 0)
        self.assertTrue(w.node_id)
        other = self.b.client().welcome.node_id
        self.assertNotEqual(w.node_id, other, "node_id must be unique per sidecar process")
        c.send_raw(proto.encode_ping(0xFFFFFFFF))
        self.assertEqual(c.recv_frame(timeout=5), proto.Pong(0xFFFFFFFF))


class RawRedisSubscriber:
    """Minimal RESP2 subscriber (binary channel names cannot go through argv)."""

    def __init__(self, port: int, channel: bytes):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        cmd = b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel)
        self.sock.sendall(cmd)
        reply = self._reply()
        assert reply[0] == b"subscribe" and reply[1] == channel, reply

    def close(self):
        self.sock.close()

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionClosed("redis closed")
            self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._need(len(self.buf) + 1)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"*":
            return [self._reply() for _ in range(int(rest))]
        if t == b"$":
            n = int(rest)
            self._need(n + 2)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b":":
            return int(rest)
        return line

    def next_message(self, timeout):
        self.sock.settimeout(timeout)
        r = self._reply()
        assert r[0] == b"message", r
        return (r[1], r[2])


class RedisRestartTest(IntegrationCase):

    def test_redis_killed_and_restarted(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        b = self.start_sidecar("podB", redis)
        sa, sb = a.client(), b.client()
        sa.subscribe("r")
        sb.subscribe("r")
        sb.psubscribe("r*")
        self.assertEqual(redis.numsub(PREFIX + "r"), 2)
        pub = a.client()
        pub.publish("r", b"before")
        self.expect_msgs(sa, 1)
        self.expect_msgs(sb, 2)

        redis.kill()  # SIGKILL
        a.wait_readyz(503, timeout=10)
        b.wait_readyz(503, timeout=10)
        status, body = a.get("/readyz")
        self.assertEqual(status, 503)
        self.assertEqual(len(body.strip().splitlines()), 1, f"one-line reason: {body!r}")
        a.client().ping()  # PING never waits for Redis
        # a publish while Redis is away is buffered, then acked (or nacked with a 3xx)
        rid = pub.next_request_id()
        pub.send_raw(proto.encode_pub(rid, "during", b"outage"))

        redis.start()  # same port
        a.wait_ready(timeout=20)
        b.wait_ready(timeout=20)
        redis.wait_numsub(PREFIX + "r", 2, timeout=10)
        redis.wait_numpat(1, timeout=10)
        try:
            pub._wait_reply(rid, timeout=20)
        except ServerError as e:
            self.assertEqual(e.code // 100, 3, f"publish during outage: {e}")

        pub.publish("r", b"after")
        self.assertEqual(msg_tuple(self.expect_msgs(sa, 1)[0]), (b"r", b"", b"after"))
        got = sorted(msg_tuple(m) for m in self.expect_msgs(sb, 2))
        self.assertEqual(got, [(b"r", b"", b"after"), (b"r", b"r*", b"after")])
        self.expect_no_msg(sa, grace=0.3)


    def test_every_acked_publish_answered_exactly_once_across_redis_kill(self):
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--publish-buffer-timeout", "5"])
        c = pod.client()
        n, batch = 20000, 250
        sender = c.sock.dup()  # own timeout; the main thread reads on c
        self.addCleanup(sender.close)
        sender.settimeout(30)
        errors = []

        def send_all():
            try:
                for start in range(1, n + 1, batch):
                    sender.sendall(b"".join(proto.encode_pub(i, "acc", b"p%d" % i)
                                            for i in range(start, min(start + batch, n + 1))))
                    time.sleep(0.002)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        t = threading.Thread(target=send_all, daemon=True)
        t.start()
        replies = {}

        def read_for(seconds):
            end = time.monotonic() + seconds
            while len(replies) < n:
                f = c.recv_frame(timeout=max(0.0, end - time.monotonic()))
                if f is None:
                    return
                self.assertIsInstance(f, (proto.Ok, proto.Err), f)
                replies.setdefault(f.request_id, []).append(f)
        read_for(0.1)
        redis.kill()  # mid-stream
        read_for(0.5)
        redis.start()
        read_for(40)
        t.join(timeout=30)
        self.assertEqual(errors, [])
        missing = [i for i in range(1, n + 1) if i not in replies]
        self.assertEqual(missing[:20], [], f"{len(missing)} publishes never answered")
        dups = {i: v for i, v in replies.items() if len(v) > 1}
        self.assertEqual(dups, {}, "answered more than once")
        bad = {i: v[0] for i, v in replies.items()
               if isinstance(v[0], proto.Err) and v[0].code // 100 != 3}
        self.assertEqual(bad, {}, "nacks must be 3xx")
        self.assertTrue(pod.proc.alive())


class BadInputTest(IntegrationCase):
    """Malformed input gets ERR with the right code and a close; nobody else suffers."""

    def setUp(self):
        super().setUp()
        self.redis = self.start_redis()
        self.pod = self.start_sidecar("pod", self.redis)
        self.watch = self.pod.client()
        self.watch.subscribe("alive")
        self.seq = 0

    def assert_others_fine(self):
        self.assertTrue(self.pod.proc.alive(), "daemon died")
        self.seq += 1
        payload = b"still-%d" % self.seq
        self.pod.client().publish("alive", payload)
        [m] = self.expect_msgs(self.watch, 1)
        self.assertEqual(msg_tuple(m), (b"alive", b"", payload))

    def assert_rejected(self, data: bytes, code: int, hello: bool = True, what: str = ""):
        c = self.pod.client(hello=False)
        if hello:
            c.hello(b"bad-client")
        c.send_raw(data)
        frames = c.read_until_closed(timeout=5)
        self.assertEqual(len(frames), 1, f"{what}: want exactly one ERR then close, got {frames}")
        f = frames[0]
        self.assertIsInstance(f, proto.Err, f"{what}: got {f}")
        self.assertEqual((f.code, f.request_id), (code, 0),
                         f"{what}: got ERR {f.code} {f.message!r}")

    def test_garbage_bytes(self):
        cases = [
            ("length 0", b"\x00\x00\x00\x00", proto.MALFORMED_FRAME),
            ("PING body too short", b"\x00\x00\x00\x03\x07\xff\xff", proto.MALFORMED_FRAME),
            ("PING trailing bytes", proto.encode_frame_raw(proto.PING, b"\x00\x00\x00\x01zz"),
             proto.MALFORMED_FRAME),
            ("SUB list count above items",
             proto.encode_frame_raw(proto.SUB, b"\x00\x00\x00\x01\x00\x03\x00\x01a"),
             proto.MALFORMED_FRAME),
            ("PUB shorter than request id", proto.encode_frame_raw(proto.PUB, b"\x00\x01"),
             proto.MALFORMED_FRAME),
        ]
        for what, data, code in cases:
            with self.subTest(what):
                self.assert_rejected(data, code, what=what)
                self.assert_others_fine()
        with self.subTest("HTTP request as first bytes"):
            # "GET " read as a length is far above the limit
            self.assert_rejected(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", proto.FRAME_TOO_LARGE,
                                 hello=False, what="http")
            self.assert_others_fine()

    def test_oversized_length(self):
        limit = self.watch.welcome.max_frame_bytes
        # only the length, the type and two bytes: the sidecar must not wait for the body
        self.assert_rejected(struct.pack(">I", limit + 1) + b"\x02\x00\x00",
                             proto.FRAME_TOO_LARGE, what="limit+1")
        self.assert_others_fine()
        self.assert_rejected(b"\xff\xff\xff\xff", proto.FRAME_TOO_LARGE, what="4 GiB")
        self.assert_others_fine()

    def test_frame_of_exactly_max_length_is_accepted(self):
        limit = self.watch.welcome.max_frame_bytes
        body_fixed = 4 + 2 + len(b"alive")
        payload = b"z" * (limit - 1 - body_fixed)
        c = self.pod.client()
        c.publish("alive", payload, timeout=15)
        [m] = self.expect_msgs(self.watch, 1, timeout=15)
        self.assertEqual(m.payload, payload)

    def test_unknown_frame_type(self):
        for t in (0x00, 0x08, 0x09, 0x7F, 0x80, 0x87, 0xFF):
            with self.subTest(type=hex(t)):
                self.assert_rejected(proto.encode_frame_raw(t, b"\x00\x00\x00\x01"),
                                     proto.UNKNOWN_TYPE, what=f"type {t:#x}")
                self.assert_others_fine()
        with self.subTest("sidecar-to-client type"):
            self.assert_rejected(proto.encode_ok(1), proto.UNEXPECTED_FRAME, what="OK from client")
            self.assert_others_fine()

    def test_handshake_errors(self):
        with self.subTest("first frame not HELLO"):
            self.assert_rejected(proto.encode_ping(1), proto.HANDSHAKE_REQUIRED, hello=False,
                                 what="PING first")
        with self.subTest("version 4"):
            self.assert_rejected(proto.encode_hello(b"x", b"", version=4),
                                 proto.UNSUPPORTED_VERSION, hello=False, what="v4")
        with self.subTest("second HELLO"):
            self.assert_rejected(proto.encode_hello(b"again"), proto.UNEXPECTED_FRAME,
                                 what="2nd HELLO")
        self.assert_others_fine()

    def test_invalid_arguments_keep_the_connection(self):
        c = self.pod.client()
        for what, data, rid in (("empty SUB", proto.encode_sub(11, []), 11),
                                ("empty PSUB", proto.encode_psub(12, []), 12),
                                ("empty pattern", proto.encode_psub(13, [b""]), 13)):
            with self.subTest(what):
                c.send_raw(data)
                f = c.recv_frame(timeout=5)
                self.assertEqual((type(f), getattr(f, "request_id", None),
                                  getattr(f, "code", None)),
                                 (proto.Err, rid, proto.INVALID_ARGUMENT), f"{what}: {f}")
        c.ping()
        self.assert_others_fine()

    def test_frames_pipelined_right_after_hello(self):
        c = self.pod.client(hello=False)
        c.send_raw(proto.encode_hello(b"eager") + proto.encode_sub(1, ["eager"]) +
                   proto.encode_ping(2))
        self.assertIsInstance(c.recv_frame(timeout=5), proto.Welcome)
        got = [c.recv_frame(timeout=10), c.recv_frame(timeout=10)]
        self.assertIn(proto.Ok(1), got)
        self.assertIn(proto.Pong(2), got)
        self.pod.client().publish("eager", b"e")
        self.assertEqual(msg_tuple(self.expect_msgs(c, 1)[0]), (b"eager", b"", b"e"))


class StartupTest(IntegrationCase):

    def test_sidecar_started_before_redis(self):
        redis = Redis(self)  # port reserved, not started
        pod = self.start_sidecar("pod", redis, wait_ready=False)
        c = pod.client()
        c.ping(timeout=5)
        self.assertEqual(pod.readyz(), 503)
        c.send_raw(proto.encode_sub(77, ["late"]))
        # OK waits for Redis to confirm
        self.assertIsNone(c.recv_frame(timeout=0.5), "SUB acknowledged before Redis exists")
        self.assertEqual(pod.readyz(), 503)
        redis.start()
        pod.wait_ready(timeout=20)
        self.assertEqual(c._wait_reply(77, timeout=15), proto.Ok(77))
        self.assertEqual(redis.numsub(PREFIX + "late"), 1)
        pod.client().publish("late", b"finally")
        self.assertEqual(msg_tuple(self.expect_msgs(c, 1)[0]), (b"late", b"", b"finally"))


class CliTest(IntegrationCase):

    def setUp(self):
        super().setUp()
        if not os.access(PODRELAY_CLI_BIN, os.X_OK):
            self.fail(f"podrelay-cli not found: {PODRELAY_CLI_BIN}")
        self.redis = self.start_redis()
        self.a = self.start_sidecar("podA", self.redis)
        self.b = self.start_sidecar("podB", self.redis)

    def start_cli(self, name, *args):
        return self.track(Proc(name, [PODRELAY_CLI_BIN, *args], self.tmpdir))

    def test_cli_sub_prints_two_published_messages(self):
        sub = self.start_cli("cli-sub", "-c", self.a.addr, "sub", "CH", "-n", "2",
                             "--timeout", "10")
        self.redis.wait_numsub(PREFIX + "CH", 1, timeout=10)
        for word in ("hello", "world"):
            r = self.run_cli("-c", self.b.addr, "pub", "CH", word)
            self.assertEqual(r.returncode, 0, r.stderr)
        rc = sub.wait(timeout=15)
        self.assertEqual(rc, 0, sub.stderr_text())
        self.assertEqual(sub.stdout_text(), "hello\nworld\n")

    def test_cli_psub(self):
        sub = self.start_cli("cli-psub", "-c", self.a.addr, "psub", "ev.*", "-n", "1",
                             "--timeout", "10")
        self.redis.wait_numpat(1, timeout=10)
        r = self.run_cli("-c", self.b.addr, "pub", "ev.x", "p1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sub.wait(timeout=15), 0, sub.stderr_text())
        self.assertEqual(sub.stdout_text(), "p1\n")

    def test_cli_pub_reads_stdin_lines(self):
        app = self.a.client()
        app.subscribe("lines")
        r = self.run_cli("-c", self.b.addr, "pub", "lines", input=b"one\ntwo\nthree\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [m.payload for m in self.expect_msgs(app, 3)]
        self.assertEqual(got, [b"one", b"two", b"three"])
        self.expect_no_msg(app, grace=0.3)

    def test_cli_ping(self):
        r = self.run_cli("-c", self.a.addr, "ping")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_cli_pub_waits_for_the_answer_after_goaway(self):
        """Redis down, SIGTERM: the sidecar sends GOAWAY at once but still owes the publish
        its answer (PROTOCOL.md, GOAWAY). `pub` must wait for it, not exit 1 on GOAWAY."""
        c = self.start_sidecar("podC", self.redis, ["--drain-timeout", "8"])
        self.redis.kill()
        wait_for(lambda: c.readyz() == 503, 10, what="podC not ready without Redis")
        pub = self.start_cli("cli-pub-drain", "-c", c.addr, "pub", "drain", "held")
        time.sleep(0.5)  # the sidecar has read the publish and holds it for Redis
        self.assertTrue(pub.alive(), "pub returned before Redis was back")
        c.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # GOAWAY is out; the publish is still held
        self.assertTrue(pub.alive(), pub.stderr_text())
        self.redis.start()
        self.assertEqual(pub.wait(timeout=15), 0, pub.stderr_text())
        self.assertEqual(c.proc.wait(timeout=15), 0)
        self.assertIn("calls=1,", self.redis.cli("INFO", "commandstats").split(
            "cmdstat_publish:")[1].splitlines()[0])

    def test_cli_usage_errors(self):
        for args in ((), ("bogus-command",), ("-c", "nonsense", "ping"), ("sub",)):
            with self.subTest(args=args):
                r = self.run_cli(*args, timeout=10)
                self.assertNotEqual(r.returncode, 0)
                lines = [l for l in r.stderr.decode(errors="replace").splitlines() if l.strip()]
                self.assertGreaterEqual(len(lines), 1, "should say what is wrong on stderr")

    def test_cli_closed_port(self):
        port = free_port()  # nothing listens there
        for args in (("ping",), ("pub", "x", "y"), ("sub", "x", "-n", "1", "--timeout", "2")):
            with self.subTest(args=args):
                r = self.run_cli("-c", f"127.0.0.1:{port}", *args, timeout=10)
                self.assertNotEqual(r.returncode, 0)
                lines = [l for l in r.stderr.decode(errors="replace").splitlines() if l.strip()]
                self.assertEqual(len(lines), 1, f"want one stderr line, got {lines}")


class DaemonProcessTest(IntegrationCase):

    def podrelay(self, *args, timeout=10.0):
        return self.run_cli(*args, timeout=timeout, binary=PODRELAY_BIN)

    def base_args(self, *, without=None):
        """Valid values of the required flags, but for ``without`` (the flag under test: a
        second value would be refused as a duplicate, not for what it says)."""
        args = {"--listen": f"127.0.0.1:{free_port()}",
                "--redis": f"redis://127.0.0.1:{free_port()}",
                "--admin-listen": f"127.0.0.1:{free_port()}"}
        return [x for flag, value in args.items() if flag != without for x in (flag, value)]

    def test_bad_flags(self):
        cases = [
            ("--redis", "foo://x", ("unknown scheme 'foo'",)),
            ("--redis", "redis://:hunter2@host name:1", ("'host name'",)),
            ("--listen", "nonsense", ("nonsense",)),
            ("--max-frame-bytes", "-1", ("max-frame-bytes", "-1")),
            ("--no-such-flag", None, ("no-such-flag",)),
        ]
        for flag, value, mentions in cases:
            with self.subTest(flag=flag, value=value):
                args = self.base_args(without=flag) + [flag] + ([value] if value is not None
                                                                else [])
                r = self.podrelay(*args)
                err = r.stderr.decode(errors="replace")
                lines = [l for l in err.splitlines() if l.strip()]
                self.assertNotEqual(r.returncode, 0, err)
                self.assertEqual(r.returncode, 2, err)
                self.assertEqual(len(lines), 1, f"want one stderr line, got {lines}")
                self.assertTrue(lines[0].startswith("podrelay: "), lines[0])
                self.assertTrue(any(m in lines[0] for m in mentions),
                                f"{lines[0]!r} should mention one of {mentions}")
                self.assertNotIn("hunter2", err, "the password must not be echoed")

    def test_listen_address_in_use(self):
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        redis = self.start_redis()
        r = self.podrelay("--listen", f"127.0.0.1:{port}", "--redis", redis.url,
                          "--admin-listen", f"127.0.0.1:{free_port()}")
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip(), "should say why on stderr")

    def test_version_and_help(self):
        r = self.podrelay("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip())
        r = self.podrelay("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"--listen", r.stdout)

    def test_json_log_format(self):
        import json
        redis = self.start_redis()
        pod = self.start_sidecar("jsonpod", redis, ["--log-format", "json"])
        c = pod.client()
        c.subscribe("j")
        c.publish("j", b"x")
        self.expect_msgs(c, 1)
        c.close()
        self.assertEqual(pod.stop(), 0)
        lines = [l for l in pod.proc.stderr_text().splitlines()
                 if l.strip() and not l.startswith("=== start:")]
        self.assertTrue(lines, "no log lines")
        for l in lines:
            try:
                obj = json.loads(l)
            except ValueError:
                self.fail(f"not a JSON line: {l!r}")
            self.assertIsInstance(obj, dict, l)

    def test_sighup_drains_and_sigusr_is_ignored(self):
        # Found by a hostile-input check: SIGHUP/SIGUSR1/SIGUSR2 ended the process at once,
        # and the answers owed to acked publishes were never sent.
        redis = self.start_redis()
        pod = self.start_sidecar("hup", redis)
        c = pod.client()
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            pod.proc.send_signal(sig)
        time.sleep(0.3)
        self.assertTrue(pod.proc.alive(), "SIGUSR1/SIGUSR2 must not end the sidecar")
        c.publish("hup", b"still up")
        self.assertEqual(pod.stop(signal.SIGHUP), 0, "SIGHUP drains and exits 0")
        self.assertIn("signal received; draining", pod.proc.stderr_text())

    def test_port_zero_logs_the_ports_the_kernel_chose(self):
        """--listen/--resp-listen/--admin-listen with port 0: the startup line names the
        bound ports (not ':0'), and they are the ones that answer."""
        import json
        redis = self.start_redis()
        proc = self.track(Proc("zeropod", [
            PODRELAY_BIN, "--redis", redis.url, "--log-format", "json",
            "--listen", "127.0.0.1:0", "--resp-listen", "127.0.0.1:0",
            "--admin-listen", "127.0.0.1:0"], self.tmpdir))

        def started():
            self.assertTrue(proc.alive(), proc.stderr_text())
            for line in proc.stderr_text().splitlines():
                if '"podrelay started"' in line:
                    return json.loads(line)
            return None
        line = wait_for(started, 10, what="the startup log line")
        ports = {}
        for key in ("listen", "resp_listen", "admin"):
            host, _, port = line[key].rpartition(":")
            self.assertEqual(host, "127.0.0.1", line)
            self.assertNotEqual(port, "0", f"{key} logged as port 0: {line}")
            ports[key] = int(port)
        wait_for(lambda: http_get(ports["admin"], "/readyz")[0] == 200, READY_TIMEOUT,
                 what="/readyz on the logged admin port")
        c = self.track_client(Client(f"127.0.0.1:{ports['listen']}"))
        c.subscribe("zero")
        r = subprocess.run([REDIS_CLI, "-p", str(ports["resp_listen"]),
                            "PUBLISH", PREFIX + "zero", "hi"], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(msg_tuple(self.expect_msgs(c, 1)[0]), (b"zero", b"", b"hi"))

    def test_unix_socket_listener(self):
        redis = self.start_redis()
        path = os.path.join(self.tmpdir, "p.sock")
        pod = self.start_sidecar("unixpod", redis, listen=[f"unix:{path}"])
        other = self.start_sidecar("tcppod", redis)
        self.assertTrue(os.path.exists(path))
        u = self.track_client(Client(f"unix:{path}"))
        u.subscribe("ux")
        other.client().publish("ux", b"via tcp pod")
        self.assertEqual(msg_tuple(self.expect_msgs(u, 1)[0]), (b"ux", b"", b"via tcp pod"))
        u.publish("ux", b"via unix")
        self.assertEqual(msg_tuple(self.expect_msgs(u, 1)[0]), (b"ux", b"", b"via unix"))
        if os.access(PODRELAY_CLI_BIN, os.X_OK):
            r = self.run_cli("-c", f"unix:{path}", "ping")
            self.assertEqual(r.returncode, 0, r.stderr)
        u.close()
        pod.proc.send_signal(signal.SIGTERM)
        self.assertEqual(pod.proc.wait(timeout=10), 0)
        self.assertFalse(os.path.exists(path), "unix socket file left behind after SIGTERM")

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                         "needs root and setpriv to connect as another user")
    def test_unix_socket_mode_lets_the_sidecars_group_in(self):
        """k8s runs the app as another UID than the sidecar, in the pod's fsGroup: the
        sockets are 0660 by default, so a member of the sidecar's group connects and
        anybody else gets EACCES, on the framed and the RESP port alike."""
        redis = self.start_redis()
        os.chmod(self.tmpdir, 0o711)  # let the other user reach the sockets' directory
        framed, resp = (os.path.join(self.tmpdir, n) for n in ("p.sock", "r.sock"))
        pod = self.start_sidecar("unixpod", redis, ["--resp-listen", f"unix:{resp}"],
                                 listen=[f"unix:{framed}"])
        gid = os.getgid()  # the sidecar's group (the test runs it as this user)
        for path in (framed, resp):
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o660, path)

        def as_user(group, *argv):
            return subprocess.run(["setpriv", "--reuid", "65532", "--regid", str(group),
                                   "--clear-groups", *argv], capture_output=True, timeout=10)

        member = as_user(gid, PODRELAY_CLI_BIN, "-c", f"unix:{framed}", "ping")
        self.assertEqual(member.returncode, 0, member.stderr)
        member = as_user(gid, REDIS_CLI, "-s", resp, "PING")
        self.assertEqual((member.returncode, member.stdout.strip()), (0, b"PONG"), member.stderr)
        stranger = as_user(65532, PODRELAY_CLI_BIN, "-c", f"unix:{framed}", "ping")
        self.assertNotEqual(stranger.returncode, 0)
        self.assertIn(b"ermission denied", stranger.stderr)
        pod.stop()

        narrow = self.start_sidecar("owneronly", redis, ["--unix-socket-mode", "600"],
                                    listen=[f"unix:{framed}"])
        self.assertEqual(stat.S_IMODE(os.stat(framed).st_mode), 0o600)
        member = as_user(gid, PODRELAY_CLI_BIN, "-c", f"unix:{framed}", "ping")
        self.assertNotEqual(member.returncode, 0)
        self.track_client(Client(f"unix:{framed}")).ping()  # the owner still connects
        narrow.stop()

    def test_sigterm_sends_goaway_and_exits_zero(self):
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis)
        c = pod.client()
        c.subscribe("x")
        pod.proc.send_signal(signal.SIGTERM)
        frames = c.read_until_closed(timeout=15)
        self.assertEqual(len(frames), 1, frames)
        self.assertIsInstance(frames[0], proto.Goaway)
        self.assertEqual(frames[0].code, proto.SHUTTING_DOWN)
        self.assertEqual(pod.proc.wait(timeout=15), 0)


if __name__ == "__main__":
    unittest.main()
