"""Hostile input: every malformed vector, handshake violations, a connection flood with
garbage, the connection limit, and a Redis (or sentinel) that answers one command without
end, on each kind of Redis connection. The daemon must answer each with the named error (or
drop that Redis connection and try again), stay up, keep serving a normal subscriber, and
give its memory back."""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import threading
import time
import unittest

from harness import REPO_ROOT, IntegrationCase, Sidecar, free_port, proto, wait_for
from harness_ext import (AckedPublisher, Collector, daemon_output, ensure_nofile, figure,
                         metric, raw_exchange, read_frames_until_close, rss_kib,
                         sidecar_metrics)

VECTORS = os.path.join(REPO_ROOT, "proto", "vectors", "frames.json")


def load_vectors():
    with open(VECTORS) as f:
        return json.load(f)


class MalformedVectorsTest(IntegrationCase):

    def setUp(self):
        super().setUp()
        self.vectors = load_vectors()
        self.redis = self.start_redis()
        # the vectors are written for a frame limit of max_frame_bytes (1024)
        self.pod = self.start_sidecar("pod", self.redis,
                                      ["--max-frame-bytes", str(self.vectors["max_frame_bytes"])])

    def assert_err_close(self, frames, end, trailing, code, what):
        self.assertEqual([(type(f).__name__, getattr(f, "request_id", None),
                           getattr(f, "code", None)) for f in frames],
                         [("Err", 0, code)], f"{what}: {frames}")
        self.assertIn(end, ("eof", "reset"), f"{what}: connection not closed ({end})")
        self.assertEqual(trailing, 0, what)

    def test_every_malformed_vector_after_and_before_hello(self):
        # After a version 2 HELLO every type of the vectors is known; before any HELLO the
        # connection speaks version 1, where the version 2 types are unknown.
        hello = proto.encode_hello(b"hostile", b"", 2)
        results = {}
        for v in self.vectors["malformed"]:
            data = bytes.fromhex(v["hex"])
            for phase in ("after_hello", "before_hello"):
                with self.subTest(vector=v["name"], phase=phase):
                    if phase == "after_hello":
                        with socket.create_connection(("127.0.0.1", self.pod.port), 5) as s:
                            s.sendall(hello)
                            dec = proto.Decoder()
                            got = []
                            while not got:
                                chunk = s.recv(4096)
                                self.assertTrue(chunk, "closed before WELCOME")
                                got += dec.feed(chunk)
                            self.assertIsInstance(got[0], proto.Welcome)
                            s.sendall(data)
                            frames, end, trailing = read_frames_until_close(s, 5)
                        frames = got[1:] + frames
                    else:
                        frames, end, trailing = raw_exchange(self.pod.port, data)
                    codes = [getattr(f, "code", None) for f in frames]
                    results[(v["name"], phase)] = codes
                    want = v["code"]
                    if (phase == "before_hello" and len(data) > 4
                            and data[4] in proto.V2_TYPES):
                        want = proto.UNKNOWN_TYPE
                    self.assert_err_close(frames, end, trailing, want,
                                          f"{v['name']} {phase}")
        self.assertTrue(self.pod.proc.alive())
        self.pod.client().ping()
        m = sidecar_metrics(self.pod)
        n_err = int(metric(m, "podrelay_protocol_errors_total"))
        figure("hostile.vectors", vectors=len(self.vectors["malformed"]),
               connections=len(results), protocol_errors_metric=n_err)
        self.assertEqual(n_err, 2 * len(self.vectors["malformed"]))

    def test_valid_frames_before_hello_get_103(self):
        frames_before = {
            "PUB": proto.encode_pub(1, "c", b"x"),
            "PUB_ff": proto.encode_pub(0, "c", b"x"),
            "SUB": proto.encode_sub(1, ["c"]),
            "UNSUB": proto.encode_unsub(1, []),
            "PSUB": proto.encode_psub(1, ["c*"]),
            "PUNSUB": proto.encode_punsub(1, []),
            "PING": proto.encode_ping(1),
            "OK(sidecar type)": proto.encode_ok(1),
            "WELCOME(sidecar type)": proto.encode_welcome(b"v", b"n"),
        }
        sub = self.pod.client()
        sub.subscribe("c")
        for name, data in frames_before.items():
            with self.subTest(frame=name):
                # the frame plus a valid HELLO after it: the HELLO must not rescue anything
                frames, end, trailing = raw_exchange(self.pod.port,
                                                     data + proto.encode_hello(b"late"))
                self.assert_err_close(frames, end, trailing, proto.HANDSHAKE_REQUIRED, name)
        self.expect_no_msg(sub, grace=0.3)  # the PUBs before HELLO published nothing

    def test_hello_version_4_and_0_get_104(self):
        for version in (4, 0, 0xFFFF):
            with self.subTest(version=version):
                frames, end, trailing = raw_exchange(
                    self.pod.port, proto.encode_hello(b"v", b"", version) + proto.encode_ping(7))
                self.assert_err_close(frames, end, trailing, proto.UNSUPPORTED_VERSION,
                                      f"version {version}")

    def test_second_hello_gets_106(self):
        c = self.pod.client(hello=False)
        c.send_raw(proto.encode_hello(b"a") + proto.encode_hello(b"b"))
        frames = c.read_until_closed(timeout=5)
        self.assertIsInstance(frames[0], proto.Welcome)
        self.assertEqual([(type(f), f.code) for f in frames[1:]],
                         [(proto.Err, proto.UNEXPECTED_FRAME)], frames)


