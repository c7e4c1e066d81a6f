"""Durable channels (--durable, protocol version 2) against real redis-server processes on
AOF (appendfsync always, so an acked publish is on disk) and real sidecars: at-least-once
across Redis SIGKILLs, recovery after an app reconnect to the same or another pod, the
"not recovered" answers, version 1 clients and bad input, one reader connection for many
channels, idle expiry, the CLI and the asyncio client's own recovery.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Dict, List, Optional

from harness import (PODRELAY_BIN, REDIS_SERVER, Client, IntegrationCase, Proc, Redis,
                     ServerError, Sidecar, proto, wait_for)

from podrelay import aio  # noqa: E402  (harness put clients/python on sys.path)

DURABLE = ["--durable", "room:*", "--publish-buffer-timeout", "8"]


class AofRedis(Redis):
    """A redis-server that keeps its data in an AOF fsynced on every write; restartable on
    the same port and directory after a SIGKILL."""

    def start(self, timeout: float = 10.0) -> "AofRedis":
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir]
        self.proc = self.case.track(Proc(self.name, argv, self.case.tmpdir, cwd=self.dir))
        wait_for(self._pong, timeout, what=f"{self.name} on port {self.port} to answer PING")
        return self


def v2(pod, name: str = "v2") -> Client:
    c = pod.case.track_client(Client(pod.addr, hello=False, timeout=15))
    c.hello(name, version=2)
    return c


def smsgs(c: Client, n: int, timeout: float = 15.0) -> List[proto.Smsg]:
    out: List[proto.Smsg] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        m = c.recv_smsg(timeout=max(0.0, deadline - time.monotonic()))
        if m is None:
            break
        out.append(m)
    return out


class DurableLoad:
    """Acked durable publishes from a thread until stopped: payloads `tag` + 6 digits, at most
    `limit`, `pause` s apart. Keeps the acked payloads in order and the nacks per error code."""

    def __init__(self, client: Client, channel: str, tag: bytes, limit: int, timeout: float,
                 pause: float):
        self.acked: List[bytes] = []
        self.nacked: Dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(client, channel, tag, limit, timeout, pause), daemon=True)

    def start(self) -> "DurableLoad":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self, client, channel, tag, limit, timeout, pause) -> None:
        for i in range(limit):
            if self._stop.is_set():
                return
            payload = tag + b"%06d" % i
            try:
                client.publish_durable(channel, payload, timeout=timeout)
                self.acked.append(payload)
            except ServerError as e:
                self.nacked[e.code] = self.nacked.get(e.code, 0) + 1
            time.sleep(pause)


class DurableCase(IntegrationCase):
    def start_pods(self, n: int = 2, extra=()):
        self.redis = AofRedis(self).start()
        return [self.start_sidecar(f"pod-{i}", self.redis, [*DURABLE, *extra])
                for i in range(n)]


class TestDurableAcrossRedisKills(DurableCase):
    def test_every_acked_message_reaches_every_pod_once_in_order(self):
        pods = self.start_pods(2)
        subs = [v2(p, f"sub-{i}") for i, p in enumerate(pods)]
        for s in subs:
            self.assertEqual(s.resume("room:kills").recovered, 1)
        load = DurableLoad(v2(pods[0], "pub"), "room:kills", b"m", 5000, 15, 0.002).start()
        acked = load.acked
        try:
            for _ in range(5):  # the five-kills test of test_outages, on a durable channel
                wait_for(lambda: len(acked) > 0, 20, what="acked publishes")
                time.sleep(0.4)
                self.redis.kill()
                time.sleep(0.3)
                self.redis = AofRedis(self, port=self.redis.port).start()
                before = len(acked)
                wait_for(lambda: len(acked) > before + 20, 30,
                         what="publishes acked after the restart")
        finally:
            load.stop()
        self.assertFalse(load.running())
        self.assertGreater(len(acked), 100)
        want = set(acked)
        for i, s in enumerate(subs):
            got: List[bytes] = []
            deadline = time.monotonic() + 30
            while not want.issubset(got) and time.monotonic() < deadline:
                m = s.recv_smsg(timeout=1)
                if m is not None:
                    got.append(m.payload)
            with self.subTest(pod=i):
                missing = want.difference(got)
                self.assertEqual(missing, set(), f"pod {i} missed {len(missing)} acked")
                self.assertEqual(len(got), len(set(got)), "a message arrived twice")
                self.assertEqual(got, sorted(got), "out of order")
                self.assertEqual([g for g in got if g in want], acked)
        # Redis restarted five times, so the reader reconnected at least that often.
        _, text = pods[0].get("/metrics")
        self.assertRegex(text, r'podrelay_redis_reconnects_total\{role="stream-reader"\} ([5-9]|\d\d)')


class TestDurableRecovery(DurableCase):
    def test_reconnect_to_same_and_other_pod_gets_exactly_the_missed(self):
        a, b = self.start_pods(2)
        pub = v2(a, "pub")
        first = v2(a, "app")
        ok = first.resume("room:r")
        self.assertEqual(ok.recovered, 1)
        ids = [pub.publish_durable("room:r", b"a%d" % i) for i in range(5)]
        got = smsgs(first, 5)
        self.assertEqual([m.id for m in got], ids)
        epoch = self.redis.cli("GET", "podrelay:{room:r}:epoch").strip().encode()
        self.assertTrue(epoch)
        first.close()  # the app goes away ...
        missed = [pub.publish_durable("room:r", b"b%d" % i) for i in range(7)]
        payloads = [b"b%d" % i for i in range(7)]
        for pod in (a, b):  # ... and comes back, to its own pod or to another one
            with self.subTest(pod=pod.name):
                again = v2(pod, "app-again")
                ok = again.resume("room:r", ids[-1], epoch)
                self.assertEqual(ok.recovered, 1)
                self.assertEqual(ok.epoch, epoch)
                self.assertEqual(ok.last_id, missed[-1])
                replayed = [f for f in again.pending() if isinstance(f, proto.Smsg)]
                self.assertEqual([m.id for m in replayed], missed)
                self.assertEqual([m.payload for m in replayed], payloads)
                # and then live, with no duplicate
                live = pub.publish_durable("room:r", b"live-" + pod.name.encode())
                [m] = [x for x in smsgs(again, len(missed) + 1, timeout=10)
                       if x.id not in missed]
                self.assertEqual(m.id, live)
                missed.append(live)
                payloads.append(b"live-" + pod.name.encode())
                again.close()
        _, text = b.get("/metrics")
        self.assertIn('podrelay_durable_recoveries_total{outcome="recovered"} 1', text)

    def test_since_zero_replays_the_whole_untrimmed_history(self):
        a, b = self.start_pods(2)
        pub = v2(a, "pub")
        ids = [pub.publish_durable("room:z", b"z%d" % i) for i in range(6)]
        epoch = self.redis.cli("GET", "podrelay:{room:z}:epoch").strip().encode()
        c = v2(b, "newcomer")
        ok = c.resume("room:z", b"0-0", epoch)
        self.assertEqual(ok.recovered, 1, "nothing was trimmed: 0-0 is a full recovery")
        self.assertEqual(ok.last_id, ids[-1])
        replayed = [f for f in c.pending() if isinstance(f, proto.Smsg)]
        self.assertEqual([m.id for m in replayed], ids)
        self.assertEqual([m.payload for m in replayed], [b"z%d" % i for i in range(6)])
        live = pub.publish_durable("room:z", b"live")
        # pending() only looks: the replayed SMSGs are still queued ahead of the live one.
        self.assertEqual([m.id for m in smsgs(c, len(ids) + 1)], ids + [live])
        self.assertEqual(c.recv_smsg(timeout=0.3), None, "nothing is sent twice")

    def test_resume_during_live_publishes_has_no_gap_and_no_duplicate(self):
        # The replay and the live stream meet while messages keep arriving: every SMSG before
        # the RSUBOK is at or before its last_id, every one after is past it, and together
        # they are exactly the stream's entries after since_id (read back from Redis).
        a, b = self.start_pods(2, ["--durable-max-len", "1000000"])
        pub = v2(a, "pub")
        since = pub.publish_durable("room:live", b"seed")
        # A history long enough that its replay takes many XRANGE pages, so live entries
        # reach the sidecar's reader while it runs.
        pub.publish_many("room:live", [b"h%07d" % i for i in range(10_000)])
        pub.ping()
        stop = threading.Event()

        def load() -> None:  # fire-and-forget, ~2k msgs/s (an ASan build keeps up), bounded
            for n in range(0, 100_000, 20):
                if stop.is_set():
                    return
                pub.publish_many("room:live", [b"x%07d" % (n + i) for i in range(20)])
                time.sleep(0.01)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        self.addCleanup(lambda: (stop.set(), loader.join(timeout=10)))
        key = lambda i: tuple(int(x) for x in i.split(b"-"))  # noqa: E731
        for trial, pod in enumerate((a, b, a, b)):
            with self.subTest(trial=trial, pod=pod.name):
                c = v2(pod, "resumer")
                c.send_raw(proto.encode_rsub(c.next_request_id(), b"room:live", since, b""))
                before: List[bytes] = []
                after: List[bytes] = []
                ok: Optional[proto.RsubOk] = None
                while len(after) < 200:
                    f = c.recv_frame(timeout=15)
                    self.assertIsNotNone(f, "the resume stalled")
                    if isinstance(f, proto.RsubOk):
                        ok = f
                    elif isinstance(f, proto.Smsg):
                        (after if ok else before).append(f.id)
                    else:
                        self.fail(f"unexpected frame {f!r}")
                c.close()
                self.assertEqual(ok.recovered, 1)
                self.assertTrue(before, "nothing was replayed")
                self.assertLessEqual(key(before[-1]), key(ok.last_id))
                self.assertGreater(key(after[0]), key(ok.last_id))
                held = [line.encode() for line in self.redis.cli(
                    "XRANGE", "podrelay:{room:live}", "(" + since.decode(), "+",
                    "COUNT", str(len(before) + len(after))).split("\n")
                    if re.fullmatch(r"\d+-\d+", line)]
                self.assertEqual(before + after, held)

    def test_trimmed_history_and_recreated_stream_are_not_recovered(self):
        (a,) = self.start_pods(1, ["--durable-max-len", "10"])
        pub = v2(a, "pub")
        ids = [pub.publish_durable("room:t", b"x%d" % i) for i in range(400)]
        epoch = self.redis.cli("GET", "podrelay:{room:t}:epoch").strip().encode()
        with self.subTest("since older than the trimmed history"):
            c = v2(a, "old")
            ok = c.resume("room:t", ids[0], epoch)
            self.assertEqual(ok.recovered, 0)
            self.assertEqual(ok.epoch, epoch)
            self.assertEqual([f for f in c.pending() if isinstance(f, proto.Smsg)], [])
            c.close()
        with self.subTest("since 0-0 (the whole history) after a trim"):
            c = v2(a, "zero")
            ok = c.resume("room:t", b"0-0", epoch)
            self.assertEqual(ok.recovered, 0)
            c.close()
        with self.subTest("a recreated stream (keys deleted, as if Redis lost its data)"):
            self.redis.cli("DEL", "podrelay:{room:t}", "podrelay:{room:t}:epoch")
            new_id = pub.publish_durable("room:t", b"after")
            new_epoch = self.redis.cli("GET", "podrelay:{room:t}:epoch").strip().encode()
            self.assertNotEqual(new_epoch, epoch)
            c = v2(a, "recreated")
            ok = c.resume("room:t", ids[-1], epoch)
            self.assertEqual(ok.recovered, 0)
            self.assertEqual(ok.epoch, new_epoch)
            self.assertEqual(ok.last_id, new_id)
            c.close()
        _, text = a.get("/metrics")
        self.assertIn('podrelay_durable_recoveries_total{outcome="trimmed"} 2', text)
        self.assertIn('podrelay_durable_recoveries_total{outcome="epoch_changed"} 1', text)


    def test_subscribed_before_the_first_publish_tells_a_recreated_stream(self):
        # Found by a client written from the spec alone: an app whose RSUB came before the
        # stream existed got no epoch; the stream was lost and created anew while it was
        # away (as after --durable-ttl expiry, or Redis losing its data), and its resume was
        # answered recovered=1 with a message missing. Now the RSUB reserves the epoch the
        # first publish then takes, and an untrimmed stream never "holds" an older id.
        a, b = self.start_pods(2)
        pub = v2(a, "pub")
        keys = ("podrelay:{room:early}", "podrelay:{room:early}:epoch")
        early = v2(b, "early")
        ok = early.resume("room:early")
        self.assertEqual((ok.recovered, ok.last_id), (1, b"0-0"))
        self.assertTrue(ok.epoch, "a stream not written yet already has its epoch")
        reserved = ok.epoch
        self.assertEqual(v2(a, "second").resume("room:early").epoch, reserved,
                         "every RSUB before the first publish learns the same epoch")
        first = pub.publish_durable("room:early", b"m1")
        [m] = smsgs(early, 1)
        self.assertEqual((m.id, m.payload), (first, b"m1"))
        self.assertEqual(self.redis.cli("GET", keys[1]).strip().encode(), reserved,
                         "the publish that created the stream kept the reserved epoch")
        early.close()
        pub.publish_durable("room:early", b"m2")  # missed by the app ...
        self.redis.cli("DEL", *keys)               # ... and lost with the stream
        pub.publish_durable("room:early", b"m3")
        for epoch, outcome in ((reserved, "epoch_changed"), (b"", "unknown_id")):
            with self.subTest(epoch=epoch):
                c = v2(b, "back")
                ok = c.resume("room:early", first, epoch)
                self.assertEqual(ok.recovered, 0, f"m2 is gone: not a recovery ({outcome})")
                self.assertNotEqual(ok.epoch, reserved)
                c.close()
        with self.subTest("0-0 and the reserved epoch, after the stream came and went"):
            c = v2(b, "zero")
            self.assertEqual(c.resume("room:early", b"0-0", reserved).recovered, 0)
            c.close()
        _, text = b.get("/metrics")
        self.assertIn('podrelay_durable_recoveries_total{outcome="epoch_changed"} 2', text)
        self.assertIn('podrelay_durable_recoveries_total{outcome="unknown_id"} 1', text)

    def test_subscribed_before_the_first_publish_recovers_what_came_since(self):
        a, b = self.start_pods(2)
        pub = v2(a, "pub")
        with self.subTest("nothing published while away"):
            c = v2(b, "idle")
            ok = c.resume("room:quiet")
            c.close()
            again = v2(b, "idle-again")
            back = again.resume("room:quiet", ok.last_id, ok.epoch)
            self.assertEqual((back.recovered, back.epoch, back.last_id), (1, ok.epoch, b"0-0"))
            again.close()
        with self.subTest("published while away: the whole history is replayed"):
            c = v2(b, "away")
            ok = c.resume("room:away")
            c.close()
            ids = [pub.publish_durable("room:away", b"w%d" % i) for i in range(3)]
            again = v2(a, "away-again")
            back = again.resume("room:away", ok.last_id, ok.epoch)
            self.assertEqual((back.recovered, back.epoch, back.last_id), (1, ok.epoch, ids[-1]))
            replayed = [f for f in again.pending() if isinstance(f, proto.Smsg)]
            self.assertEqual([m.payload for m in replayed], [b"w0", b"w1", b"w2"])
            again.close()


class TestDurableReplayEdges(DurableCase):
    """Found by a client written from PROTOCOL.md alone (stop 38): a long replay that
    outran its reader, a resume racing live publishes, and a replay that Redis broke off."""

    def index(self, m) -> int:
        return int(m.payload[:6])

    def test_a_long_replay_goes_at_the_apps_pace_and_a_cut_ends_at_the_goaway(self):
        a, b = self.start_pods(2, ["--durable-max-len", "1000000", "--max-queue-bytes",
                                   "2097152"])
        pub = v2(a, "pub")
        first = pub.publish_durable("room:big", b"first")
        n = 4000
        for start in range(0, n, 500):  # paced by an acked one, within the publish buffer
            pub.publish_many("room:big", [b"%06d" % i + b"x" * 4090
                                          for i in range(start, start + 499)])
            pub.publish_durable("room:big", b"%06d" % (start + 499) + b"x" * 4090, timeout=30)
        self.assertEqual(self.redis.cli("XLEN", "podrelay:{room:big}").strip(), str(n + 1))
        # 16 MB of history through a 2 MiB queue: an app that keeps reading gets all of it
        # (before: the pages were queued as fast as Redis gave them and the app was cut off).
        reader = v2(b, "reader")
        reader.send_raw(proto.encode_rsub(1, "room:big", first, b""))
        got = []
        while True:
            f = reader.recv_frame(timeout=30)
            self.assertIsNotNone(f, f"the replay stalled after {len(got)} entries")
            if isinstance(f, proto.RsubOk):
                break
            self.assertIsInstance(f, proto.Smsg, f)
            got.append(self.index(f))
        self.assertEqual(got, list(range(n)))
        self.assertEqual(f.recovered, 1)
        # An app that stops reading pauses its replay: it is not cut off for what it asked
        # for (the queue stays under the soft limit), and gets the rest when it reads again.
        paused = v2(b, "paused")
        paused.send_raw(proto.encode_rsub(1, "room:big", first, b""))
        time.sleep(3)
        _, text = b.get("/metrics")
        self.assertIn("podrelay_slow_consumer_disconnects_total 0", text)
        got = [self.index(m) for m in smsgs(paused, n, timeout=30)]
        self.assertEqual(got, list(range(n)))
        self.assertIsInstance(paused.recv_frame(timeout=10), proto.RsubOk)
        # One that stops reading while live messages of another channel pile up is cut off,
        # and the GOAWAY is its last frame: the SMSGs before it have no hole (before: replay
        # pages could follow the GOAWAY, past the frames it had dropped).
        cut = v2(b, "cut")
        # A fixed receive buffer (no autotuning, which may grow to tcp_rmem's max) keeps what
        # the kernel holds for it well under the flood; 64 KiB, not less, so that reading
        # the tail after the cut is not slowed to the persist timer's pace.
        cut.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        cut.subscribe("flood", timeout=10)
        cut.send_raw(proto.encode_rsub(1, "room:big", first, b""))
        time.sleep(0.5)
        pub.publish_many("flood", [b"f" * 4096 for _ in range(3000)])
        try:
            frames = cut.read_until_closed(timeout=30)
        except TimeoutError:
            _, text = b.get("/metrics")
            self.fail("still open 30 s after the flood: " + " ".join(
                line for line in text.splitlines()
                if line.startswith(("podrelay_slow_consumer", "podrelay_messages_",
                                     "podrelay_publish_nacks"))))
        self.assertIsInstance(frames[-1], proto.Goaway, frames[-3:])
        self.assertEqual(frames[-1].code, proto.SLOW_CONSUMER)
        replayed = [f for f in frames[:-1] if isinstance(f, proto.Smsg)]
        self.assertTrue(all(isinstance(f, (proto.Smsg, proto.Msg, proto.Ok))
                            for f in frames[:-1]), frames[:3])
        self.assertEqual([self.index(f) for f in replayed], list(range(len(replayed))))
        self.assertLess(len(replayed), n)
        # Resuming from the last SMSG it got gives exactly the rest.
        again = v2(b, "again")
        again.send_raw(proto.encode_rsub(1, "room:big",
                                         replayed[-1].id if replayed else first, b""))
        rest = []
        while True:
            f = again.recv_frame(timeout=30)
            self.assertIsNotNone(f, "the second replay stalled")
            if isinstance(f, proto.RsubOk):
                break
            rest.append(self.index(f))
        self.assertEqual(f.recovered, 1)
        self.assertEqual(rest, list(range(len(replayed), n)))

    def test_a_resume_racing_the_first_publishes_misses_none(self):
        # RSUB "" on one pod while another pod publishes: every acked entry after the
        # RSUBOK's last_id arrives (before: an empty replay page that crossed the reader's
        # XREAD reply ended the replay, and the entry the reader had left to it was lost).
        a, b = self.start_pods(2)
        problems = []
        for trial in range(30):
            channel = f"room:race{trial}"
            pub, sub = v2(a, "pub"), v2(b, "sub")
            acked: List[bytes] = []

            def publish() -> None:
                for i in range(30):
                    acked.append(pub.publish_durable(channel, b"m%d" % i))

            t = threading.Thread(target=publish, daemon=True)
            if trial % 2:
                t.start()
            sub.send_raw(proto.encode_rsub(1, channel, b"", b""))
            if not trial % 2:
                t.start()
            frames = []
            ok = None
            while ok is None:
                f = sub.recv_frame(timeout=15)
                self.assertIsNotNone(f, "no RSUBOK")
                if isinstance(f, proto.RsubOk):
                    ok = f
                else:
                    frames.append(f)
            t.join(timeout=30)
            key = lambda i: tuple(int(x) for x in i.split(b"-"))  # noqa: E731
            replayed = [m.id for m in frames if isinstance(m, proto.Smsg)]
            self.assertTrue(all(key(i) <= key(ok.last_id) for i in replayed), (replayed, ok))
            want = [i for i in acked if key(i) > key(ok.last_id)]
            got = [m.id for m in smsgs(sub, len(want), timeout=5)]
            if got != want:
                problems.append((trial, ok.last_id, sorted(set(want) - set(got))[:3]))
            pub.close()
            sub.close()
        self.assertEqual(problems, [])

    def test_a_replay_that_redis_breaks_off_leaves_no_subscription_behind_a_gap(self):
        a, b = self.start_pods(2, ["--durable-max-len", "1000000"])
        pub = v2(a, "pub")
        first = pub.publish_durable("room:cut", b"first")
        for start in range(0, 20000, 1000):  # paced by an acked one, within the buffer
            pub.publish_many("room:cut", [b"%06d" % i + b"y" * 1018
                                          for i in range(start, start + 999)])
            pub.publish_durable("room:cut", b"%06d" % (start + 999) + b"y" * 1018, timeout=30)
        self.assertEqual(self.redis.cli("XLEN", "podrelay:{room:cut}").strip(), "20001")
        c = v2(b, "resumer")
        c.send_raw(proto.encode_rsub(1, "room:cut", first, b""))
        got = smsgs(c, 1000, timeout=30)
        self.assertEqual(len(got), 1000)
        self.redis.kill()  # mid-replay: the app has read 1,000 of 20,000
        err = None
        while err is None:
            f = c.recv_frame(timeout=30)
            self.assertIsNotNone(f, "the broken replay was never answered")
            if isinstance(f, proto.Smsg):
                got.append(f)
            else:
                err = f
        self.assertIsInstance(err, proto.Err, err)
        self.assertEqual(err.request_id, 1)
        self.assertTrue(300 <= err.code < 400, err)
        self.assertIn(b"not subscribed", err.message)
        self.assertEqual([self.index(m) for m in got], list(range(len(got))))
        self.redis = AofRedis(self, port=self.redis.port).start()
        b.wait_ready()
        a.wait_ready()
        # Not subscribed any more: a new publish does not arrive after the gap.
        late = pub.publish_durable("room:cut", b"late", timeout=30)
        self.assertIsNone(c.recv_frame(timeout=2))
        # Resuming from the last entry it got gives exactly the rest.
        ok = c.resume("room:cut", got[-1].id, b"", timeout=60)
        self.assertEqual(ok.recovered, 1)
        rest = [m.payload for m in smsgs(c, 20000, timeout=5)]
        self.assertEqual(len(got) + len(rest), 20001)
        self.assertEqual(rest[-1], b"late")
        self.assertEqual(ok.last_id, late)
        _, text = b.get("/metrics")
        self.assertIn('podrelay_durable_recoveries_total{outcome="failed"} 1', text)
        self.assertIn('podrelay_durable_recoveries_total{outcome="recovered"} 1', text)

    def test_a_stream_lives_at_least_durable_ttl_after_its_last_publish(self):
        (a,) = self.start_pods(1, ["--durable-ttl", "8"])
        pub = v2(a, "pub")
        pub.publish_durable("room:ttl", b"one")
        time.sleep(1.2)
        pub.publish_durable("room:ttl", b"two")  # not refreshed: within ttl/4 of the first
        for key in ("podrelay:{room:ttl}", "podrelay:{room:ttl}:epoch"):
            with self.subTest(key=key):
                # Before: 8 s after the first publish, 6.8 s after the last one.
                self.assertGreaterEqual(int(self.redis.cli("PTTL", key)), 8000 - 100)


class TestDurableRedisLosses(DurableCase):
    """When Redis itself loses acknowledged entries (no persistence, or an older snapshot),
    the pods whose reader had not read them cut their live subscribers off with GOAWAY
    STREAM_LOST, and resuming apps get recovered=0 (before: both went on silently)."""

    def start_plain(self):
        self.redis = Redis(self).start()
        return [self.start_sidecar(f"pod-{i}", self.redis, DURABLE) for i in range(2)]

    def frames_until_goaway(self, c, timeout: float = 30):
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = c.recv_frame(timeout=max(0.1, deadline - time.monotonic()))
            if f is None:
                continue
            got.append(f)
            if isinstance(f, proto.Goaway):
                return got
        self.fail(f"no GOAWAY within {timeout} s; got {got[-3:]}")

    def assert_new_epoch_and_no_recovery(self, a, b, channel: str, ok, since: bytes):
        """The stream got a new epoch, and an app resuming from `since` with the old one is
        told recovered=0 at either pod."""
        wait_for(lambda: self.redis.cli("GET", f"podrelay:{{{channel}}}:epoch").strip()
                 not in ("", ok.epoch.decode()), 20, what="a new epoch")
        for pod in (a, b):
            with self.subTest(pod=pod.name):
                r = v2(pod, "away").resume(channel, since, ok.epoch, timeout=20)
                self.assertEqual(r.recovered, 0)

    def snapshot_then_300_more(self, channel: str):
        """Two pods, a live durable subscriber on pod b; 100 acked entries, an RDB snapshot
        (SAVE), 300 more acked entries, all 400 delivered live."""
        a, b = self.start_plain()
        pub = v2(a, "pub")
        live = v2(b, "live")
        ok = live.resume(channel)
        ids = [pub.publish_durable(channel, b"m%d" % i) for i in range(100)]
        self.redis.cli("SAVE")  # the snapshot holds 100 entries
        ids += [pub.publish_durable(channel, b"m%d" % i) for i in range(100, 400)]
        self.assertEqual(len(smsgs(live, 400)), 400)
        return a, b, live, ok, ids

    def test_a_redis_restart_without_persistence_cuts_off_the_pod_that_had_not_read(self):
        a, b = self.start_plain()
        pub = v2(a, "pub")
        live = v2(b, "live")
        ok = live.resume("room:lost")
        for i in range(5):
            pub.publish_durable("room:lost", b"before%d" % i)
        seen = smsgs(live, 5)
        self.assertEqual(len(seen), 5)
        b.proc.send_signal(signal.SIGSTOP)  # pod b lags: it reads nothing more for now
        self.addCleanup(lambda: b.proc.alive() and b.proc.send_signal(signal.SIGCONT))
        for i in range(300):
            pub.publish_durable("room:lost", b"unread%d" % i)  # acked: Redis has them
        self.redis.kill()
        self.redis = Redis(self, port=self.redis.port).start()  # empty: no persistence
        b.proc.send_signal(signal.SIGCONT)
        frames = self.frames_until_goaway(live)
        self.assertEqual(frames[-1].code, proto.STREAM_LOST, frames[-1])
        self.assertIn(b"room:lost", frames[-1].message)
        got = seen + [f for f in frames if isinstance(f, proto.Smsg)]
        self.assertLess(len(got), 305, "the test did not lose anything")
        # Resuming tells the app to reload.
        again = v2(b, "again")
        wait_for(lambda: b.readyz() == 200, 20, what="pod b ready again")
        r = again.resume("room:lost", got[-1].id, ok.epoch, timeout=20)
        self.assertEqual(r.recovered, 0)
        _, text = b.get("/metrics")
        self.assertIn("podrelay_durable_streams_lost_total 1", text)
        _, text = a.get("/metrics")  # pod a had no durable subscriber: nothing to cut
        self.assertIn("podrelay_durable_streams_lost_total 0", text)

    def test_redis_back_from_an_older_snapshot_rotates_the_epoch(self):
        a, b, live, ok, ids = self.snapshot_then_300_more("room:snap")
        self.redis.kill()
        self.redis = Redis(self, port=self.redis.port).start()  # loads the snapshot
        self.assertEqual(self.redis.cli("XLEN", "podrelay:{room:snap}").strip(), "100")
        frames = self.frames_until_goaway(live)
        self.assertEqual(frames[-1].code, proto.STREAM_LOST, frames[-1])
        # An app away since entry 50 must not be told it recovered: entries 100..399, all
        # acked, are gone. The pod rotated the epoch, so any pod answers recovered=0.
        self.assert_new_epoch_and_no_recovery(a, b, "room:snap", ok, ids[50])

    def test_an_older_snapshot_is_seen_even_after_a_publish_made_the_stream_longer(self):
        # Before: the recheck compared the stream's last entry with what the pod had read,
        # so one publish appended after the restart (here by another writer, before the
        # pod's reader came back) hid the rollback: 300 acked entries gone, recovered=1.
        a, b, live, ok, ids = self.snapshot_then_300_more("room:snap2")
        self.redis.kill()
        # The snapshot, plus one entry appended after the restart, before the pods are back.
        restore = Redis(self, name="restore")
        shutil.copy(os.path.join(self.redis.dir, "dump.rdb"), restore.dir)
        restore.start()
        restore.cli("XADD", "podrelay:{room:snap2}", "*", "d", "after-restart")
        restore.cli("SAVE")
        restore.kill()
        shutil.copy(os.path.join(restore.dir, "dump.rdb"), self.redis.dir)
        self.redis = Redis(self, port=self.redis.port).start()
        self.assertEqual(self.redis.cli("XLEN", "podrelay:{room:snap2}").strip(), "101")
        frames = self.frames_until_goaway(live, timeout=20)
        self.assertEqual(frames[-1].code, proto.STREAM_LOST, frames[-1])
        self.assertIn(b"older snapshot", frames[-1].message)
        self.assert_new_epoch_and_no_recovery(a, b, "room:snap2", ok, ids[50])
        _, text = b.get("/metrics")
        self.assertIn("podrelay_durable_streams_lost_total 1", text)

    def test_a_resume_sent_while_redis_was_down_never_recovers_past_the_rollback(self):
        # An RSUB that waits for Redis at a pod that kept the channel is answered only after
        # the pod's recheck: it gets GOAWAY STREAM_LOST with the live subscribers, or (had it
        # been answered) recovered=0 from the new epoch; never recovered=1 without the 300
        # acked entries the older snapshot lacks.
        a, b, live, ok, ids = self.snapshot_then_300_more("room:snap3")
        self.redis.kill()
        wait_for(lambda: b.readyz() == 503, 20, what="pod b to see Redis gone")
        away = v2(b, "away")
        answers: list = []

        def resume():
            try:
                answers.append(away.resume("room:snap3", ids[50], ok.epoch, timeout=30))
            except ServerError as e:
                answers.append(e)
        t = threading.Thread(target=resume, daemon=True)
        t.start()
        wait_for(lambda: 'podrelay_frames_received_total{type="RSUB"} 2' in
                 b.get("/metrics")[1], 10, what="the RSUB at pod b")
        self.redis = Redis(self, port=self.redis.port).start()  # the older snapshot
        t.join(timeout=40)
        self.assertEqual(len(answers), 1, "no answer to the RSUB")
        if isinstance(answers[0], ServerError):
            self.assertEqual(answers[0].code, proto.STREAM_LOST, answers[0])
        else:
            self.assertEqual(answers[0].recovered, 0, answers[0])
        self.assertEqual(self.frames_until_goaway(live)[-1].code, proto.STREAM_LOST)

    def test_a_reader_away_while_the_stream_was_trimmed_past_it_cuts_its_subscribers_off(self):
        # Before: the pod's reader came back and read on from the oldest entry left,
        # skipping the trimmed ones without a word.
        self.redis = Redis(self).start()
        a = self.start_sidecar("pod-0", self.redis, [*DURABLE, "--durable-max-len", "100"])
        b = self.start_sidecar("pod-1", self.redis,
                               [*DURABLE, "--durable-max-len", "100", "--node-id", "pod-b"])
        pub = v2(a, "pub")
        live = v2(b, "live")
        ok = live.resume("room:trim")
        for i in range(5):
            pub.publish_durable("room:trim", b"before%d" % i)
        seen = smsgs(live, 5)
        self.assertEqual(len(seen), 5)
        b.proc.send_signal(signal.SIGSTOP)  # pod b's reader is away for a while
        self.addCleanup(lambda: b.proc.alive() and b.proc.send_signal(signal.SIGCONT))
        for i in range(600):
            pub.publish_durable("room:trim", b"t%03d" % i)
        self.assertLess(int(self.redis.cli("XLEN", "podrelay:{room:trim}")), 400)
        reader = [line for line in self.redis.cli("CLIENT", "LIST").splitlines()
                  if "name=podrelay-streams-pod-b" in line]
        self.assertEqual(len(reader), 1, reader)
        client_id = re.search(r"\bid=(\d+)", reader[0]).group(1)
        self.redis.cli("CLIENT", "KILL", "ID", client_id)  # it reconnects and rechecks
        b.proc.send_signal(signal.SIGCONT)
        frames = self.frames_until_goaway(live, timeout=20)
        self.assertEqual(frames[-1].code, proto.STREAM_LOST, frames[-1])
        self.assertIn(b"--durable-max-len", frames[-1].message)
        got = seen + [f for f in frames if isinstance(f, proto.Smsg)]
        self.assertLess(len(got), 605, "the test did not lose anything")
        # Its RSUB says so; the epoch is the same (trimming is not a new stream).
        again = v2(b, "again")
        r = again.resume("room:trim", got[-1].id, ok.epoch, timeout=20)
        self.assertEqual(r.recovered, 0)
        self.assertEqual(r.epoch, ok.epoch)
        _, text = b.get("/metrics")
        self.assertIn("podrelay_durable_streams_lost_total 1", text)
        self.assertIn('podrelay_durable_recoveries_total{outcome="trimmed"} 1', text)


class TestDurableCompatibilityAndBadInput(DurableCase):
    def test_v1_client_unchanged_and_bad_input_gets_clear_errors(self):
        (a,) = self.start_pods(1)
        v1 = self.track_client(a.client())
        v1.subscribe("room:v1")
        v1.publish("room:v1", b"plain")  # acked with a plain OK in version 1
        [m] = self.expect_msgs(v1, 1)
        self.assertEqual((m.channel, m.pattern, m.payload), (b"room:v1", b"", b"plain"))
        c = v2(a, "v2")
        with self.subTest("RSUB on a channel that is not durable"):
            with self.assertRaises(ServerError) as e:
                c.resume("chat", b"", b"")
            self.assertEqual(e.exception.code, proto.NOT_SUPPORTED)
            self.assertIn(b"not durable", e.exception.message)
        with self.subTest("a since id that is not a stream id"):
            with self.assertRaises(ServerError) as e:
                c.resume("room:v1", b"12-x", b"")
            self.assertEqual(e.exception.code, proto.INVALID_ARGUMENT)
        with self.subTest("a plain channel still works on version 2"):
            c.subscribe("chat")
            c.publish("chat", b"hi")
            self.assertEqual(c.recv_msg(timeout=5).payload, b"hi")
        with self.subTest("a version 2 frame from a version 1 connection"):
            bad = self.track_client(a.client())
            bad.send_raw(proto.encode_rsub(1, "room:v1"))
            frames = bad.read_until_closed(timeout=5)
            errs = [f for f in frames if isinstance(f, proto.Err)]
            self.assertEqual([e.code for e in errs], [proto.UNKNOWN_TYPE])
            self.assertIn(b"version 2", errs[0].message)
        v1.publish("room:v1", b"still fine")
        self.assertEqual(self.expect_msgs(v1, 1)[0].payload, b"still fine")

    def test_unsub_cutting_a_resume_short_leaves_the_channel_usable(self):
        # Found by a client written from the spec alone: an UNSUB sent right behind an RSUB of
        # the same channel (before its answer) left the channel's subscription pending in
        # the sidecar for good: every later SUB/RSUB of it there went unanswered.
        a, b = self.start_pods(2)
        pub = v2(a, "pub")
        for since_kind in ("an id", "empty"):
            with self.subTest(since=since_kind):
                channel = f"room:cut-{since_kind[0]}"
                first = pub.publish_durable(channel, b"m0")
                since = first if since_kind == "an id" else b""
                c = v2(b, "cut")
                c.send_raw(proto.encode_rsub(1, channel, since, b"")
                           + proto.encode_unsub(2, [channel]))
                replies = [c.recv_frame(timeout=10) for _ in range(2)]
                self.assertIsInstance(replies[0], proto.Err, replies)
                self.assertEqual((replies[0].request_id, replies[0].code),
                                 (1, proto.INVALID_ARGUMENT))
                self.assertIsInstance(replies[1], proto.Ok, replies)
                later = v2(b, "later")
                later.subscribe(channel, timeout=10)  # raises if never answered
                again = v2(b, "again")
                again.resume(channel, b"", b"")
                pub.publish_durable(channel, b"live")
                for receiver in (later, again):
                    [m] = smsgs(receiver, 1, timeout=10)
                    self.assertEqual((m.channel, m.payload), (channel.encode(), b"live"))

    def test_min_replicas_not_reached_is_a_clear_nack(self):
        # One Redis without replicas: WAIT 1 answers 0, so the publish is appended but the
        # app is told it is not replicated (and may be lost on a failover).
        (a,) = self.start_pods(1, ["--durable-min-replicas", "1"])
        c = v2(a, "pub")
        with self.assertRaises(ServerError) as e:
            c.publish_durable("room:w", b"w")
        self.assertEqual(e.exception.code, proto.NOT_REPLICATED)
        self.assertIn(b"only 0 of --durable-min-replicas 1", e.exception.message)
        self.assertEqual(self.redis.cli("XLEN", "podrelay:{room:w}").strip(), "1")
        c.ping()  # the connection goes on

    def test_a_payload_whose_smsg_cannot_be_framed_is_refused_not_acked(self):
        # Found by a Python client user: a payload that fits a PUB but not the SMSG (which
        # carries the stream id) was appended and acked, then dropped for every subscriber.
        (pod,) = self.start_pods(1, ["--max-frame-bytes", "4096"])
        sub = v2(pod, "sub")
        sub.resume("room:big")
        pub = v2(pod, "pub")
        room = 4096 - (1 + 2 + len("room:big") + 2 + 41)
        with self.assertRaises(ServerError) as e:
            pub.publish_durable("room:big", b"x" * (room + 1))
        self.assertEqual(e.exception.code, proto.INVALID_ARGUMENT)
        self.assertIn(f"at most {room} bytes".encode(), e.exception.message)
        self.assertEqual(self.redis.cli("EXISTS", "podrelay:{room:big}").strip(), "0")
        pub.publish_durable("room:big", b"y" * room)
        [m] = smsgs(sub, 1)
        self.assertEqual(len(m.payload), room)

    def test_bad_durable_flags_are_clear_errors(self):
        # (Durable channels on Redis Cluster: test_durable_cluster.py.)
        r = subprocess.run([PODRELAY_BIN, "--durable", ""], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--durable: empty pattern", r.stderr)
        r = subprocess.run([PODRELAY_BIN, "--durable", "room:*", "--durable-max-len", "0"],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--durable-max-len: must be between 1 and", r.stderr)


def commandstats(redis, command: str) -> int:
    """How many times Redis ran `command` since its start or the last CONFIG RESETSTAT."""
    m = re.search(rf"^cmdstat_{command}:calls=(\d+)", redis.cli("INFO", "commandstats"), re.M)
    return int(m.group(1)) if m else 0


class TestDurableScriptCache(DurableCase):
    """A durable publish names its script by SHA1 (EVALSHA) once the publisher's connection
    has loaded it; Redis forgetting the script costs one clear nack, never a silent loss."""

    def test_publishes_use_evalsha_and_a_script_flush_costs_one_clear_nack(self):
        a, b = self.start_pods(2)
        sub = v2(b, "sub")
        self.assertEqual(sub.resume("room:sha").recovered, 1)
        pub = v2(a, "pub")
        self.redis.cli("CONFIG", "RESETSTAT")
        first = [pub.publish_durable("room:sha", b"a%02d" % i) for i in range(20)]
        self.assertEqual(commandstats(self.redis, "evalsha"), 20)
        self.assertEqual(commandstats(self.redis, "eval"), 0)

        self.redis.cli("SCRIPT", "FLUSH")  # what an operator, or a Redis restart, does
        acked, nacks = [], []
        for i in range(20):
            try:
                acked.append((pub.publish_durable("room:sha", b"b%02d" % i), b"b%02d" % i))
            except ServerError as e:
                nacks.append(e)
        # The publish written before the sidecar saw NOSCRIPT is refused, with the reason;
        # the sidecar loads the script again and the rest are appended.
        self.assertEqual(len(nacks), 1, [n.message for n in nacks])
        self.assertEqual(nacks[0].code, proto.REDIS_ERROR)
        self.assertIn(b"NOSCRIPT", nacks[0].message)
        self.assertIn(b"send it again", nacks[0].message)
        self.assertEqual(len(acked), 19)
        more = [pub.publish_durable("room:sha", b"c%02d" % i) for i in range(5)]
        # Back on EVALSHA: at most the publish or two sent before the reload answered went
        # whole (EVAL).
        self.assertLessEqual(commandstats(self.redis, "eval"), 2)
        self.assertGreaterEqual(commandstats(self.redis, "evalsha"), 20 + 19 + 5 - 2)

        # The subscriber on the other pod got exactly what was acked, in order.
        want = first + [i for i, _ in acked] + more
        got = smsgs(sub, len(want))
        self.assertEqual([m.id for m in got], want)
        self.assertEqual([m.payload for m in got][20:39], [p for _, p in acked])
        self.expect_no_msg(sub)
        self.assertEqual(self.redis.cli("XLEN", "podrelay:{room:sha}").strip(), str(len(want)))
        _, text = a.get("/metrics")
        self.assertIn('podrelay_publish_nacks_total{reason="redis_error"} 1', text)

    def test_an_acl_without_script_load_publishes_the_whole_script(self):
        self.redis = AofRedis(self).start()
        # EVAL and EVALSHA allowed, SCRIPT (LOAD) not: the sidecar says so and sends EVAL.
        self.redis.cli("ACL", "SETUSER", "relay", "on", ">s3cret-pw", "~*", "&*", "+@all",
                       "-script")
        pw = os.path.join(self.tmpdir, "redis-password")
        with open(pw, "w") as f:
            f.write("s3cret-pw\n")
        url = f"redis://relay:@127.0.0.1:{self.redis.port}"  # user here, password in the file
        args = [*DURABLE, "--redis-password-file", pw]
        a = Sidecar(self, "pod-0", url, args).start()
        b = Sidecar(self, "pod-1", url, args).start()
        sub = v2(b, "sub")
        self.assertEqual(sub.resume("room:acl").recovered, 1)
        pub = v2(a, "pub")
        self.redis.cli("CONFIG", "RESETSTAT")
        ids = [pub.publish_durable("room:acl", b"x%d" % i) for i in range(10)]
        self.assertEqual([m.id for m in smsgs(sub, 10)], ids)
        self.assertEqual(commandstats(self.redis, "evalsha"), 0)
        self.assertEqual(commandstats(self.redis, "eval"), 10)
        log = a.proc.stderr_text() + a.proc.stdout_text()
        self.assertIn("redis refused SCRIPT LOAD", log)
        self.assertIn("NOPERM", log)
        self.assertNotIn("s3cret-pw", log)


class TestDurableScale(DurableCase):
    @staticmethod
    def rss(pod) -> float:
        _, text = pod.get("/metrics")
        return [float(l.split()[1]) for l in text.splitlines()
                if l.startswith("process_resident_memory_bytes")][0]

    def test_many_channels_one_reader_and_idle_expiry(self):
        pods = self.start_pods(3, ["--durable-ttl", "2"])
        rss_before = [self.rss(p) for p in pods]
        names = [f"room:{i}" for i in range(1000)]
        subs = [v2(p, f"many-{i}") for i, p in enumerate(pods)]
        for c in subs:
            c.subscribe(*names, timeout=30)
        pub = v2(pods[0], "pub")
        for name in names[::100]:
            pub.publish_durable(name, name.encode())
        for i, c in enumerate(subs):
            with self.subTest(pod=i):
                got = {m.payload for m in smsgs(c, 10)}
                self.assertEqual(got, {n.encode() for n in names[::100]})
        # One reader connection per pod for its 1,000 channels, not one per channel.
        readers = [l for l in self.redis.cli("CLIENT", "LIST").splitlines()
                   if "name=podrelay-streams-" in l]
        self.assertEqual(len(readers), 3, readers)
        self.assertEqual(len({l.split("name=")[1].split()[0] for l in readers}), 3, readers)
        for i, p in enumerate(pods):
            with self.subTest(pod=i):
                _, text = p.get("/metrics")
                self.assertIn("podrelay_durable_streams 1000", text)
                # Memory bounded: 1,000 read channels cost the pod little (ASan included).
                growth = self.rss(p) - rss_before[i]
                print(f"    pod {i}: RSS growth for 1,000 durable channels: "
                      f"{growth / 1024:.0f} KiB")
                self.assertLess(growth, 32 * 1024 * 1024)
        # Idle streams (and their epochs) expire after --durable-ttl.
        wait_for(lambda: self.redis.cli("KEYS", "podrelay:{room:*").strip() == "", 15,
                 what="idle durable streams to expire")


class TestDurableClients(DurableCase):
    def test_cli_sub_since_prints_ids(self):
        (a,) = self.start_pods(1)
        pub = v2(a, "pub")
        ids = [pub.publish_durable("room:cli", b"c%d" % i) for i in range(4)]
        r = self.run_cli("-c", a.addr, "sub", "room:cli", "--since", ids[0].decode(), "-v",
                         "-n", "3", "--timeout", "10")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines, [f"{ids[i].decode()} c{i}" for i in range(1, 4)])
        r = self.run_cli("-c", a.addr, "sub", "chat", "--since", "1-0", "--timeout", "5")
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_SUPPORTED", r.stderr.decode())

    def test_asyncio_client_resumes_by_itself_after_its_sidecar_restarts(self):
        a, b = self.start_pods(2)
        asyncio.run(self._aio_resume(a, b))

    async def _aio_resume(self, a, b):
        got: asyncio.Queue = asyncio.Queue()
        resumed: List[proto.RsubOk] = []
        client = await aio.connect(a.addr, client_name="aio", timeout=10,
                                   reconnect_max_delay=0.3)
        try:
            client.on("resumed", lambda ch, ok: resumed.append(ok))
            ok = await client.subscribe_durable(
                "room:aio", lambda payload, ch, sid: got.put_nowait((payload, sid)))
            self.assertEqual(ok.recovered, 1)
            pub = v2(b, "pub")
            first = pub.publish_durable("room:aio", b"before")
            self.assertEqual(await asyncio.wait_for(got.get(), 10), (b"before", first))
            a.proc.kill()  # the client's sidecar dies ...
            missed = [pub.publish_durable("room:aio", b"gap%d" % i) for i in range(5)]
            a.start()      # ... and comes back on the same port
            for i in range(5):
                payload, sid = await asyncio.wait_for(got.get(), 20)
                self.assertEqual((payload, sid), (b"gap%d" % i, missed[i]))
            self.assertTrue(resumed and resumed[-1].recovered == 1, resumed)
            self.assertTrue(got.empty())
        finally:
            await client.close()
