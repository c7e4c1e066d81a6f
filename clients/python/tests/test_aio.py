"""Live tests of the asyncio client (podrelay.aio) against real processes: one
redis-server and two podrelay sidecars (A and B) on free loopback ports, fresh per test.

The sidecar is ``$PODRELAY_BIN`` or ``<repo>/build/bin/podrelay``; the tests are skipped
when it or redis-server is missing, unless ``PODRELAY_REQUIRE_LIVE=1``. Every wait is
bounded; every process is killed in tearDown.
"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # clients/python
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

from podrelay import aio  # noqa: E402
from podrelay import protocol as p  # noqa: E402

PODRELAY_BIN = os.environ.get("PODRELAY_BIN", os.path.join(REPO, "build", "bin", "podrelay"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REQUIRE_LIVE = os.environ.get("PODRELAY_REQUIRE_LIVE") == "1"
WAIT = 10.0  # upper bound of any single wait in these tests


def _binaries_present() -> bool:
    # the sidecar may be rebuilt while tests run: give it a moment to reappear
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if os.access(PODRELAY_BIN, os.X_OK) and os.access(REDIS_SERVER, os.X_OK):
            return True
        time.sleep(0.25)
    return False


_used_ports = set()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1.0) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def poll(pred, timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Sidecar:
    def __init__(self, name: str, redis_port: int, logdir: str, drain_timeout: float = 2):
        self.name = name
        self.drain_timeout = drain_timeout
        self.port = free_port()
        self.admin_port = free_port()
        self.redis_port = redis_port
        self.unix_path = os.path.join(logdir, f"{name}.sock")
        self.log = os.path.join(logdir, f"{name}.log")
        self.proc = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Sidecar":
        argv = [PODRELAY_BIN, "--listen", self.address, "--listen", f"unix:{self.unix_path}",
                "--redis", f"redis://127.0.0.1:{self.redis_port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}",
                "--drain-timeout", str(self.drain_timeout),
                "--durable", "durable:*"]  # only the durable tests use such names
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        poll(lambda: self.proc.poll() is None and http_status(self.admin_port, "/readyz") == 200,
             what=f"sidecar {self.name} /readyz")
        return self

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@unittest.skipUnless(REQUIRE_LIVE or _binaries_present(),
                     "podrelay binary or redis-server missing")
class AioLiveTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="podrelay-aio-")
        self.procs = []
        self.redis_port = free_port()
        self._start_redis()
        self.addCleanup(self._stop_all)
        self.a = Sidecar("a", self.redis_port, self.tmp)
        self.b = Sidecar("b", self.redis_port, self.tmp)
        self.procs += [self.a, self.b]
        self.a.start()
        self.b.start()

    def _start_redis(self) -> None:
        with open(os.path.join(self.tmp, "redis.log"), "ab") as log:
            self.redis = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.tmp],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        poll(lambda: tcp_open(self.redis_port), what="redis-server")

    def _kill_redis(self) -> None:
        self.redis.kill()
        self.redis.wait(timeout=5)

    def _redis_publish_calls(self) -> int:
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "INFO", "commandstats"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        for line in out.splitlines():
            if line.startswith("cmdstat_publish:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def _stop_all(self):
        for s in self.procs:
            s.kill()
        if self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(timeout=5)
        if not getattr(getattr(self, "_outcome", None), "success", True):
            for name in sorted(os.listdir(self.tmp)):
                if name.endswith(".log"):
                    with open(os.path.join(self.tmp, name), "rb") as f:
                        sys.stderr.write(f"--- {name}\n{f.read()[-4000:].decode(errors='replace')}\n")
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def client(self, sidecar: Sidecar, **kw) -> aio.Client:
        kw.setdefault("client_name", "test-aio")
        kw.setdefault("reconnect_max_delay", 0.5)
        c = await asyncio.wait_for(aio.connect(sidecar.address, **kw), WAIT)
        self.addAsyncCleanup(c.close, 2.0)
        return c

    # --- tests -----------------------------------------------------------------------
    async def test_publish_on_a_reaches_subscriber_on_b(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b)
        self.assertNotEqual(ca.server_info.node_id, cb.server_info.node_id)
        got = asyncio.Queue()
        await cb.subscribe("room:1", lambda payload, ch, pat: got.put_nowait((payload, ch, pat)))
        self.assertIsNone(await ca.publish("room:1", "hello from a"))
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT),
                         (b"hello from a", b"room:1", None))
        # a publisher subscribed to its own channel gets its own message too (via Redis)
        mine = asyncio.Queue()
        await ca.subscribe(["room:1"], lambda pl, ch, pat: mine.put_nowait(pl))
        await cb.publish("room:1", b"from b")
        self.assertEqual(await asyncio.wait_for(mine.get(), WAIT), b"from b")
        self.assertEqual((await asyncio.wait_for(got.get(), WAIT))[0], b"from b")

    async def test_publish_without_echo_needs_version_3_and_skips_only_the_sender(self):
        with self.assertRaises(ValueError):
            await (await self.client(self.a)).publish("room:x", b"x", echo=False)
        ca = await self.client(self.a, protocol_version=3)
        self.assertEqual(ca.server_info.version, 3)
        cb = await self.client(self.b)
        mine, theirs = asyncio.Queue(), asyncio.Queue()
        await ca.subscribe("room:x", lambda pl, ch, pat: mine.put_nowait(pl))
        await cb.subscribe("room:x", lambda pl, ch, pat: theirs.put_nowait(pl))
        await ca.publish("room:x", b"not back to me", echo=False)
        await ca.publish("room:x", b"back to me")  # echo on: comes back, after the first
        self.assertEqual(await asyncio.wait_for(theirs.get(), WAIT), b"not back to me")
        self.assertEqual(await asyncio.wait_for(theirs.get(), WAIT), b"back to me")
        self.assertEqual(await asyncio.wait_for(mine.get(), WAIT), b"back to me")
        self.assertTrue(mine.empty())

    async def test_async_handler_order_and_publish_from_handler(self):
        ca = await self.client(self.a)
        # max_dispatch_bytes=1: the read gate is always closed while a message waits for
        # its handler; a handler awaiting its own acked publish must still get the OK.
        cb = await self.client(self.b, max_dispatch_bytes=1)
        errors = []
        cb.on("error", errors.append)
        seen = []
        done = asyncio.Event()

        async def handler(payload, channel, pattern):
            await asyncio.sleep(0)  # an async handler is awaited before the next message
            seen.append(payload)
            # a handler may await the client itself (acked publish) without deadlock
            await cb.publish("echo", payload)

        echoes = []

        def on_echo(payload, channel, pattern):
            echoes.append(payload)
            if len(echoes) == 50:
                done.set()

        await ca.subscribe("echo", on_echo)
        await cb.subscribe("ordered", handler)
        for i in range(50):
            await ca.publish("ordered", str(i), ack=(i % 2 == 0))
        await asyncio.wait_for(done.wait(), WAIT)
        self.assertEqual(seen, [str(i).encode() for i in range(50)])
        self.assertEqual(echoes, seen)

        # a handler that raises is reported on "error"; delivery goes on
        def broken(payload, channel, pattern):
            raise ValueError("handler bug")

        await cb.subscribe("broken", broken)
        await cb.subscribe("broken", lambda pl, ch, pat: done.clear())
        await ca.publish("broken", "x")
        await asyncio.wait_for(self._until(lambda: not done.is_set()), WAIT)
        self.assertEqual([type(e) for e in errors], [ValueError])

    async def test_psubscribe(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b)
        got = asyncio.Queue()
        await cb.psubscribe("news.*", lambda pl, ch, pat: got.put_nowait((pl, ch, pat)))
        await ca.publish("sport", "not matched")
        await ca.publish("news.tech", "matched")
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT),
                         (b"matched", b"news.tech", b"news.*"))
        # channel + matching pattern: delivered once per subscription
        both = asyncio.Queue()
        await cb.subscribe("news.tech", lambda pl, ch, pat: both.put_nowait(("ch", pat)))
        await ca.publish("news.tech", "twice")
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT),
                         (b"twice", b"news.tech", b"news.*"))
        self.assertEqual(await asyncio.wait_for(both.get(), WAIT), ("ch", None))
        await cb.punsubscribe("news.*")
        await ca.publish("news.tech", "third")
        self.assertEqual(await asyncio.wait_for(both.get(), WAIT), ("ch", None))
        self.assertTrue(got.empty())
        with self.assertRaises(aio.PodrelayError) as cm:
            await cb.psubscribe("", lambda *a: None)
        self.assertEqual(cm.exception.code, p.INVALID_ARGUMENT)

    async def test_unsubscribe_stops_delivery(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b)
        got = asyncio.Queue()
        h1 = lambda pl, ch, pat: got.put_nowait(("h1", pl))  # noqa: E731
        h2 = lambda pl, ch, pat: got.put_nowait(("h2", pl))  # noqa: E731
        await cb.subscribe(["c1", "c2"], h1)
        await cb.subscribe("c1", h2)
        await ca.publish("c1", "1")
        first = {await asyncio.wait_for(got.get(), WAIT), await asyncio.wait_for(got.get(), WAIT)}
        self.assertEqual(first, {("h1", b"1"), ("h2", b"1")})
        await cb.unsubscribe("c1", h1)           # only that handler
        await ca.publish("c1", "2")
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), ("h2", b"2"))
        await cb.unsubscribe("c1")               # the channel
        await ca.publish("c1", "3")
        await ca.publish("c2", "4")              # still subscribed: a marker after "3"
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), ("h1", b"4"))
        await cb.unsubscribe()                   # everything
        await ca.publish("c2", "5")
        await cb.subscribe("marker", lambda pl, ch, pat: got.put_nowait(("m", pl)))
        await ca.publish("c2", "6")
        await ca.publish("marker", "end")
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), ("m", b"end"))
        self.assertTrue(got.empty())

    async def test_acked_publish_ping_and_fire_and_forget(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b)
        rtt = await ca.ping()
        self.assertGreaterEqual(rtt, 0.0)
        self.assertLess(rtt, WAIT)
        got = asyncio.Queue()
        await cb.subscribe("acks", lambda pl, ch, pat: got.put_nowait(pl))
        results = await asyncio.gather(*(ca.publish("acks", str(i)) for i in range(100)))
        self.assertEqual(results, [None] * 100)
        await asyncio.gather(*(ca.publish("acks", str(i), ack=False) for i in range(100, 200)))
        received = [await asyncio.wait_for(got.get(), WAIT) for _ in range(200)]
        self.assertEqual(received, [str(i).encode() for i in range(200)])
        self.assertEqual(ca.pending_bytes, 0)
        # a frame above the sidecar's limit is refused locally, the connection stays
        with self.assertRaises(aio.PodrelayError) as cm:
            await ca.publish("acks", b"x" * (ca.server_info.max_frame_bytes + 1))
        self.assertEqual((cm.exception.name, cm.exception.local), ("FRAME_TOO_LARGE", True))
        await ca.publish("acks", "still fine")
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), b"still fine")

    async def test_binary_payloads_and_unix_socket(self):
        ca = await self.client(self.a)
        cb = await asyncio.wait_for(aio.connect(f"unix:{self.b.unix_path}"), WAIT)
        self.addAsyncCleanup(cb.close, 2.0)
        got = asyncio.Queue()
        channel = b"bin\x00\xff\x80chan"
        await cb.subscribe(channel, lambda pl, ch, pat: got.put_nowait((pl, ch)))
        payloads = [bytes(range(256)), b"", b"\x00" * 1000, os.urandom(200_000),
                    "unicode \u00e9\u4e2d\U0001f600".encode("utf-8")]
        for pl in payloads:
            await ca.publish(channel, pl)
        for pl in payloads:
            self.assertEqual(await asyncio.wait_for(got.get(), WAIT), (pl, channel))

    async def test_reconnect_and_resubscribe_after_sigkill(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b)
        events = []
        cb.on("disconnect", lambda err: events.append("disconnect"))
        cb.on("connect", lambda w: events.append("connect"))
        got = asyncio.Queue()
        await cb.subscribe("life", lambda pl, ch, pat: got.put_nowait(pl))
        await cb.psubscribe("li*", lambda pl, ch, pat: got.put_nowait(b"p:" + pl))
        await ca.publish("life", "before")
        self.assertEqual({await asyncio.wait_for(got.get(), WAIT) for _ in range(2)},
                         {b"before", b"p:before"})
        old_node = cb.server_info.node_id

        await asyncio.to_thread(self.b.kill, signal.SIGKILL)
        await asyncio.wait_for(self._until(lambda: not cb.connected), WAIT)
        # a publish while the sidecar is away waits in the client's queue
        queued = asyncio.ensure_future(cb.publish("life", "queued while down"))
        await asyncio.sleep(0.2)
        self.assertFalse(queued.done())
        self.assertGreater(cb.pending_bytes, 0)

        await asyncio.to_thread(self.b.start)  # same port
        await asyncio.wait_for(queued, WAIT)
        self.assertNotEqual(cb.server_info.node_id, old_node)
        self.assertEqual({await asyncio.wait_for(got.get(), WAIT) for _ in range(2)},
                         {b"queued while down", b"p:queued while down"})
        await ca.publish("life", "after")
        self.assertEqual({await asyncio.wait_for(got.get(), WAIT) for _ in range(2)},
                         {b"after", b"p:after"})
        self.assertEqual(events, ["disconnect", "connect"])

    async def test_inflight_acked_publish_is_outcome_unknown_never_resent(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b)
        got = asyncio.Queue()
        await cb.subscribe("fate", lambda pl, ch, pat: got.put_nowait(pl))
        self.a.proc.send_signal(signal.SIGSTOP)  # the frame reaches the kernel, never an answer
        try:
            fut = asyncio.ensure_future(ca.publish("fate", "maybe"))
            await asyncio.wait_for(self._until(lambda: ca._inflight), WAIT)
            self.assertFalse(fut.done())
        finally:
            self.a.proc.send_signal(signal.SIGKILL)
            self.a.proc.send_signal(signal.SIGCONT)
            self.a.proc.wait(timeout=WAIT)
        with self.assertRaises(aio.PodrelayError) as cm:
            await asyncio.wait_for(fut, WAIT)
        self.assertEqual((cm.exception.code, cm.exception.name, cm.exception.local),
                         (p.OUTCOME_UNKNOWN, "OUTCOME_UNKNOWN", True))
        await asyncio.to_thread(self.a.start)
        await asyncio.wait_for(ca.ready(), WAIT)
        await ca.publish("fate", "next")
        # "maybe" was never re-sent: the first (and only) message is "next"
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), b"next")
        await asyncio.sleep(0.2)
        self.assertTrue(got.empty())

    async def test_bounded_queue_while_disconnected(self):
        ca = await self.client(self.a, max_pending_bytes=1000)
        await asyncio.to_thread(self.a.kill, signal.SIGKILL)
        await asyncio.wait_for(self._until(lambda: not ca.connected), WAIT)
        first = asyncio.ensure_future(ca.publish("q", b"x" * 600))
        await asyncio.sleep(0)
        with self.assertRaises(aio.PodrelayError) as cm:
            await ca.publish("q", b"y" * 600)
        self.assertEqual((cm.exception.code, cm.exception.local), (p.PUBLISH_BUFFER_FULL, True))
        await asyncio.to_thread(self.a.start)
        await asyncio.wait_for(first, WAIT)

    async def test_goaway_on_sidecar_shutdown_then_reconnect(self):
        cb = await self.client(self.b)
        goaways = []
        cb.on("goaway", goaways.append)
        got = asyncio.Queue()
        await cb.subscribe("g", lambda pl, ch, pat: got.put_nowait(pl))
        await asyncio.to_thread(self.b.kill, signal.SIGTERM)  # draining sidecar says GOAWAY SHUTTING_DOWN
        await asyncio.wait_for(self._until(lambda: goaways), WAIT)
        self.assertEqual(goaways[0].code, p.SHUTTING_DOWN)
        await asyncio.to_thread(self.b.start)
        await asyncio.wait_for(self._until(lambda: cb.connected), WAIT)
        ca = await self.client(self.a)
        await ca.publish("g", "after goaway")
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), b"after goaway")

    async def _drain_with_a_publish_held(self, redis_back: bool):
        """Redis down, an acked publish held by sidecar C, SIGTERM: the sidecar still owes
        its answer after GOAWAY, and the client must wait for it (PROTOCOL.md, GOAWAY)."""
        c = Sidecar("c", self.redis_port, self.tmp, drain_timeout=6).start()
        self.procs.append(c)
        cc = await self.client(c)
        states = []
        cc.on("goaway", lambda e: states.append(cc.state))
        await asyncio.to_thread(self._kill_redis)
        poll(lambda: http_status(c.admin_port, "/readyz") != 200, what="sidecar c not ready")
        held = asyncio.ensure_future(cc.publish("drain", "held"))
        await asyncio.wait_for(self._until(lambda: cc._inflight), WAIT)
        await asyncio.sleep(0.2)  # the sidecar has read it and holds it for Redis
        c.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self._until(lambda: states), WAIT)
        self.assertEqual(states, ["draining"])
        self.assertFalse(cc.connected)
        await asyncio.sleep(0.3)
        self.assertFalse(held.done(), "the client gave up on a publish the sidecar still owes")
        # A publish after GOAWAY is not written to the draining sidecar: it waits in the
        # client's queue for the next connection.
        later = asyncio.ensure_future(cc.publish("drain", "after goaway"))
        if redis_back:
            await asyncio.to_thread(self._start_redis)
            self.assertIsNone(await asyncio.wait_for(held, WAIT))  # OK: it reached Redis
        else:
            with self.assertRaises(aio.PodrelayError) as cm:
                await asyncio.wait_for(held, WAIT)
            # the sidecar's own answer at its drain timeout, not a client-side guess
            self.assertEqual((cm.exception.code, cm.exception.local), (p.DRAINING, False))
        self.assertEqual(await asyncio.to_thread(c.proc.wait, WAIT), 0)
        self.assertFalse(later.done())
        if not redis_back:
            await asyncio.to_thread(self._start_redis)
        await asyncio.to_thread(c.start)  # the next sidecar instance on the same address
        await asyncio.wait_for(later, WAIT)
        self.assertEqual(await asyncio.to_thread(self._redis_publish_calls),
                         2 if redis_back else 1)

    async def test_goaway_keeps_reading_until_the_held_publish_is_answered(self):
        await self._drain_with_a_publish_held(redis_back=True)

    async def test_goaway_then_the_sidecars_own_draining_nack(self):
        await self._drain_with_a_publish_held(redis_back=False)

    async def test_frames_up_to_the_sidecars_announced_limit_are_taken(self):
        # The sidecar announces its max frame size in WELCOME and may send frames up to it:
        # a smaller max_incoming_frame_bytes used to drop the connection (and the message).
        sub = await self.client(self.b, max_incoming_frame_bytes=4096)
        got = asyncio.get_running_loop().create_future()
        await sub.subscribe("big", lambda payload, ch, pat: got.done() or got.set_result(payload))
        pub = await self.client(self.a)
        await pub.publish("big", b"z" * 100_000)
        self.assertEqual(len(await asyncio.wait_for(got, WAIT)), 100_000)
        self.assertEqual(sub.state, "ready")

    async def test_refused_durable_subscriptions_leave_nothing_behind(self):
        v1 = await self.client(self.a, protocol_version=1)
        with self.assertRaises(ValueError):  # before: RSUB on a v1 connection, for ever
            await v1.subscribe_durable("room:x", lambda *a: None)
        c = await self.client(self.a)
        with self.assertRaises(aio.PodrelayError) as e:  # not durable on this sidecar
            await c.subscribe_durable("room:x", lambda *a: None, since=b"1-0", epoch=b"e")
        self.assertEqual(e.exception.name, "NOT_SUPPORTED")
        self.assertEqual(c.durable_positions, {})
        # One publish that can never fit the queue says so.
        small = await self.client(self.a, max_pending_bytes=100)
        with self.assertRaises(aio.PodrelayError) as e:
            await small.publish("c", b"x" * 200)
        self.assertIn("can never fit", e.exception.message)

    def _redis_numsub(self, channel: str) -> int:
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "PUBSUB", "NUMSUB",
                              "podrelay:" + channel],  # the sidecar's --channel-prefix
                             capture_output=True, text=True, timeout=5,
                             check=True).stdout.split()
        return int(out[1])

    async def test_a_cancelled_subscribe_leaves_no_subscription(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b)
        got = []
        await ca.subscribe("kept", lambda pl, ch, pat: got.append((ch, pl)))
        self.assertEqual(self._redis_numsub("kept"), 1)
        await asyncio.to_thread(self.a.kill, signal.SIGKILL)
        await asyncio.wait_for(self._until(lambda: not ca.connected), WAIT)
        # The app bounds its subscribe with a timeout while the sidecar is away.
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(
                ca.subscribe("given-up", lambda pl, ch, pat: got.append((ch, pl))), 0.2)
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(ca.psubscribe("given-up:*", lambda *a: got.append(a)), 0.2)
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(
                ca.subscribe_durable("durable:given-up", lambda *a: got.append(a)), 0.2)
        self.assertNotIn(b"durable:given-up", ca.durable_positions)
        await asyncio.to_thread(self.a.start)
        await asyncio.wait_for(ca.ready(), WAIT)
        await ca.ping()  # the queued SUBs and their UNSUBs are through
        for ch in ("given-up", "given-up:1", "durable:given-up", "kept"):
            await cb.publish(ch, b"x")
        await asyncio.wait_for(self._until(lambda: got), WAIT)
        await asyncio.sleep(0.2)
        self.assertEqual(got, [(b"kept", b"x")])
        self.assertEqual((self._redis_numsub("given-up"), self._redis_numsub("kept")), (0, 1))

    async def test_a_cancelled_queued_publish_frees_its_room_and_is_never_sent(self):
        ca = await self.client(self.a, max_pending_bytes=1000)
        cb = await self.client(self.b)
        got = asyncio.Queue()
        await cb.subscribe("q", lambda pl, ch, pat: got.put_nowait(pl))
        await asyncio.to_thread(self.a.kill, signal.SIGKILL)
        await asyncio.wait_for(self._until(lambda: not ca.connected), WAIT)
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(ca.publish("q", b"x" * 600), 0.1)
        self.assertEqual(ca.pending_bytes, 0)
        second = asyncio.ensure_future(ca.publish("q", b"y" * 600))  # room again
        await asyncio.sleep(0)
        await asyncio.to_thread(self.a.start)
        await asyncio.wait_for(second, WAIT)
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), b"y" * 600)
        await ca.publish("q", b"last")
        self.assertEqual(await asyncio.wait_for(got.get(), WAIT), b"last")

    async def test_client_timeouts_are_podrelay_errors_and_timeout_errors(self):
        ca = await self.client(self.a)
        await asyncio.to_thread(self.a.kill, signal.SIGKILL)
        await asyncio.wait_for(self._until(lambda: not ca.connected), WAIT)
        for call in (lambda: ca.ready(timeout=0.1), lambda: ca.ping(timeout=0.1)):
            with self.assertRaises(aio.PodrelayTimeout) as cm:
                await call()
            self.assertIsInstance(cm.exception, aio.PodrelayError)
            self.assertIsInstance(cm.exception, asyncio.TimeoutError)
            self.assertEqual((cm.exception.name, cm.exception.local), ("TIMEOUT", True))

    async def test_a_raising_handler_is_logged_with_its_traceback(self):
        ca = await self.client(self.a)

        def broken_handler(pl, ch, pat):
            raise RuntimeError("bug in the app")

        await ca.subscribe("boom", broken_handler)
        with self.assertLogs("podrelay.aio", level="ERROR") as logs:
            await ca.publish("boom", b"x")
            await asyncio.wait_for(self._until(lambda: logs.records), WAIT)
        rec = logs.records[0]
        self.assertIsNotNone(rec.exc_info)
        self.assertIs(rec.exc_info[0], RuntimeError)
        self.assertIn("broken_handler", "".join(logs.output))

    async def test_slow_handlers_do_not_make_the_keepalive_give_up(self):
        ca = await self.client(self.a)
        cb = await self.client(self.b, ping_interval=0.1, ping_timeout=0.2,
                               max_dispatch_bytes=8 * 1024)
        drops = []
        cb.on("disconnect", drops.append)
        got = []

        async def slow(pl, ch, pat):
            await asyncio.sleep(0.01)
            got.append(pl)

        await cb.subscribe("slow", slow)
        n = 120  # about 1.2 s of backlog: six times ping_timeout
        for i in range(n):
            await ca.publish("slow", i.to_bytes(4, "big") * 256, ack=False)
        await ca.ping()
        await asyncio.wait_for(self._until(lambda: len(got) == n or drops), WAIT)
        self.assertEqual(drops, [])
        self.assertEqual(got, [i.to_bytes(4, "big") * 256 for i in range(n)])

    async def test_connect_failure_and_close(self):
        port = free_port()  # nothing listens there
        with self.assertRaises(aio.PodrelayError) as cm:
            await aio.connect(f"127.0.0.1:{port}", timeout=0.5)
        self.assertEqual(cm.exception.name, "TIMEOUT")
        c = await aio.connect(self.a.address, reconnect=False)
        await c.close()
        with self.assertRaises(aio.PodrelayError) as cm:
            await c.publish("x", "y")
        self.assertEqual(cm.exception.name, "CLIENT_CLOSED")

    @staticmethod
    async def _until(pred, interval: float = 0.02):
        while not pred():
            await asyncio.sleep(interval)


if __name__ == "__main__":
    unittest.main()