class FloodTest(IntegrationCase):

    N = 3000

    def test_connection_flood_with_garbage(self):
        nofile = ensure_nofile(self.N + 1000)
        if nofile < self.N + 200:
            self.skipTest(f"RLIMIT_NOFILE {nofile} too low for {self.N} connections")
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-connections", "5000"])
        other = self.start_sidecar("other", redis)
        steady = Collector.connect(pod.port, ["tick"], name="steady")
        self.addCleanup(steady.close)
        redis.wait_numsub("podrelay:tick", 1)
        ticker = AckedPublisher.connect(other.port, "tick", "T", 20, 2000, 90, name="ticker")
        self.addCleanup(ticker.close)
        ticker.start()
        time.sleep(1.5)
        warm = pod.client()  # warm the code paths once
        warm.ping()
        warm.close()
        baseline = rss_kib(pod.proc.pid)
        peak = [baseline]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], rss_kib(pod.proc.pid))
                except Exception:  # noqa: BLE001
                    return
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        self.addCleanup(stop.set)

        rng = random.Random(7)
        garbage_kinds = [
            lambda: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            lambda: os.urandom(rng.randint(1, 300)),
            lambda: struct.pack(">I", 0xFFFFFFF0) + b"\x02",
            lambda: b"\x00\x00\x00\x00",
            lambda: proto.encode_pub(1, "tick", b"before hello"),
            lambda: proto.encode_hello(b"x", b"", 9),
            lambda: proto.encode_hello(b"x") + b"\x00\x00\x00\x05\x99junk",
        ]

        def flood_round():
            socks = []
            refused = 0
            t_start = time.monotonic()
            try:
                for i in range(self.N):
                    try:
                        s = socket.create_connection(("127.0.0.1", pod.port), timeout=5)
                    except OSError:
                        refused += 1
                        continue
                    socks.append(s)
                    if i % 3 == 0:
                        data = garbage_kinds[i % len(garbage_kinds)]()
                    else:
                        data = (proto.encode_hello(b"flood%d" % i) +
                                proto.encode_sub(1, [b"flood%d" % (i % 50)]))
                    try:
                        s.sendall(data)
                    except OSError:
                        pass
                t_open = time.monotonic() - t_start
                time.sleep(2.0)
                open_now = metric(sidecar_metrics(pod), "podrelay_app_connections")
                mid_rss = rss_kib(pod.proc.pid)
            finally:
                for s in socks:
                    try:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                    s.close()
            # the daemon sees every close
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if metric(sidecar_metrics(pod), "podrelay_app_connections") <= 1:
                    break
                time.sleep(0.1)
            time.sleep(2.0)
            return len(socks), refused, t_open, open_now, mid_rss, rss_kib(pod.proc.pid)

        t0 = time.monotonic()
        n1, refused1, t_open, open_now, mid_rss, after1 = flood_round()
        n2, refused2, _, _, _, after = flood_round()
        t_closed = time.monotonic()
        refused = refused1 + refused2
        stop.set()
        sampler.join(2)
        ticker.stop_sending()
        self.assertEqual(ticker.wait_answered(10), [])
        self.assertTrue(steady.wait_for(lambda c: len(c.msgs) >= ticker.counts()["ok"], 5))
        self.assertTrue(pod.proc.alive(), "daemon died during the flood")
        m = sidecar_metrics(pod)
        self.assertLessEqual(metric(m, "podrelay_app_connections"), 1)
        c = ticker.counts()
        self.assertEqual(c["ok"], c["sent"], c)
        want = [ticker.payload(s) for s in sorted(ticker.sent)]
        self.assertEqual(steady.payloads(), want, "the steady subscriber lost messages")
        times = [t for _, _, t in steady.msgs]
        gaps = [b - a for a, b in zip(times, times[1:])]
        max_gap = max(gaps)
        window = [b - a for a, b, in zip(times, times[1:]) if t0 <= a <= t_closed + 1]
        # Served during the flood, not only after it: ticks arrived while the flood rounds
        # ran (a count, not a time bound: max_gap is printed as a figure, since this shared
        # machine can stall any process for a second).
        during = [t for t in times if t0 <= t <= t_closed]
        self.assertGreater(len(during), 0, "the steady subscriber got nothing during the flood")
        self.assertEqual(redis.numsub("podrelay:flood0"), 0, "flood subscriptions leaked")
        redis.wait_numsub("podrelay:tick", 1)
        errors = metric(m, "podrelay_protocol_errors_total")
        figure("hostile.flood", rounds=2, connections_per_round=n1, connect_refused=refused,
               open_seconds=t_open, app_connections_gauge_during=int(open_now),
               protocol_errors=int(errors), rss_baseline_kib=baseline, rss_during_kib=mid_rss,
               rss_peak_kib=peak[0], rss_after_round1_kib=after1, rss_after_round2_kib=after,
               ticks=len(want),
               max_gap_s=max_gap, max_gap_during_flood_s=max(window) if window else None)
        self.assertEqual(refused, 0)
        self.assertGreaterEqual(errors, 2 * (self.N // 3) - 40)
        if os.environ.get("PODRELAY_SANITIZED") == "1":
            # ASan keeps freed memory in its quarantine, so RSS says nothing about leaks
            # here; scripts/test.sh runs this file again against the release build.
            print("    RSS checks skipped: sanitized build (PODRELAY_SANITIZED=1)")
            return
        # The leak check: a second flood of the same size must reuse what the first left.
        self.assertLess(after, after1 + 2 * 1024, "RSS grows with every flood: a leak")
        # Measured: about 8 MiB of the ~13 MiB the flood took stays with the process (about
        # 2.7 KiB per peak connection; malloc_trim cannot return it, so pages stay pinned by
        # live allocations). It is reused by later connections, as the check above shows.
        # This bound catches anything per-connection that is not released at all.
        self.assertLess(after, baseline + 12 * 1024,
                        f"RSS after the flood {after} KiB vs baseline {baseline} KiB")


class MaxConnectionsTest(IntegrationCase):

    def test_eleventh_connection_refused_with_402(self):
        redis = self.start_redis()
        pod = self.start_sidecar("pod", redis, ["--max-connections", "10"])
        clients = [pod.client() for _ in range(10)]
        s = socket.create_connection(("127.0.0.1", pod.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(proto.encode_hello(b"eleventh"))
        frames, end, trailing = read_frames_until_close(s, 5)
        self.assertEqual([(type(f), getattr(f, "code", None)) for f in frames],
                         [(proto.Goaway, proto.TOO_MANY_CONNECTIONS)], frames)
        self.assertIn(end, ("eof", "reset"))
        m = sidecar_metrics(pod)
        self.assertEqual(metric(m, "podrelay_app_connections_refused_total"), 1)
        self.assertEqual(metric(m, "podrelay_app_connections_refused_total",
                                reason="too_many_connections"), 1)
        for c in clients:
            c.ping()
        clients[0].close()
        deadline = time.monotonic() + 5
        while True:
            try:
                pod.client(timeout=2).ping()
                break
            except Exception:  # noqa: BLE001
                self.assertLess(time.monotonic(), deadline, "no slot freed after a close")
                time.sleep(0.1)
        figure("hostile.max_connections", limit=10,
               refused_metric=metric(m, "podrelay_app_connections_refused_total"))



class FakeRedis:
    """Speaks just enough RESP to be taken for Redis (or for a sentinel) by a sidecar, on a
    loopback port. The first command for which `endless_on(args)` holds is answered with a
    bulk string that never ends (bounded here: at most `max_bytes`, for at most
    `max_seconds`), as a broken or hostile server might; every other command gets a short
    plausible answer, and a sentinel query names this server as the master."""

    def __init__(self, endless_on, max_bytes: int = 256 << 20, max_seconds: float = 20):
        self.endless_on = endless_on
        self.max_bytes, self.max_seconds = max_bytes, max_seconds
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.endless_sent = 0  # bytes of the endless reply the sidecar took
        self.endless_started = False
        self.trigger = ""  # the command answered with the endless reply
        self.endless_done = threading.Event()
        self.commands = []  # every command's verb, in order, for failure messages
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=5)
        self.listener.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    @staticmethod
    def _commands(buf: bytearray):
        """Whole RESP arrays of bulk strings at the front of `buf`, taken out of it."""
        out = []
        while True:
            if not buf.startswith(b"*"):
                return out
            pos, args = 0, []
            eol = buf.find(b"\r\n")
            if eol < 0:
                return out
            n, pos = int(buf[1:eol]), eol + 2
            for _ in range(n):
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return out
                size = int(buf[pos + 1:eol])
                if len(buf) < eol + 2 + size + 2:
                    return out
                args.append(bytes(buf[eol + 2:eol + 2 + size]))
                pos = eol + 2 + size + 2
            del buf[:pos]
            out.append(args)

    @staticmethod
    def _recv(conn: socket.socket):
        """What arrived; None when nothing did within the timeout; b"" once closed."""
        try:
            return conn.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""

    def _answer(self, args) -> bytes:
        verb = b" ".join(a.upper() for a in args[:2])
        if args[0].upper() == b"PUBLISH":
            return b":0\r\n"
        if args[0].upper() == b"PING":
            return b"+PONG\r\n"
        if verb == b"CLIENT ID":
            return b":1\r\n"
        if args[0].upper() == b"ROLE":
            return b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
        if verb == b"SENTINEL GET-MASTER-ADDR-BY-NAME":
            port = str(self.port).encode()
            return b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n" % (len(port), port)
        return b"+OK\r\n"

    def _serve(self, conn: socket.socket):
        conn.settimeout(0.2)
        buf = bytearray()
        with conn:
            while not self.stopping:
                data = self._recv(conn)
                if data == b"":
                    return
                buf += data or b""
                for args in self._commands(buf):
                    self.commands.append(b" ".join(args[:2]).decode(errors="replace"))
                    if not self.endless_started and self.endless_on(args):
                        self.endless_started = True
                        self.trigger = self.commands[-1]
                        self._endless(conn)
                        return
                    conn.sendall(self._answer(args))

    def _endless(self, conn: socket.socket):
        conn.settimeout(1.0)
        chunk = b"x" * 65536
        deadline = time.monotonic() + self.max_seconds
        try:
            conn.sendall(b"$1073741824\r\n")
            while self.endless_sent < self.max_bytes and time.monotonic() < deadline:
                try:
                    self.endless_sent += conn.send(chunk)
                except socket.timeout:
                    continue
        except OSError:
            pass  # the sidecar dropped the connection
        finally:
            self.endless_done.set()


def command_is(*words: bytes):
    """A FakeRedis trigger: the command starts with these words (any case)."""
    return lambda args: [a.upper() for a in args[:len(words)]] == list(words)


class HostileRedisTest(IntegrationCase):
    """A reply larger than anything the command it answers can get back drops that
    connection at once, on every kind of Redis connection the sidecar makes; the sidecar
    stays up and tries again. Before, each was buffered whole (until a health check's
    timeout, or without end where none applies), at the rate the peer sent it."""

    MiB = 1 << 20
    SLACK = 32 << 20  # what the kernel's socket buffers may hold on top of the limit

    def cut_off(self, endless_on, url_scheme: str = "redis", path: str = "",
                extra=(), wait_ready: bool = True):
        fake = FakeRedis(endless_on)
        self.addCleanup(fake.stop)
        pod = Sidecar(self, "pod", f"{url_scheme}://127.0.0.1:{fake.port}{path}",
                      extra_args=list(extra)).start(wait_ready=False)
        self.assertTrue(fake.endless_done.wait(20), fake.commands)
        return fake, pod

    def assert_cut(self, fake, pod, limit: int, needle: str):
        self.assertLess(fake.endless_sent, limit + self.SLACK, fake.endless_sent)
        wait_for(lambda: f"a reply of more than {limit} bytes" in daemon_output(pod.proc), 10,
                 what="the log line that names the limit")
        self.assertIn(needle, daemon_output(pod.proc))
        self.assertTrue(pod.proc.alive())
        figure("hostile.endless_reply", limit_bytes=limit, taken_before_drop_bytes=fake.endless_sent,
               trigger=repr(fake.trigger))

    def test_a_reply_without_end_on_the_publisher_connection_is_cut_off(self):
        # The publisher asks for an integer; a reply of hundreds of MiB is no answer to that.
        fake = FakeRedis(command_is(b"PUBLISH"))
        self.addCleanup(fake.stop)
        pod = Sidecar(self, "pod", f"redis://127.0.0.1:{fake.port}").start()
        c = pod.client()
        c.send_raw(proto.encode_pub(7, "x", b"payload"))
        f = c.recv_frame(timeout=20)
        self.assertTrue(fake.endless_done.wait(20))
        self.assertEqual((type(f), f.request_id, getattr(f, "code", None)),
                         (proto.Err, 7, proto.OUTCOME_UNKNOWN), f)
        self.assert_cut(fake, pod, self.MiB, "redis protocol error role=publisher")
        # The sidecar stays up and reconnects; the next publish is answered.
        pod.wait_ready()
        c.publish("x", b"again", timeout=10)

    def test_a_reply_without_end_in_the_handshake_is_cut_off(self):
        # CLIENT SETNAME gets OK back; the connection that got the endless reply is
        # retried, and the pod becomes ready.
        fake, pod = self.cut_off(command_is(b"CLIENT", b"SETNAME"))
        self.assert_cut(fake, pod, self.MiB, "redis unreachable, retrying")
        pod.wait_ready()

    def test_a_reply_without_end_on_the_stream_reader_connection_is_cut_off(self):
        # The durable channels' reader asks CLIENT ID first: an integer.
        fake, pod = self.cut_off(command_is(b"CLIENT", b"ID"),
                                 extra=["--durable", "room:*"])
        self.assert_cut(fake, pod, self.MiB, "redis protocol error role=stream-reader")
        wait_for(lambda: command_count(fake, "CLIENT ID") >= 2, 10, what="CLIENT ID again")  # reconnected
        pod.wait_ready()

    def test_a_reply_without_end_to_the_sentinel_query_is_cut_off(self):
        fake, pod = self.cut_off(command_is(b"SENTINEL"), "redis-sentinel", "/mymaster")
        self.assert_cut(fake, pod, self.MiB, "protocol error from 127.0.0.1")
        pod.wait_ready()  # the next query is answered: this fake names itself the master

    def test_a_reply_without_end_on_the_sentinel_watch_is_cut_off(self):
        # The +switch-master subscription gets confirmations and events, all small.
        fake, pod = self.cut_off(command_is(b"SUBSCRIBE", b"+SWITCH-MASTER"), "redis-sentinel",
                                 "/mymaster")
        self.assert_cut(fake, pod, self.MiB, "redis protocol error role=sentinel")
        wait_for(lambda: command_count(fake, "SUBSCRIBE +switch-master") >= 2, 10, what="SUBSCRIBE +switch-master again")

    def test_a_reply_without_end_to_the_cluster_topology_query_is_cut_off(self):
        # CLUSTER SLOTS is bounded at 64 MiB: a few hundred bytes per node.
        fake, pod = self.cut_off(command_is(b"CLUSTER", b"SLOTS"), "redis-cluster")
        self.assert_cut(fake, pod, 64 * self.MiB, "cannot read the cluster topology")
        wait_for(lambda: command_count(fake, "CLUSTER SLOTS") >= 2, 10, what="CLUSTER SLOTS again")  # retried


def command_count(fake: FakeRedis, command: str) -> int:
    return sum(1 for c in fake.commands if c.upper() == command.upper())


if __name__ == "__main__":
    unittest.main()
