"""The Redis-protocol front end (--resp-listen) as the relay sees it: request order,
PUBLISH answered with Redis' integer or podrelay's code, subscriptions shared with the
framed protocol, the RESP channel prefix, PUBSUB forwarding, QUIT and RESET. Real
redis-server and podrelay processes; raw sockets speaking RESP."""
import os
import signal
import socket
import time
import unittest

from harness import IntegrationCase, free_port, wait_for
from harness_ext import metric, redis_unpause, sidecar_metrics

PREFIX = "podrelay:"


class Resp:
    """A minimal RESP client over one socket: send raw requests, read whole replies."""

    def __init__(self, case, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        case.addCleanup(self.sock.close)
        self.buf = b""

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def _line(self, timeout):
        end = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout=5.0):
        line = self._line(timeout)
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-", b":"):
            return (t.decode(), rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.sock.settimeout(timeout)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError(self.buf)
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t in (b"*", b">"):
            return [self.reply(timeout) for _ in range(int(rest))]
        raise AssertionError(f"unexpected RESP line {line!r}")

    def closed(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


class RespSessionTest(IntegrationCase):

    def pod(self, redis, *extra):
        port = free_port()
        pod = self.start_sidecar("pod", redis, ["--resp-listen", f"127.0.0.1:{port}", *extra])
        pod.resp_port = port
        return pod

    def test_pipelined_publishes_answer_redis_integer_in_order(self):
        redis = self.start_redis()
        pod = self.pod(redis)
        sub = Resp(self, pod.resp_port)
        sub.send("SUBSCRIBE", "news")
        self.assertEqual(sub.reply(), [b"subscribe", b"news", (":", "1")])
        pub = Resp(self, pod.resp_port)
        for i in range(50):
            pub.send("PUBLISH", "news", f"m{i}")
        pub.send("PING")
        # one pod subscribed on Redis: every PUBLISH reaches 1 Redis subscriber
        self.assertEqual([pub.reply() for _ in range(50)], [(":", "1")] * 50)
        self.assertEqual(pub.reply(), ("+", "PONG"))
        got = [sub.reply() for _ in range(50)]
        self.assertEqual(got, [[b"message", b"news", b"m%d" % i] for i in range(50)])

    def test_framed_and_resp_clients_share_one_redis_subscription(self):
        redis = self.start_redis()
        pod = self.pod(redis)
        framed = pod.client()
        framed.subscribe("room")  # Redis channel podrelay:room
        resp = Resp(self, pod.resp_port)
        resp.send("SUBSCRIBE", PREFIX + "room")
        self.assertEqual(resp.reply(), [b"subscribe", b"podrelay:room", (":", "1")])
        self.assertEqual(redis.numsub(PREFIX + "room"), 1)
        other = self.pod(redis)
        p = Resp(self, other.resp_port)
        p.send("PUBLISH", PREFIX + "room", "hi")
        self.assertEqual(p.reply(), (":", "1"))
        self.assertEqual(self.expect_msgs(framed, 1)[0].payload, b"hi")
        self.assertEqual(resp.reply(), [b"message", b"podrelay:room", b"hi"])
        framed.publish("room", b"back")
        self.assertEqual(resp.reply(), [b"message", b"podrelay:room", b"back"])

    def test_resp_channel_prefix_is_applied_and_removed(self):
        redis = self.start_redis()
        pod = self.pod(redis, "--resp-channel-prefix", "app1:")
        sub = Resp(self, pod.resp_port)
        sub.send("SUBSCRIBE", "a")
        sub.reply()
        sub.send("PSUBSCRIBE", "a*")
        sub.reply()
        self.assertEqual(redis.numsub("app1:a"), 1)
        q = Resp(self, pod.resp_port)
        q.send("PUBSUB", "NUMSUB", "a", "b")
        self.assertEqual(q.reply(), [b"a", (":", "1"), b"b", (":", "0")])
        q.send("PUBSUB", "CHANNELS")
        self.assertEqual(q.reply(), [b"a"])
        q.send("PUBLISH", "a", "x")
        self.assertEqual(q.reply(), (":", "2"))  # the pod's SUBSCRIBE and PSUBSCRIBE
        got = [sub.reply(), sub.reply()]
        self.assertIn([b"message", b"a", b"x"], got)
        self.assertIn([b"pmessage", b"a*", b"a", b"x"], got)

    def test_publish_waits_for_redis_then_is_answered(self):
        redis = self.start_redis()
        pod = self.pod(redis)
        c = Resp(self, pod.resp_port)
        redis.cli("CLIENT", "PAUSE", "1500", "WRITE")
        self.addCleanup(lambda: redis.proc.alive() and redis_unpause(redis))
        c.send("PUBLISH", "late", "x")
        c.send("PING")
        # the PONG may not overtake the PUBLISH: Redis clients match replies by position
        self.assertEqual(c.reply(timeout=10), (":", "0"))
        self.assertEqual(c.reply(), ("+", "PONG"))

    def test_publish_refused_with_podrelay_code_when_the_buffer_is_full(self):
        redis = self.start_redis()
        pod = self.pod(redis, "--publish-buffer-bytes", "1024")
        c = Resp(self, pod.resp_port)
        redis.kill()
        pod.wait_readyz(503)
        for _ in range(6):
            c.send("PUBLISH", "full", "p" * 400)
        replies = [c.reply(timeout=15) for _ in range(6)]
        errors = [r for r in replies if r[0] == "-"]
        self.assertTrue(errors, replies)
        self.assertTrue(all("podrelay 30" in e[1] for e in errors), replies)
        self.assertTrue(any("PUBLISH_BUFFER_FULL" in e[1] for e in errors), replies)

    def test_unsupported_command_keeps_the_connection_and_quit_closes_after_replies(self):
        redis = self.start_redis()
        pod = self.pod(redis)
        c = Resp(self, pod.resp_port)
        c.send("GET", "x")
        self.assertEqual(c.reply(), ("-", "ERR podrelay supports only pub/sub commands: 'GET'"))
        c.send("PUBLISH", "q", "1")
        c.send("QUIT")
        self.assertEqual(c.reply(), (":", "0"))
        self.assertEqual(c.reply(), ("+", "OK"))
        self.assertTrue(c.closed())

    def test_reset_drops_subscriptions(self):
        redis = self.start_redis()
        pod = self.pod(redis)
        c = Resp(self, pod.resp_port)
        c.send("SUBSCRIBE", "r1", "r2")
        self.assertEqual([c.reply(), c.reply()],
                         [[b"subscribe", b"r1", (":", "1")], [b"subscribe", b"r2", (":", "2")]])
        c.send("RESET")
        self.assertEqual(c.reply(), ("+", "RESET"))
        wait_for(lambda: redis.numsub("r1") == 0 and redis.numsub("r2") == 0, 5)
        c.send("GET", "x")  # no longer in subscribed mode: the plain error
        self.assertEqual(c.reply()[0], "-")

    def test_redis_restart_keeps_resp_subscriptions(self):
        redis = self.start_redis()
        pod = self.pod(redis)
        c = Resp(self, pod.resp_port)
        c.send("SUBSCRIBE", "keep")
        c.reply()
        redis.kill()
        pod.wait_readyz(503)
        redis.start()
        pod.wait_ready(timeout=20)
        redis.wait_numsub("keep", 1)
        redis.cli("PUBLISH", "keep", "again")
        self.assertEqual(c.reply(timeout=10), [b"message", b"keep", b"again"])

    def test_subscribe_beyond_max_subscriptions_is_refused_with_podrelay_code(self):
        redis = self.start_redis()
        pod = self.pod(redis, "--max-subscriptions", "2")
        c = Resp(self, pod.resp_port)
        c.send("SUBSCRIBE", "s1", "s2")
        self.assertEqual([c.reply(), c.reply()],
                         [[b"subscribe", b"s1", (":", "1")], [b"subscribe", b"s2", (":", "2")]])
        c.send("SUBSCRIBE", "s3")
        kind, text = c.reply()
        self.assertEqual(kind, "-")
        self.assertTrue(text.startswith("ERR podrelay 201 TOO_MANY_SUBSCRIPTIONS"), text)
        # nothing of the refused request was applied; the connection goes on
        self.assertEqual(redis.numsub("s3"), 0)
        c.send("PING")
        self.assertEqual(c.reply(), [b"pong", b""])
        redis.cli("PUBLISH", "s2", "still")
        self.assertEqual(c.reply(), [b"message", b"s2", b"still"])

    def test_subscribe_beyond_max_subscription_bytes_is_refused_with_podrelay_code(self):
        redis = self.start_redis()
        pod = self.pod(redis, "--max-subscription-bytes", "2048")
        c = Resp(self, pod.resp_port)
        c.send("SUBSCRIBE", "a" * 2000)
        self.assertEqual(c.reply(), [b"subscribe", b"a" * 2000, (":", "1")])
        c.send("SUBSCRIBE", "b" * 100)
        kind, text = c.reply()
        self.assertEqual(kind, "-")
        self.assertTrue(text.startswith("ERR podrelay 201 TOO_MANY_SUBSCRIPTIONS"), text)
        self.assertIn("--max-subscription-bytes (2048 bytes)", text)
        self.assertEqual(redis.numsub("b" * 100), 0)
        c.send("PING")
        self.assertEqual(c.reply(), [b"pong", b""])

    def test_messages_larger_than_the_frame_or_the_queue_limit(self):
        # README --max-frame-bytes: RESP deliveries are limited only by --max-queue-bytes; a
        # message too large even for that is skipped as it arrives and counted, and the
        # connections stay up for what comes next.
        redis = self.start_redis()
        pod = self.pod(redis, "--max-frame-bytes", "1024", "--max-queue-bytes", "65536")
        resp = Resp(self, pod.resp_port)
        resp.send("SUBSCRIBE", PREFIX + "big")
        self.assertEqual(resp.reply(), [b"subscribe", PREFIX.encode() + b"big", (":", "1")])
        framed = pod.client()
        framed.subscribe("big")
        direct = Resp(self, redis.port)

        def publish(payload):
            direct.send("PUBLISH", PREFIX + "big", payload)
            self.assertEqual(direct.reply(), (":", "1"))  # the pod's one subscription

        def dropped():
            return metric(sidecar_metrics(pod), "podrelay_messages_dropped_total",
                          reason="frame_too_large")
        mid, huge = b"m" * (30 << 10), b"h" * (100 << 10)
        publish(mid)  # over --max-frame-bytes, under --max-queue-bytes
        self.assertEqual(resp.reply(), [b"message", PREFIX.encode() + b"big", mid])
        wait_for(lambda: dropped() == 1, 5, what="the framed app's copy counted as dropped")
        publish(huge)  # over both: nobody can take it
        wait_for(lambda: dropped() == 2, 5, what="the 100 KiB message counted as dropped")
        publish(b"small")
        self.assertEqual(resp.reply(), [b"message", PREFIX.encode() + b"big", b"small"])
        self.assertEqual([m.payload for m in self.expect_msgs(framed, 1)], [b"small"])
        after = sidecar_metrics(pod)
        self.assertEqual(metric(after, "podrelay_slow_consumer_disconnects_total"), 0)
        self.assertEqual(metric(after, "podrelay_app_connections"), 2)

    def test_a_resp_protocol_error_is_counted_as_malformed_frame(self):
        redis = self.start_redis()
        pod = self.pod(redis)
        before = metric(sidecar_metrics(pod), "podrelay_protocol_errors_total",
                        code="MALFORMED_FRAME")
        c = Resp(self, pod.resp_port)
        c.sock.sendall(b"*abc\r\n")
        self.assertEqual(c.reply(), ("-", "ERR Protocol error: invalid multibulk length"))
        self.assertTrue(c.closed())
        wait_for(lambda: metric(sidecar_metrics(pod), "podrelay_protocol_errors_total",
                                code="MALFORMED_FRAME") == before + 1, 5)

    def test_client_info_shows_the_apps_and_the_listeners_address(self):
        redis = self.start_redis()
        sock_path = os.path.join(self.tmpdir, "resp.sock")
        pod = self.pod(redis, "--resp-listen", f"unix:{sock_path}")
        c = Resp(self, pod.resp_port)
        c.send("CLIENT", "INFO")
        info = c.reply().decode()
        app_port = c.sock.getsockname()[1]
        self.assertIn(f" addr=127.0.0.1:{app_port} laddr=127.0.0.1:{pod.resp_port} ", info)
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(u.close)
        u.settimeout(5)
        u.connect(sock_path)
        u.sendall(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nINFO\r\n")
        data = b""
        while not data.endswith(b"\n\r\n") and len(data) < 4096:
            chunk = u.recv(4096)
            if not chunk:
                break
            data += chunk
        # as Redis shows a Unix socket client: the socket's path and ":0", both ends
        self.assertIn(f" addr={sock_path}:0 laddr={sock_path}:0 ".encode(), data)

    def test_sigterm_answers_the_publish_in_flight_then_closes_resp_connections(self):
        # A drain ends when the last connection has its answers; RESP has no GOAWAY, so a
        # RESP connection is closed once its pending replies are written, not held open
        # until --drain-timeout (the bug: an empty write chunk kept the queue "non-empty").
        redis = self.start_redis()
        pod = self.pod(redis, "--drain-timeout", "30")
        sub = Resp(self, pod.resp_port)
        sub.send("SUBSCRIBE", "d")
        self.assertEqual(sub.reply(), [b"subscribe", b"d", (":", "1")])
        idle = Resp(self, pod.resp_port)
        idle.send("PING")
        self.assertEqual(idle.reply(), ("+", "PONG"))
        pub = Resp(self, pod.resp_port)
        redis.cli("CLIENT", "PAUSE", "1500", "WRITE")
        self.addCleanup(lambda: redis.proc.alive() and redis_unpause(redis))
        pub.send("PUBLISH", "d", "in-flight")
        time.sleep(0.3)
        t_term = time.monotonic()
        pod.proc.send_signal(signal.SIGTERM)
        # answered by Redis (its count of receivers: the draining pod's own subscription
        # may already be released), not dropped and not left unanswered
        self.assertEqual(pub.reply(timeout=10)[0], ":")
        for c in (pub, sub, idle):
            self.assertTrue(c.closed(timeout=10))
        self.assertEqual(pod.proc.wait(timeout=10), 0)
        # far below the 30 s --drain-timeout: nothing waited for it
        self.assertLess(time.monotonic() - t_term, 15.0)


if __name__ == "__main__":
    unittest.main()
