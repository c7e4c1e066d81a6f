"""Limits, configuration and edge cases of the protocol semantics (PROTOCOL.md sections 3-5),
against the real daemon."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time

from harness import (Client, ConnectionClosed, IntegrationCase, Redis, Sidecar, proto,
                     wait_for)

PREFIX = "podrelay:"


def msg_tuple(m):
    return (m.channel, m.pattern, m.payload)


class SemanticsTest(IntegrationCase):

    def setUp(self):
        super().setUp()
        self.redis = self.start_redis()
        self.a = self.start_sidecar("podA", self.redis)
        self.b = self.start_sidecar("podB", self.redis)

    def test_pattern_syntax(self):
        c = self.b.client()
        patterns = ["[^a]y", "lit\\*", "q[0-9]", "*"]
        c.psubscribe(*patterns)
        pub = self.a.client()
        sent = ["ay", "by", "lit*", "litx", "q5", "qx"]
        for ch in sent:
            pub.publish(ch, ch.encode())
        want = sorted([(b"by", b"[^a]y", b"by"), (b"lit*", b"lit\\*", b"lit*"),
                       (b"q5", b"q[0-9]", b"q5")] +
                      [(ch.encode(), b"*", ch.encode()) for ch in sent])
        got = sorted(msg_tuple(m) for m in self.expect_msgs(c, len(want)))
        self.assertEqual(got, want)
        self.expect_no_msg(c, grace=0.3)
        # the pattern sees the channel without the prefix: "podrelay:*"-style patterns
        # must not be needed, and a pattern naming the prefix matches nothing
        d = self.b.client()
        d.psubscribe("podrelay:*")
        pub.publish("zz", b"z")
        self.expect_no_msg(d, grace=0.3)

    def test_duplicate_subscribe_is_noop_and_unknown_unsubscribe_ignored(self):
        c = self.a.client()
        c.subscribe("dup")
        c.subscribe("dup", "dup")
        c.unsubscribe("never-subscribed")
        c.punsubscribe("never*")
        self.b.client().publish("dup", b"once")
        [m] = self.expect_msgs(c, 1)
        self.assertEqual(msg_tuple(m), (b"dup", b"", b"once"))
        self.expect_no_msg(c, grace=0.4)

    def test_no_msg_after_unsub_ok_while_flooded(self):
        sub = self.b.client()
        sub.subscribe("flood")
        pub = self.a.client()
        n = 20000
        errors = []

        def flood():
            try:
                pub.publish_many("flood", (b"f%05d" % i for i in range(n)))
                pub.publish("flood", b"last")
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        try:
            self.expect_msgs(sub, 50, timeout=10)  # the flood is flowing
            rid = sub.next_request_id()
            sub.send_raw(proto.encode_unsub(rid, ["flood"]))
            deadline = time.monotonic() + 15
            while True:
                f = sub.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
                self.assertIsNotNone(f, "no OK for UNSUB")
                if isinstance(f, proto.Ok) and f.request_id == rid:
                    break
                self.assertIsInstance(f, proto.Msg, f)
            late = sub.recv_msg(timeout=1.0)
            self.assertIsNone(late, f"MSG after the UNSUB's OK: {late}")
        finally:
            t.join(timeout=30)
        self.assertFalse(t.is_alive(), "publisher thread stuck")
        self.assertEqual(errors, [])
        self.redis.wait_numsub(PREFIX + "flood", 0, timeout=5)

    def test_replies_of_one_kind_come_in_request_order(self):
        # PROTOCOL.md: "Replies to requests come back in the order the requests were sent
        # for requests of the same kind". A SUB of a new channel waits for Redis; a SUB of a
        # channel this pod already has could be answered at once, but not before the first.
        other = self.a.client()
        other.subscribe("known")
        other.psubscribe("known*")
        c = self.a.client()
        c.send_raw(proto.encode_sub(1, ["fresh"]) + proto.encode_sub(2, ["known"]))
        got = [c.recv_frame(timeout=5), c.recv_frame(timeout=5)]
        self.assertEqual(got, [proto.Ok(1), proto.Ok(2)], "SUB replies out of order")
        c.send_raw(proto.encode_psub(3, ["fresh*"]) + proto.encode_psub(4, ["known*"]))
        got = [c.recv_frame(timeout=5), c.recv_frame(timeout=5)]
        self.assertEqual(got, [proto.Ok(3), proto.Ok(4)], "PSUB replies out of order")
        c.send_raw(b"".join(proto.encode_pub(i, "ordered", b"x") for i in range(5, 105)))
        got = [c.recv_frame(timeout=5) for _ in range(100)]
        self.assertEqual(got, [proto.Ok(i) for i in range(5, 105)], "PUB replies out of order")

    def test_admin_endpoints(self):
        status, body = self.a.get("/healthz")
        self.assertEqual(status, 200)
        status, body = self.a.get("/readyz")
        self.assertEqual((status, body.strip()), (200, "ready"))
        status, body = self.a.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn("podrelay_", body)
        self.assertIn("process_", body)


class LimitsTest(IntegrationCase):

    def test_too_many_connections(self):
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-connections", "2"])
        c1, c2 = pod.client(), pod.client()
        third = pod.client(hello=False)
        frames = third.read_until_closed(timeout=5)
        self.assertEqual(len(frames), 1, frames)
        self.assertIsInstance(frames[0], proto.Goaway)
        self.assertEqual(frames[0].code, proto.TOO_MANY_CONNECTIONS)
        c1.ping()
        c2.ping()
        c1.close()

        def fourth_ok():
            try:
                c = pod.client(timeout=2)
            except (ConnectionClosed, proto.ProtocolError, Exception):
                return False
            c.ping()
            return True
        wait_for(fourth_ok, 5, interval=0.1, what="a slot to free up after a close")

    def test_slow_consumer_gets_goaway_and_others_keep_receiving(self):
        redis = self.start_redis()
        # --soft-queue-bytes: the daemon's own extra flag (default 2 MiB, must not exceed
        # --max-queue-bytes); set equal so that only the hard limit is in play here
        pod = self.start_sidecar("pod", redis, ["--max-queue-bytes", "65536",
                                                "--soft-queue-bytes", "65536",
                                                "--max-frame-bytes", "4096"])
        other = self.start_sidecar("pub", redis)
        slow = socket.socket()
        self.addCleanup(slow.close)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(10)
        slow.connect(("127.0.0.1", pod.port))
        slow.sendall(proto.encode_hello(b"slow") + proto.encode_sub(1, ["big"]))
        dec = proto.Decoder(1 << 24)
        got = []
        while not any(isinstance(f, proto.Ok) for f in got):
            data = slow.recv(65536)
            self.assertTrue(data, "slow client closed during setup")
            got += dec.feed(data)
        fast = pod.client()
        fast.subscribe("big")
        pub = other.client()
        # Paced by the fast subscriber: each 32 KiB chunk is read before the next is sent,
        # so a subscriber that reads never has much queued; the one that never reads must
        # cross the 64 KiB limit.
        payload = b"x" * 1024
        chunks, per_chunk = 128, 32  # 4 MiB in all
        for i in range(chunks):
            pub.publish_many("big", [payload] * (per_chunk - 1))
            pub.publish("big", payload)
            got_chunk = self.expect_msgs(fast, per_chunk, timeout=10)
            self.assertTrue(all(m.payload == payload for m in got_chunk), f"chunk {i}")
        n = chunks * per_chunk
        # now read the slow one: what it got ends with GOAWAY SLOW_CONSUMER, then EOF
        frames = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                data = slow.recv(1 << 20)
            except ConnectionResetError:
                self.fail("reset instead of GOAWAY + close")
            if not data:
                break
            frames += dec.feed(data)
        else:
            self.fail("slow consumer still connected")
        self.assertTrue(frames, "nothing received")
        self.assertIsInstance(frames[-1], proto.Goaway, frames[-1])
        self.assertEqual(frames[-1].code, proto.SLOW_CONSUMER)
        self.assertLess(len([f for f in frames if isinstance(f, proto.Msg)]), n)
        self.assertTrue(pod.proc.alive())
        fast.ping()

    def test_publish_buffer_full_and_timeout_while_redis_is_away(self):
        redis = Redis(self)  # never started during the first part
        pod = self.start_sidecar("pod", redis, ["--publish-buffer-bytes", "1024",
                                                "--publish-buffer-timeout", "1.5"],
                                 wait_ready=False)
        c = pod.client()
        ids = [c.next_request_id() for _ in range(4)]
        t0 = time.monotonic()
        c.send_raw(b"".join(proto.encode_pub(i, "buf", b"b" * 500) for i in ids))
        c.send_raw(proto.encode_pub(0, "buf", b"fire and forget"))
        replies = {}
        while len(replies) < len(ids):
            f = c.recv_frame(timeout=10)
            self.assertIsNotNone(f, f"replies so far: {replies}")
            self.assertIsInstance(f, proto.Err, f)
            self.assertIn(f.request_id, ids)
            self.assertNotIn(f.request_id, replies, "two replies to one request")
            replies[f.request_id] = (f.code, time.monotonic() - t0)
        codes = sorted(code for code, _ in replies.values())
        self.assertIn(proto.PUBLISH_BUFFER_FULL, codes, replies)
        self.assertIn(proto.PUBLISH_TIMEOUT, codes, replies)
        for code, at in replies.values():
            if code == proto.PUBLISH_BUFFER_FULL:
                self.assertLess(at, 1.0, f"buffer full should be immediate: {replies}")
            else:
                self.assertEqual(code, proto.PUBLISH_TIMEOUT, replies)
                self.assertGreater(at, 1.0, f"timed out too early: {replies}")
        self.assertIsNone(c.recv_frame(timeout=0.3), "reply to a fire-and-forget publish")
        redis.start()
        pod.wait_ready(timeout=20)
        c.subscribe("buf")
        c.publish("buf", b"works again")
        self.assertEqual(self.expect_msgs(c, 1)[0].payload, b"works again")

    def test_small_max_queue_bytes_alone_is_accepted(self):
        # --max-queue-bytes is a documented flag; a value below the default soft limit
        # must not need any other flag to be accepted.
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-queue-bytes", "65536",
                                                "--max-frame-bytes", "4096"])
        pod.client().ping()

    def test_max_frame_bytes_flag_is_announced_and_enforced(self):
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-frame-bytes", "4096"])
        c = pod.client()
        self.assertEqual(c.welcome.max_frame_bytes, 4096)
        c.subscribe("lim")
        c.publish("lim", b"y" * (4096 - 1 - 4 - 2 - 3))  # length exactly 4096
        self.assertEqual(len(self.expect_msgs(c, 1)[0].payload), 4096 - 10)
        c.send_raw(struct.pack(">I", 4097) + b"\x02")
        frames = c.read_until_closed(timeout=5)
        self.assertEqual([(type(f), getattr(f, "code", None)) for f in frames],
                         [(proto.Err, proto.FRAME_TOO_LARGE)], frames)

    def test_max_subscriptions(self):
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-subscriptions", "2"])
        c = pod.client()
        c.subscribe("s1")
        c.send_raw(proto.encode_sub(50, ["s2", "s3"]))
        f = c.recv_frame(timeout=5)
        self.assertEqual((type(f), f.request_id, getattr(f, "code", None)),
                         (proto.Err, 50, proto.TOO_MANY_SUBSCRIPTIONS), f)
        c.ping()

    def test_max_subscription_bytes(self):
        # The names a connection holds (with the prefix) are bounded in bytes, not only in
        # count: a connection of long names cannot take the sidecar's memory.
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-subscription-bytes", "4096"])
        c = pod.client()
        long1, long2 = "a" * 2000, "b" * 2000
        c.subscribe(long1, long2)  # 2 x (9 + 2000) = 4018 bytes
        c.send_raw(proto.encode_sub(50, ["x" * 100, long1]))  # + 109 bytes: over
        f = c.recv_frame(timeout=5)
        self.assertEqual((type(f), f.request_id, getattr(f, "code", None)),
                         (proto.Err, 50, proto.TOO_MANY_SUBSCRIPTIONS), f)
        self.assertIn(b"--max-subscription-bytes (4096 bytes)", f.message)
        self.assertEqual(redis.numsub(PREFIX + "x" * 100), 0)
        other = pod.client()  # each connection has its own budget
        other.subscribe("x" * 100)
        c.unsubscribe(long2)  # the bytes come back with the name
        c.subscribe("x" * 100)
        redis.cli("PUBLISH", PREFIX + "x" * 100, "fits")
        self.assertEqual([m.payload for m in self.expect_msgs(c, 1)], [b"fits"])
        self.assertEqual([m.payload for m in self.expect_msgs(other, 1)], [b"fits"])

    def test_auth_token(self):
        redis = self.start_redis()
        token_file = os.path.join(self.tmpdir, "token")
        with open(token_file, "w") as f:
            f.write("s3cret")
        pod = self.start_sidecar("pod", redis, ["--auth-token-file", token_file])
        good = pod.client(auth_token=b"s3cret")
        good.ping()
        for what, token in (("wrong", b"nope"), ("missing", b"")):
            with self.subTest(what):
                c = pod.client(hello=False)
                c.send_raw(proto.encode_hello(b"x", token))
                frames = c.read_until_closed(timeout=5)
                self.assertEqual(len(frames), 1, frames)
                self.assertIsInstance(frames[0], proto.Err)
                self.assertEqual(frames[0].code, proto.AUTH_FAILED)

    def test_environment_variables_and_channel_prefix(self):
        redis = self.start_redis()
        pod = Sidecar(self, "envpod", "unused")
        env = dict(os.environ, PODRELAY_REDIS=redis.url,
                   PODRELAY_LISTEN=f"127.0.0.1:{pod.port}",
                   PODRELAY_ADMIN_LISTEN=f"127.0.0.1:{pod.admin_port}",
                   PODRELAY_CHANNEL_PREFIX="app1:")
        from harness import PODRELAY_BIN, Proc
        pod.proc = self.track(Proc("envpod", [PODRELAY_BIN, "--log-level", "debug"],
                                   self.tmpdir, env=env))
        pod.wait_ready()
        c = pod.client()
        c.subscribe("C")
        self.assertEqual(redis.numsub("app1:C"), 1)
        self.assertEqual(redis.numsub("podrelay:C"), 0)
        self.assertEqual(redis.cli("PUBLISH", "app1:C", "hi").strip(), "1")
        self.assertEqual(msg_tuple(self.expect_msgs(c, 1)[0]), (b"C", b"", b"hi"))


class ShutdownTest(IntegrationCase):
    """SIGTERM while an acked publish waits for an unreachable Redis.

    PROTOCOL.md: a PUB with request_id != 0 is answered exactly once (OK, ERR 3xx, or
    DRAINING when the sidecar stopped before it could send it), and after GOAWAY
    SHUTTING_DOWN the sidecar still answers the PUBs it had accepted, then closes. So the
    GOAWAY comes first, then exactly one reply, then the close."""

    def check(self, extra_args):
        redis = Redis(self)  # never started
        pod = self.start_sidecar("pod", redis, extra_args, wait_ready=False)
        c = pod.client()
        c.send_raw(proto.encode_pub(5, "x", b"pending"))
        self.assertIsNone(c.recv_frame(timeout=0.3), "reply although Redis never existed")
        pod.proc.send_signal(signal.SIGTERM)
        frames = c.read_until_closed(timeout=20)
        replies = [f for f in frames if isinstance(f, (proto.Ok, proto.Err))]
        self.assertEqual(len(replies), 1, f"PUB id 5 must be answered exactly once: {frames}")
        r = replies[0]
        self.assertEqual(r.request_id, 5, frames)
        if isinstance(r, proto.Err):
            self.assertTrue(r.code // 100 == 3 or r.code == proto.DRAINING, frames)
        self.assertIsInstance(frames[0], proto.Goaway, f"GOAWAY must come first: {frames}")
        self.assertEqual(frames[0].code, proto.SHUTTING_DOWN)
        self.assertIs(frames[-1], r, f"the reply must be the last frame: {frames}")
        self.assertEqual(pod.proc.wait(timeout=20), 0)

    def test_publish_timeout_shorter_than_drain(self):
        self.check(["--publish-buffer-timeout", "1", "--drain-timeout", "5"])

    def test_drain_shorter_than_publish_timeout(self):
        self.check(["--publish-buffer-timeout", "30", "--drain-timeout", "1"])


class RestartTest(IntegrationCase):

    def test_stale_unix_socket_is_replaced_but_a_live_one_is_not_stolen(self):
        from harness import PODRELAY_BIN, free_port
        redis = self.start_redis()
        path = os.path.join(self.tmpdir, "p.sock")
        first = self.start_sidecar("first", redis, listen=[f"unix:{path}"])
        first.proc.kill()  # SIGKILL leaves the socket file behind, as a crash would
        self.assertTrue(os.path.exists(path))
        self.start_sidecar("second", redis, listen=[f"unix:{path}"])
        self.track_client(Client(f"unix:{path}")).ping()
        r = self.run_cli("--listen", f"unix:{path}", "--redis", redis.url,
                         "--admin-listen", f"127.0.0.1:{free_port()}",
                         binary=PODRELAY_BIN, timeout=10)
        self.assertNotEqual(r.returncode, 0, "a second daemon took over a live socket")
        self.assertTrue(r.stderr.strip())
        self.track_client(Client(f"unix:{path}")).ping()

    def test_thousands_of_subscriptions_come_back_after_redis_restart(self):
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis)
        c = pod.client()
        c.subscribe(*["c%d" % i for i in range(3000)])
        c.psubscribe(*["p%d.*" % i for i in range(500)])
        self.assertEqual(len(redis.channels("podrelay:c*")), 3000)
        redis.kill()
        pod.wait_readyz(503)
        redis.start()
        pod.wait_ready(timeout=20)
        wait_for(lambda: len(redis.channels("podrelay:c*")) == 3000, 10,
                 what="3000 channels resubscribed")
        redis.wait_numpat(500, timeout=10)
        pub = pod.client()
        pub.publish("c2999", b"back")
        pub.publish("p499.x", b"pat back")
        got = sorted(msg_tuple(m) for m in self.expect_msgs(c, 2))
        self.assertEqual(got, [(b"c2999", b"", b"back"), (b"p499.x", b"p499.*", b"pat back")])
