"""Conformance with proto/PROTOCOL.md where issue 15 found the daemon and the spec apart.

One test per deviation (the daemon did something the spec forbids) and per gap (the spec
said nothing; it now says what the daemon does or must do). Each test names the spec
sentence it checks. Every wait is bounded; no test uses a duration as its pass criterion
except as the bound of a wait the spec itself bounds (the soft queue window, the
handshake timeout).

Run: python3 -m unittest -v integration/test_conformance.py (from the repo root), or
integration/run.sh for the whole suite.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest
from typing import Callable, List, Optional, Tuple

from harness import PODRELAY_BIN, IntegrationCase, proto, wait_for
from harness_ext import (RedisExt, figure, metric, read_frames_until_close, redis_unpause,
                         resp_command, sidecar_metrics)

PREFIX = "podrelay:"


def kinds(frames) -> List[Tuple]:
    """Frames as comparable tuples: (name, request_id or code, ...)."""
    out = []
    for f in frames:
        if isinstance(f, proto.Ok):
            out.append(("OK", f.request_id))
        elif isinstance(f, proto.Pong):
            out.append(("PONG", f.request_id))
        elif isinstance(f, proto.Err):
            out.append(("ERR", f.request_id, f.code))
        elif isinstance(f, proto.Goaway):
            out.append(("GOAWAY", f.code))
        elif isinstance(f, proto.Msg):
            out.append(("MSG", f.channel, f.pattern, len(f.payload)))
        else:
            out.append((type(f).__name__,))
    return out


class Raw:
    """One app connection driven byte by byte. Frames are kept in arrival order."""

    def __init__(self, case: IntegrationCase, port: int, hello: bool = True,
                 token: bytes = b"", rcvbuf: Optional[int] = None,
                 max_frame_bytes: int = 64 << 20):
        self.case = case
        self.sock = socket.socket()
        case.addCleanup(self.sock.close)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dec = proto.Decoder(max_frame_bytes)
        self.frames: List[object] = []
        self.taken = 0
        self.end: Optional[str] = None
        self.welcome: Optional[proto.Welcome] = None
        if hello:
            self.send(proto.encode_hello(b"conformance", token))
            f = self.next(10)
            case.assertIsInstance(f, proto.Welcome, f"no WELCOME: {f}")
            self.welcome = f
            self.dec.max_frame_bytes = f.max_frame_bytes  # accept exactly the announced bound

    def send(self, data: bytes) -> None:
        self.sock.settimeout(10)
        self.sock.sendall(data)

    def _read(self, deadline: float) -> bool:
        if self.end is not None:
            return False
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.end = "reset"
            return False
        if not data:
            self.end = "eof"
            return False
        try:
            self.frames += self.dec.feed(data)
        except proto.ProtocolError as e:
            self.case.fail(f"the sidecar sent bytes a client may refuse: {e}")
        return True

    def next(self, timeout: float):
        """The next frame not yet taken, or None after ``timeout``/at the end."""
        deadline = time.monotonic() + timeout
        while self.taken >= len(self.frames):
            if time.monotonic() >= deadline or self.end is not None:
                return None
            self._read(deadline)
        f = self.frames[self.taken]
        self.taken += 1
        return f

    def collect(self, n: int, timeout: float) -> List[object]:
        """The next ``n`` frames; fails the test if they do not all come within ``timeout``."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            f = self.next(max(0.0, deadline - time.monotonic()))
            if f is None:
                self.case.fail(f"expected {n} frames within {timeout}s, got {kinds(got)} "
                               f"(end={self.end})")
            got.append(f)
        return got

    def collect_until(self, pred: Callable[[object], bool], timeout: float) -> List[object]:
        """Frames up to and including the first for which ``pred`` holds (bounded)."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            f = self.next(max(0.0, deadline - time.monotonic()))
            if f is None:
                self.case.fail(f"condition not met within {timeout}s; got {kinds(got)} "
                               f"(end={self.end})")
            got.append(f)
            if pred(f):
                return got

    def quiet(self, grace: float) -> List[object]:
        """Every frame that arrives within ``grace`` (expected: none)."""
        deadline = time.monotonic() + grace
        got = []
        while True:
            f = self.next(max(0.0, deadline - time.monotonic()))
            if f is None:
                return got
            got.append(f)

    def until_closed(self, timeout: float) -> List[object]:
        deadline = time.monotonic() + timeout
        while self.end is None and time.monotonic() < deadline:
            self._read(deadline)
        self.case.assertIsNotNone(self.end, f"connection still open after {timeout}s")
        rest = self.frames[self.taken:]
        self.taken = len(self.frames)
        return rest


class RedisSubscriber:
    """A plain RESP connection SUBSCRIBEd on Redis itself: sees what reached Redis."""

    def __init__(self, case, port: int, channel: bytes):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        case.addCleanup(self.sock.close)
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
        self.buf = b""
        wait_for(lambda: self._fill(0.2) or b":1\r\n" in self.buf, 5, what="SUBSCRIBE reply")
        self.buf = b""

    def _fill(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        self.buf += data
        return bool(data)

    def messages_within(self, grace: float) -> bytes:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self._fill(max(0.01, deadline - time.monotonic()))
        return self.buf

    def payloads_until_quiet(self, quiet: float = 1.0, limit: float = 30.0) -> List[bytes]:
        """Payloads of every complete message, reading until none came for ``quiet``."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self._fill(quiet):
            pass
        return re.findall(rb"\*3\r\n\$7\r\nmessage\r\n\$\d+\r\n[^\r]*\r\n\$\d+\r\n"
                          rb"([^\r]*)\r\n", self.buf)


def acl_redis(case) -> RedisExt:
    """A Redis whose user ``app`` may use only channels matching ``podrelay:ok*``."""
    r = RedisExt(case, extra_args=["--user", "app", "on", ">apppw", "resetchannels",
                                   "&podrelay:ok*", "+@all"])
    return r.start()


# --- deviations --------------------------------------------------------------------------
class DeviationTest(IntegrationCase):

    def test_max_subscriptions_counts_distinct_new_names(self):
        """Spec 3/5: --max-subscriptions counts the distinct names the connection holds after
        the request; names it already has and duplicates inside one request count once."""
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-subscriptions", "5"])
        c = Raw(self, pod.port)
        c.send(proto.encode_sub(1, [b"a", b"b", b"c", b"d", b"e"]))
        self.assertEqual(kinds(c.collect(1, 5)), [("OK", 1)])
        # 5 held: re-subscribing 2 of them adds nothing
        c.send(proto.encode_sub(2, [b"a", b"b"]))
        self.assertEqual(kinds(c.collect(1, 5)), [("OK", 2)], "re-SUB of held names refused")
        c.send(proto.encode_unsub(3, [b"e"]))
        self.assertEqual(kinds(c.collect(1, 5)), [("OK", 3)])
        # 4 held: one new name, given twice, makes 5
        c.send(proto.encode_sub(4, [b"x", b"x"]))
        self.assertEqual(kinds(c.collect(1, 5)), [("OK", 4)], "duplicate in one SUB counted twice")
        # 5 held: a held name plus one new one makes 6 -> refused, nothing added
        c.send(proto.encode_sub(5, [b"a", b"y"]) + proto.encode_psub(6, [b"p*", b"p*"]))
        got = kinds(c.collect(2, 5))
        self.assertEqual([g[:3] for g in got], [("ERR", 5, proto.TOO_MANY_SUBSCRIPTIONS),
                                                ("ERR", 6, proto.TOO_MANY_SUBSCRIPTIONS)])
        self.assertEqual(redis.numsub(PREFIX + "y"), 0)
        # a fresh connection: six entries, one distinct name
        d = Raw(self, pod.port)
        d.send(proto.encode_sub(1, [b"z"] * 6))
        self.assertEqual(kinds(d.collect(1, 5)), [("OK", 1)])

    def test_subscribe_refused_by_redis_is_answered_204_and_never_partly_applied(self):
        """Spec 3/4: code 204 SUBSCRIBE_REFUSED with Redis' text; a refused SUB/PSUB is never
        partly applied; later requests are not held behind it."""
        redis = acl_redis(self)
        pod = self.sidecar_as_app(redis)
        c = Raw(self, pod.port)
        c.send(proto.encode_sub(1, [b"bad"]) + proto.encode_sub(2, [b"ok1"]) +
               proto.encode_sub(3, [b"ok2", b"bad2"]) + proto.encode_psub(4, [b"bad*"]) +
               proto.encode_sub(5, [b"ok3"]))
        got = c.collect(5, 10)
        self.assertEqual([k[:3] for k in kinds(got)],
                         [("ERR", 1, proto.SUBSCRIBE_REFUSED), ("OK", 2),
                          ("ERR", 3, proto.SUBSCRIBE_REFUSED),
                          ("ERR", 4, proto.SUBSCRIBE_REFUSED), ("OK", 5)])
        for f in (got[0], got[2], got[3]):
            self.assertIn(b"NOPERM", f.message, f"Redis' text must be carried: {f}")
        # none of the refused request's names was added: ok2 delivers nothing, and a later
        # SUB of ok2 is a real subscribe (it reaches Redis and then delivers)
        self.assertEqual(redis.cli("PUBSUB", "NUMSUB", PREFIX + "ok2").split()[1], "0")
        redis.cli("PUBLISH", PREFIX + "ok2", "before")
        redis.cli("PUBLISH", PREFIX + "ok1", "one")
        self.assertEqual(kinds(c.collect(1, 5)), [("MSG", b"ok1", b"", 3)])
        self.assertEqual(kinds(c.quiet(0.3)), [])
        c.send(proto.encode_sub(6, [b"ok2"]))
        self.assertEqual(kinds(c.collect(1, 5)), [("OK", 6)])
        redis.cli("PUBLISH", PREFIX + "ok2", "after")
        [m] = c.collect(1, 5)
        self.assertEqual((m.channel, m.payload), (b"ok2", b"after"))
        # an UNSUB of the refused name is an unknown name: OK, and nothing else released
        c.send(proto.encode_unsub(7, [b"bad"]) + proto.encode_ping(8))
        self.assertEqual(sorted(kinds(c.collect(2, 5))), [("OK", 7), ("PONG", 8)])
        self.assertEqual(kinds(c.quiet(0.3)), [])

    def test_a_publish_redis_refuses_is_logged_with_redis_text(self):
        """README "Health and drain": an ACL denial of a PUBLISH reaches the log, with
        Redis' text, for acked and fire-and-forget publishes (found by an SRE check: only a
        counter moved, so a fire-and-forget app's operator never saw the cause)."""
        redis = acl_redis(self)
        pod = self.sidecar_as_app(redis)
        c = Raw(self, pod.port)
        c.send(proto.encode_pub(0, b"denied", b"fire and forget"))
        lines = wait_for(lambda: [ln for ln in pod.proc.stderr_text().splitlines()
                                  if "Redis refused a publish" in ln], 10,
                         what="the refused publish in the log")
        self.assertIn("NOPERM", lines[0])
        self.assertIn("acked=false", lines[0])
        c.send(proto.encode_pub(1, b"ok-allowed", b"fine") + proto.encode_pub(2, b"denied", b"x"))
        self.assertEqual([k[:3] for k in kinds(c.collect(2, 5))],
                         [("OK", 1), ("ERR", 2, proto.REDIS_ERROR)])

    def test_the_drained_line_reports_what_the_drain_lost(self):
        """The admin port closes before the drain's last answers, so the last log line says
        how many fire-and-forget publishes were dropped and acked ones nacked."""
        redis = self.start_redis()
        pod = self.start_sidecar("drainpod", redis, ["--drain-timeout", "1",
                                                      "--publish-buffer-timeout", "30"])
        c = Raw(self, pod.port)
        redis.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: redis.proc.alive() and redis.proc.send_signal(signal.SIGCONT))
        c.send(b"".join(proto.encode_pub(0, b"ff", b"%d" % i) for i in range(7)) +
               b"".join(proto.encode_pub(100 + i, b"acked", b"x") for i in range(3)))
        wait_for(lambda: metric(sidecar_metrics(pod), "podrelay_frames_received_total",
                                type="PUB") == 10, 10, what="the ten PUBs read")
        self.assertEqual(pod.stop(signal.SIGTERM), 0)
        redis.proc.send_signal(signal.SIGCONT)
        [line] = [ln for ln in pod.proc.stderr_text().splitlines() if "drained" in ln]
        self.assertIn("fire_and_forget_dropped=7", line)
        self.assertIn("acked_nacked=3", line)

    def sidecar_as_app(self, redis):
        from harness import Sidecar
        url = f"redis://app:apppw@127.0.0.1:{redis.port}"
        return Sidecar(self, "pod", url).start(True)

    def test_soft_queue_limit_cuts_after_window_without_further_messages(self):
        """Spec 5: above --soft-queue-bytes for longer than --soft-queue-seconds -> GOAWAY
        SLOW_CONSUMER within about the window (+ up to 1 s), checked on a timer: no further
        message needs to be queued."""
        redis = self.start_redis()
        soft = 262144
        pod = self.start_sidecar("pod", redis, ["--soft-queue-bytes", str(soft),
                                                "--soft-queue-seconds", "1",
                                                "--max-queue-bytes", str(64 << 20)])
        stalled = Raw(self, pod.port, rcvbuf=4096)
        stalled.send(proto.encode_sub(1, [b"soft"]))
        self.assertEqual(kinds(stalled.collect(1, 5)), [("OK", 1)])
        pub = Raw(self, pod.port)
        # one burst, written in one go, then nothing more on the channel
        n, size = 160, 65000  # ~10 MB: well above what the kernel buffers absorb
        pub.send(b"".join(proto.encode_pub(i, b"soft", b"s" * size) for i in range(1, n + 1)))
        acks = pub.collect(n, 10)
        self.assertEqual(kinds(acks), [("OK", i) for i in range(1, n + 1)])
        t_last = time.monotonic()
        q = metric(sidecar_metrics(pod), "podrelay_outbound_queue_bytes")
        cut = metric(sidecar_metrics(pod), "podrelay_slow_consumer_disconnects_total")
        if cut:
            self.skipTest("the burst itself took longer than the window; cannot check the timer")
        self.assertGreater(q, soft, "precondition: the stalled connection's queue is above soft")
        self.assertLess(q, 64 << 20)

        def disconnected():
            return metric(sidecar_metrics(pod), "podrelay_slow_consumer_disconnects_total") == 1
        # window 1 s + up to 1 s of timer granularity, plus slack for a loaded machine
        wait_for(disconnected, 1.0 + 1.0 + 2.0, interval=0.1,
                 what="slow consumer cut by the soft-limit timer, no message queued after "
                      f"the burst ({q:.0f} bytes queued)")
        self.assertGreater(time.monotonic() - t_last, 0.5, "cut before the window")
        frames = stalled.until_closed(10)
        others = [k for k in kinds(frames) if k[0] != "MSG"]
        self.assertIn(others, ([], [("GOAWAY", proto.SLOW_CONSUMER)]), others)

    def test_pub_replies_keep_request_order_but_buffer_full_comes_at_once(self):
        """Spec intro/3: replies to acked PUBs come back in request order, except that a
        PUBLISH_BUFFER_FULL (300) answer is sent at once, ahead of earlier PUBs still
        waiting for Redis (backpressure must not wait for their timeout)."""
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--publish-buffer-bytes", "1024",
                                                "--publish-buffer-timeout", "20"])
        c = Raw(self, pod.port)
        redis.cli("CLIENT", "PAUSE", "20000", "WRITE")  # PUBLISH waits
        self.addCleanup(lambda: redis.proc.alive() and redis_unpause(redis))
        c.send(b"".join(proto.encode_pub(i, b"full", b"p" * 400) for i in range(1, 7)))
        c.send(proto.encode_ping(99))
        early = kinds(c.collect(1, 5) + c.quiet(0.5))
        refused = [g for g in early if g[0] == "ERR"]
        self.assertTrue(refused, f"nothing refused with a 1024-byte buffer: {early}")
        self.assertIn(("PONG", 99), early)
        first_refused = refused[0][1]
        self.assertEqual(refused, [("ERR", i, proto.PUBLISH_BUFFER_FULL)
                                   for i in range(first_refused, 7)], early)
        redis_unpause(redis)
        got = kinds(c.collect(first_refused - 1, 10))
        self.assertEqual(got, [("OK", i) for i in range(1, first_refused)],
                         f"the buffered PUBs must be answered OK in request order: {got}")

    def test_pub_replies_stay_in_request_order_during_a_drain(self):
        """Spec 3 (GOAWAY) and intro: after GOAWAY SHUTTING_DOWN, the answers to the PUBs read
        before it (OK, or DRAINING for those read after the drain began) come in request
        order; requests not read are never answered and never reach Redis."""
        attempts = []
        for attempt in range(3):
            attempts.append(self._drain_once(attempt))
        self.assertEqual([a for a in attempts if a], [], "out-of-order or extra answers")

    def _drain_once(self, attempt: int) -> Optional[str]:
        redis = self.start_redis(name=f"redis{attempt}")
        pod = self.start_sidecar(f"pod{attempt}", redis, ["--drain-timeout", "5",
                                                          "--publish-buffer-bytes",
                                                          str(1 << 30)])
        watch = RedisSubscriber(self, redis.port, b"podrelay:drain")
        c = Raw(self, pod.port)
        redis.cli("CLIENT", "PAUSE", "20000", "WRITE")
        sent: List[int] = []
        stop = threading.Event()
        wsock = c.sock.dup()
        self.addCleanup(wsock.close)

        # PUBs back to back, written as fast as the socket takes them: the sidecar's reader
        # is busy (its socket always readable) when the SIGTERM comes, the case of issue 15
        n = 600_000
        blob = b"".join(struct.pack(">IBIH", 1 + 4 + 2 + 5 + len(b"%d" % i), proto.PUB, i, 5)
                        + b"drain%d" % i for i in range(1, n + 1))

        def stream():
            pos = 0
            wsock.setblocking(False)
            try:
                while not stop.is_set() and pos < len(blob):
                    try:
                        pos += wsock.send(blob[pos:pos + 65536])
                    except BlockingIOError:
                        time.sleep(0.001)
            except OSError:
                pass
            sent.append(pos)
        t = threading.Thread(target=stream, daemon=True)
        t.start()
        time.sleep(0.15)
        pod.proc.send_signal(signal.SIGTERM)
        # a client stops sending when it sees GOAWAY (what was in flight stays unread)
        frames = c.collect_until(lambda f: isinstance(f, proto.Goaway), 10)
        stop.set()
        time.sleep(0.3)
        redis_unpause(redis)  # within Redis' ping timeout of the sidecar (3 s)
        frames += c.until_closed(15)
        t.join(5)
        got = kinds(frames)
        replies = [g for g in got if g[0] in ("OK", "ERR")]
        goaway = [g for g in got if g[0] == "GOAWAY"]
        self.assertEqual(goaway, [("GOAWAY", proto.SHUTTING_DOWN)], got[-5:])
        ids = [r[1] for r in replies]
        problems = []
        if ids != sorted(ids):
            bad = [(a, b) for a, b in zip(ids, ids[1:]) if b < a][:5]
            problems.append(f"attempt {attempt}: out of order {bad}")
        if len(set(ids)) != len(ids):
            problems.append(f"attempt {attempt}: an id answered twice")
        if ids and ids != list(range(1, len(ids) + 1)):
            problems.append(f"attempt {attempt}: answered ids are not 1..{len(ids)}")
        codes = {r[2] for r in replies if r[0] == "ERR"}
        if not codes <= {proto.DRAINING, proto.OUTCOME_UNKNOWN}:
            problems.append(f"attempt {attempt}: unexpected codes {codes}")
        # nothing that was not answered OK (or 302) reached Redis
        answered_ok = {r[1] for r in replies if r[0] == "OK"}
        maybe = {r[1] for r in replies if r[0] == "ERR" and r[2] == proto.OUTCOME_UNKNOWN}
        published = {int(p) for p in watch.payloads_until_quiet()}
        extra = published - answered_ok - maybe
        if extra:
            problems.append(f"attempt {attempt}: reached Redis without OK: {sorted(extra)[:5]}")
        if answered_ok - published:
            problems.append(f"attempt {attempt}: OK but not on Redis: "
                            f"{sorted(answered_ok - published)[:5]}")
        figure("conformance.drain", attempt=attempt, sent_bytes=sent[-1] if sent else 0,
               answered=len(ids), ok=len(answered_ok), draining=sum(
                   1 for r in replies if r[0] == "ERR" and r[2] == proto.DRAINING),
               outcome_unknown=len(maybe), on_redis=len(published), end=c.end)
        return "; ".join(problems) or None

    def test_half_close_answers_every_request_read_then_closes(self):
        """Spec 3: when the client shuts down its write side, the sidecar removes the
        connection's subscriptions, answers every request it had read, then closes."""
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis)
        c = Raw(self, pod.port)
        c.send(proto.encode_sub(1, [b"half"]) + proto.encode_psub(2, [b"hal*"]))
        self.assertEqual(kinds(c.collect(2, 5)), [("OK", 1), ("OK", 2)])
        redis.cli("CLIENT", "PAUSE", "20000", "WRITE")  # the PUBs wait for Redis
        self.addCleanup(lambda: redis.proc.alive() and redis_unpause(redis))
        c.send(proto.encode_pub(3, b"other", b"x") + proto.encode_pub(4, b"other", b"y") +
               proto.encode_ping(5))
        self.assertEqual(kinds(c.collect(1, 5)), [("PONG", 5)])
        c.sock.shutdown(socket.SHUT_WR)
        # the subscriptions go at the EOF, while the acks still wait
        redis.wait_numsub(PREFIX + "half", 0, timeout=5)
        redis.wait_numpat(0, timeout=5)
        redis_unpause(redis)
        rest = c.until_closed(10)
        self.assertEqual(kinds(rest), [("OK", 3), ("OK", 4)])
        self.assertEqual(c.end, "eof")


# --- gaps -----------------------------------------------------------------------------
class GapTest(IntegrationCase):

    def setUp(self):
        super().setUp()
        self.redis = self.start_redis()

    def test_decoding_checks_come_before_the_state_check(self):
        """Spec 1/3: length (0 -> 100, above max -> 101), type byte (unknown -> 102), body
        (malformed -> 100), then the state: before HELLO -> 103, after HELLO a second HELLO
        or a sidecar-to-client type -> 106. For every frame, the first one included."""
        pod = self.start_sidecar("pod", self.redis, ["--max-frame-bytes", "1024"])
        ok_trailing = proto.encode_frame_raw(proto.OK, b"\x00\x00\x00\x01\x00")
        cases = [
            ("length 0", b"\x00\x00\x00\x00\x99", 100, 100),
            ("above max with unknown type", struct.pack(">IB", 1025, 0x99), 101, 101),
            ("above max with sidecar type", struct.pack(">IB", 1025, proto.OK), 101, 101),
            ("unknown type, malformed-looking body", proto.encode_frame_raw(0x99, b"\x01"),
             102, 102),
            ("unknown type 0x80", proto.encode_frame_raw(0x80, b""), 102, 102),
            ("OK with a trailing byte", ok_trailing, 100, 100),
            ("truncated WELCOME", proto.encode_frame_raw(proto.WELCOME, b"\x00\x01"), 100, 100),
            ("truncated HELLO", proto.encode_frame_raw(proto.HELLO, b"\x00\x01\x00"), 100, 100),
            ("well-formed OK", proto.encode_ok(1), 103, 106),
            ("well-formed WELCOME", proto.encode_welcome(b"v", b"n"), 103, 106),
            ("well-formed GOAWAY", proto.encode_goaway(401, b"x"), 103, 106),
            ("well-formed PING", proto.encode_ping(1), 103, None),
            ("HELLO", proto.encode_hello(b"again"), None, 106),
        ]
        for name, data, first, after in cases:
            for phase, want in (("first frame", first), ("after HELLO", after)):
                if want is None:
                    continue
                with self.subTest(frame=name, phase=phase):
                    c = Raw(self, pod.port, hello=(phase == "after HELLO"))
                    c.send(data)
                    frames = c.until_closed(5)
                    self.assertEqual(kinds(frames), [("ERR", 0, want)], frames)

    def test_at_the_smallest_limit_every_reply_fits_the_announced_max_frame_bytes(self):
        """Spec 1: the announced limit is at least 1024 and every frame but MSG/SMSG fits it,
        also before WELCOME: a WELCOME with the longest node id, and ERR texts (cut to 512
        bytes). Before, the limit could be 64, and neither a WELCOME nor an ERR 102 fit.
        The connections' decoders refuse any frame above 1024 bytes."""
        pod = self.start_sidecar("pod", self.redis,
                                 ["--max-frame-bytes", "1024", "--node-id", "n" * 255])
        c = Raw(self, pod.port, max_frame_bytes=1024)
        self.assertEqual(c.welcome.max_frame_bytes, 1024)
        self.assertEqual(c.welcome.node_id, b"n" * 255)
        c.send(proto.encode_ping(1))
        self.assertEqual(kinds(c.collect(1, 5)), [("PONG", 1)])
        for name, frame in (("unknown type", b"\x00\x00\x00\x01\x7f"),
                            ("malformed", b"\x00\x00\x00\x02\x03\x00"),
                            ("too large", b"\x00\x00\x04\x01\x02")):
            with self.subTest(name):
                bad = Raw(self, pod.port, max_frame_bytes=1024)
                bad.send(frame)
                got = bad.until_closed(5)
                self.assertEqual(len(got), 1, got)
                self.assertIsInstance(got[0], proto.Err)
                self.assertGreater(len(got[0].message), 0)

    def test_msg_frames_never_exceed_the_announced_max_frame_bytes(self):
        """Spec 1: the sidecar never sends a frame longer than the max_frame_bytes it
        announced; a message that would not fit is not delivered and is counted in
        podrelay_messages_dropped_total{reason="frame_too_large"}. Clients must accept frames
        up to the announced limit."""
        limit = 65536
        pod = self.start_sidecar("pod", self.redis, ["--max-frame-bytes", str(limit)])
        c = Raw(self, pod.port)
        self.assertEqual(c.welcome.max_frame_bytes, limit)
        c.send(proto.encode_sub(1, [b"big"]) + proto.encode_psub(2, [b"b*"]))
        self.assertEqual(kinds(c.collect(2, 5)), [("OK", 1), ("OK", 2)])
        exact = limit - (1 + 2 + 3 + 2)           # channel MSG of exactly `limit` bytes
        for payload in (b"a" * exact, b"b" * 70000, b"end"):
            r = resp_command(self.redis.port, b"PUBLISH", b"podrelay:big", payload)
            self.assertEqual(r, b":2\r\n")  # one channel and one pattern subscriber
        got = c.collect_until(lambda f: isinstance(f, proto.Msg) and f.payload == b"end"
                              and f.pattern == b"b*", 10)
        self.assertEqual(kinds(got), [("MSG", b"big", b"", exact), ("MSG", b"big", b"", 3),
                                      ("MSG", b"big", b"b*", 3)],
                         "only frames that fit the announced limit may be sent")
        self.assertEqual(kinds(c.quiet(0.3)), [])
        m = sidecar_metrics(pod)
        self.assertEqual(metric(m, "podrelay_messages_dropped_total", reason="frame_too_large"),
                         3, "pattern copy of the exact one, both copies of the 70000-byte one")
        c.send(proto.encode_ping(3))
        self.assertEqual(kinds(c.collect(1, 5)), [("PONG", 3)])

    def test_message_no_receiver_could_queue_is_skipped_unbuffered_and_counted(self):
        """A message from Redis above both the frame limit and the per-connection hard queue
        limit is skipped as it arrives (the subscriber link never buffers it) and counted in
        podrelay_messages_dropped_total{reason="frame_too_large"}; the link stays up and the
        next message arrives."""
        pod = self.start_sidecar("pod", self.redis, ["--max-frame-bytes", "4096",
                                                     "--max-queue-bytes", "65536"])
        c = Raw(self, pod.port)
        c.send(proto.encode_sub(1, [b"huge"]) + proto.encode_psub(2, [b"h*"]))
        self.assertEqual(kinds(c.collect(2, 5)), [("OK", 1), ("OK", 2)])
        for payload in (b"s" * 3_000_000, b"m" * 10_000, b"end"):
            r = resp_command(self.redis.port, b"PUBLISH", b"podrelay:huge", payload)
            self.assertEqual(r, b":2\r\n")
        got = c.collect_until(lambda f: isinstance(f, proto.Msg) and f.payload == b"end"
                              and f.pattern == b"h*", 10)
        self.assertEqual(kinds(got), [("MSG", b"huge", b"", 3), ("MSG", b"huge", b"h*", 3)])
        m = sidecar_metrics(pod)
        self.assertEqual(metric(m, "podrelay_messages_dropped_total", reason="frame_too_large"),
                         4, "both copies of the skipped one and of the one above the frame limit")
        self.assertEqual(metric(m, "podrelay_redis_reconnects_total", role="subscriber"), 0)
        # Skipped, not buffered and then refused: only the 3 MB one takes that path.
        log = pod.proc.stderr_text() + pod.proc.stdout_text()
        self.assertIn("too large to buffer; skipped", log)
        self.assertIn("payload_bytes=3000000", log)

    def test_auth_token_sent_to_a_sidecar_without_auth_is_ignored(self):
        """Spec 3: a token sent to a sidecar that has no token configured is accepted."""
        pod = self.start_sidecar("pod", self.redis)
        c = Raw(self, pod.port, token=b"whatever")
        c.send(proto.encode_ping(1))
        self.assertEqual(kinds(c.collect(1, 5)), [("PONG", 1)])

    def test_auth_token_file_trailing_cr_and_lf_are_trimmed(self):
        """Spec 3: every trailing CR and LF byte of the token file is removed; nothing else
        (spaces, leading bytes) is."""
        path = os.path.join(self.tmpdir, "token")
        with open(path, "wb") as f:
            f.write(b" s3cret \r\n\n\r")
        pod = self.start_sidecar("pod", self.redis, ["--auth-token-file", path])
        c = Raw(self, pod.port, token=b" s3cret ")
        c.send(proto.encode_ping(1))
        self.assertEqual(kinds(c.collect(1, 5)), [("PONG", 1)])
        for token in (b"s3cret", b" s3cret \r\n\n\r", b" s3cret \n", b" s3cret"):
            with self.subTest(token=token):
                r = Raw(self, pod.port, hello=False)
                r.send(proto.encode_hello(b"x", token))
                self.assertEqual(kinds(r.until_closed(5)), [("ERR", 0, proto.AUTH_FAILED)])

    def test_requests_sent_after_goaway_are_never_read_answered_or_published(self):
        """Spec 3 (GOAWAY): requests the sidecar had not read when it sent GOAWAY are never
        read, never answered and never reach Redis; PUBs read before it are answered."""
        redis = self.redis
        pod = self.start_sidecar("pod", redis, ["--drain-timeout", "8"])
        watch = RedisSubscriber(self, redis.port, b"podrelay:late")
        c = Raw(self, pod.port)
        redis.cli("CLIENT", "PAUSE", "20000", "WRITE")
        self.addCleanup(lambda: redis.proc.alive() and redis_unpause(redis))
        c.send(proto.encode_pub(1, b"late", b"read") + proto.encode_ping(2))
        self.assertEqual(kinds(c.collect(1, 5)), [("PONG", 2)])
        pod.proc.send_signal(signal.SIGTERM)
        self.assertEqual(kinds(c.collect(1, 5)), [("GOAWAY", proto.SHUTTING_DOWN)])
        try:
            c.send(proto.encode_pub(3, b"late", b"unread") + proto.encode_sub(4, [b"x"]) +
                   proto.encode_ping(5) + proto.encode_pub(0, b"late", b"unread-ff"))
        except OSError:
            pass
        time.sleep(0.3)
        redis_unpause(redis)
        rest = c.until_closed(15)
        self.assertEqual(kinds(rest), [("OK", 1)])
        seen = watch.messages_within(0.5)
        self.assertIn(b"read", seen)
        self.assertNotIn(b"unread", seen)

    def test_request_id_zero_and_duplicate_ids(self):
        """Spec 3: request_id 0 outside PUB is allowed and echoed; duplicate outstanding ids
        are each answered once, in the usual order."""
        pod = self.start_sidecar("pod", self.redis)
        c = Raw(self, pod.port)
        c.send(proto.encode_sub(0, [b"z"]) + proto.encode_ping(0) + proto.encode_psub(0, [b"z*"])
               + proto.encode_unsub(0, [b"z"]) + proto.encode_punsub(0, [b"z*"]))
        got = kinds(c.collect(5, 5))
        self.assertEqual(sorted(got), sorted([("OK", 0)] * 4 + [("PONG", 0)]), got)
        c.send(proto.encode_pub(7, b"dup", b"1") + proto.encode_pub(7, b"dup", b"2") +
               proto.encode_sub(9, [b"d1"]) + proto.encode_sub(9, [b"d2"]) +
               proto.encode_pub(0, b"dup", b"ff") + proto.encode_ping(7))
        got = kinds(c.collect(5, 5))
        self.assertEqual(sorted(got), sorted([("OK", 7), ("OK", 7), ("OK", 9), ("OK", 9),
                                              ("PONG", 7)]), got)
        self.assertEqual(kinds(c.quiet(0.3)), [], "a fire-and-forget PUB was answered")

    def test_hello_timeout(self):
        """Spec 3 / README: --hello-timeout SECONDS (default 5, PODRELAY_HELLO_TIMEOUT): no
        HELLO in time -> ERR 0 103 'no HELLO within N s', close; counted in
        podrelay_protocol_errors_total{code="HANDSHAKE_REQUIRED"}."""
        pod = self.start_sidecar("pod", self.redis, ["--hello-timeout", "1"])
        idle = Raw(self, pod.port, hello=False)
        partial = Raw(self, pod.port, hello=False)
        partial.send(proto.encode_hello(b"slow")[:5])
        done = Raw(self, pod.port)
        for name, c in (("idle", idle), ("partial HELLO", partial)):
            with self.subTest(name):
                frames = c.until_closed(1.0 + 4.0)
                self.assertEqual(kinds(frames), [("ERR", 0, proto.HANDSHAKE_REQUIRED)])
                self.assertEqual(frames[0].message, b"no HELLO within 1 s")
        self.assertEqual(metric(sidecar_metrics(pod), "podrelay_protocol_errors_total",
                                code="HANDSHAKE_REQUIRED"), 2)
        done.send(proto.encode_ping(1))
        self.assertEqual(kinds(done.collect(1, 5)), [("PONG", 1)],
                         "a connection that said HELLO is not cut")
        # the same from the environment
        from harness import Proc, Sidecar
        envpod = Sidecar(self, "envpod", self.redis.url)
        env = dict(os.environ, PODRELAY_HELLO_TIMEOUT="1")
        envpod.proc = self.track(Proc("envpod", envpod.argv(), self.tmpdir, env=env))
        envpod.wait_ready()
        frames = Raw(self, envpod.port, hello=False).until_closed(1.0 + 4.0)
        self.assertEqual([(k, f.message) for k, f in zip(kinds(frames), frames)],
                         [(("ERR", 0, proto.HANDSHAKE_REQUIRED), b"no HELLO within 1 s")])

    def test_max_queue_bytes_must_be_at_least_max_frame_bytes_plus_64(self):
        """README / spec 5: --max-queue-bytes >= --max-frame-bytes + 64, or startup fails
        with a message saying exactly that."""
        base = [PODRELAY_BIN, "--redis", self.redis.url, "--listen", "127.0.0.1:1",
                "--admin-listen", "127.0.0.1:1", "--max-frame-bytes", "4096"]
        r = subprocess.run(base + ["--max-queue-bytes", "4159"], capture_output=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr.decode().strip().splitlines()[-1],
                         "podrelay: --max-queue-bytes must be at least --max-frame-bytes + 64")
        pod = self.start_sidecar("pod", self.redis, ["--max-frame-bytes", "4096",
                                                     "--max-queue-bytes", "4160"])
        self.assertEqual(Raw(self, pod.port).welcome.max_queue_bytes, 4160)

    def test_unsub_takes_effect_at_once_but_its_ok_waits_behind_earlier_subs(self):
        """Spec intro/3: PONG at once; replies to SUB/UNSUB/PSUB/PUNSUB in request order
        among themselves; UNSUB takes effect at once but its OK waits behind earlier
        SUB-family replies."""
        redis = self.redis
        pod = self.start_sidecar("pod", redis)
        c = Raw(self, pod.port)
        c.send(proto.encode_sub(1, [b"a"]))
        self.assertEqual(kinds(c.collect(1, 5)), [("OK", 1)])
        redis.kill()
        pod.wait_readyz(503, timeout=10)
        c.send(proto.encode_sub(2, [b"b"]) + proto.encode_unsub(3, [b"a"]) +
               proto.encode_sub(4, []) + proto.encode_ping(5))
        self.assertEqual(kinds(c.collect(1, 5)), [("PONG", 5)])
        self.assertEqual(kinds(c.quiet(0.5)), [], "SUB-family replies before SUB 2's OK")
        redis.start()
        got = kinds(c.collect(3, 15))
        self.assertEqual(got, [("OK", 2), ("OK", 3), ("ERR", 4, proto.INVALID_ARGUMENT)])
        redis.wait_numsub(PREFIX + "b", 1)
        self.assertEqual(redis.numsub(PREFIX + "a"), 0)
        redis.cli("PUBLISH", PREFIX + "a", "gone")
        redis.cli("PUBLISH", PREFIX + "b", "here")
        self.assertEqual(kinds(c.collect(1, 5)), [("MSG", b"b", b"", 4)])
        self.assertEqual(kinds(c.quiet(0.3)), [])


if __name__ == "__main__":
    unittest.main()
