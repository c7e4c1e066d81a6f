"""Durable channels on Redis Cluster: a real local cluster (3 masters + 3 replicas, started
per test on free loopback ports) and three podrelay sidecars with ``--durable 'room:*'``.

- acked durable publishes on channels whose streams lie on all three masters reach every
  pod exactly once and in stream order, and no pod opens a connection beyond its
  publisher and subscriber per master (the wake-ups ride the subscriber, the reads the
  publisher);
- a master SIGKILLed under acked load (``--durable-min-replicas 1``): its replica takes
  over and every acknowledged message reaches every pod exactly once, in order;
- the slot of a durable channel moves to another master (keys migrated): the pods read on
  from their last id on the new owner, nothing missed or repeated;
- an app that reconnects to another pod resumes with RSUB from its last id.
"""

from __future__ import annotations

import os
import sys
import time
import unittest
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster_harness import Cluster, check_alive  # noqa: E402
from harness import IntegrationCase, ServerError, Sidecar, proto, wait_for  # noqa: E402
from test_durable import DurableLoad, smsgs, v2  # noqa: E402

DURABLE = ["--durable", "room:*", "--publish-buffer-timeout", "8"]
PREFIX = "podrelay:"


def report(text: str) -> None:
    sys.stderr.write(f"\n    [durable-cluster] {text}")
    sys.stderr.flush()


class DurableClusterCase(IntegrationCase):
    def setUp(self):
        super().setUp()
        self.cluster = Cluster(self).start()

    def pod(self, name: str, extra=()) -> Sidecar:
        return Sidecar(self, name, self.cluster.url(self.cluster.masters()),
                       [*DURABLE, *extra]).start(wait_ready=True)

    def stream_slot(self, channel: str) -> int:
        return self.cluster.keyslot(PREFIX + "{" + channel + "}")

    def channels_on_every_master(self, per_master: int) -> Dict[str, object]:
        """{channel: master} with ``per_master`` durable channels whose streams live on
        each master."""
        want = {m.port: per_master for m in self.cluster.masters()}
        out = {}
        for i in range(500):
            ch = f"room:{i}"
            owner = self.cluster.owner(self.stream_slot(ch))
            if want.get(owner.port, 0) > 0:
                want[owner.port] -= 1
                out[ch] = owner
            if not any(want.values()):
                return out
        self.fail(f"could not spread channels over the masters: {want}")

    def collect(self, client, channels, acked: Dict[str, List[bytes]], timeout: float = 30.0):
        """SMSGs on ``client`` until every acked payload arrived; {channel: [payload, ...]}."""
        got: Dict[str, List[bytes]] = {c: [] for c in channels}
        want = sum(len(v) for v in acked.values())
        deadline = time.monotonic() + timeout
        n = 0
        while n < want and time.monotonic() < deadline:
            m = client.recv_smsg(timeout=1)
            if m is None:
                continue
            got.setdefault(m.channel.decode(), []).append(m.payload)
            if m.payload in set(acked.get(m.channel.decode(), ())):
                n += 1
        return got

    def assert_exactly_once_in_order(self, got, acked, pod: str):
        for ch, want in acked.items():
            have = got.get(ch, [])
            mine = [p for p in have if p in set(want)]
            with self.subTest(pod=pod, channel=ch):
                self.assertEqual(len(have), len(set(have)), "a message arrived twice")
                missing = set(want) - set(mine)
                self.assertEqual(missing, set(), f"{len(missing)} acked messages missed")
                self.assertEqual(mine, want, "not in publish order")

    def connections_per_master(self) -> Dict[int, List[str]]:
        out = {}
        for m in self.cluster.masters():
            out[m.port] = sorted(l.split("name=")[1].split()[0]
                                 for l in m.cli("CLIENT", "LIST").splitlines()
                                 if "name=podrelay-" in l)
        return out


class TestDurableClusterDelivery(DurableClusterCase):
    def test_every_acked_message_reaches_every_pod_once_in_order(self):
        pods = [self.pod(f"pod-{i}") for i in range(3)]
        channels = self.channels_on_every_master(3)
        subs = []
        for i, p in enumerate(pods):
            c = v2(p, f"sub-{i}")
            c.subscribe(*channels, timeout=15)
            subs.append(c)
        pub = v2(pods[0], "pub")
        acked: Dict[str, List[bytes]] = {c: [] for c in channels}
        ids: Dict[str, List[bytes]] = {c: [] for c in channels}
        for k in range(40):
            for ch in channels:
                payload = f"{ch}#{k}".encode()
                ids[ch].append(pub.publish_durable(ch, payload, timeout=10))
                acked[ch].append(payload)
        for ch in channels:  # the ids Redis assigned grow per channel
            self.assertEqual(ids[ch], sorted(ids[ch], key=lambda i: tuple(map(int, i.split(b"-")))))
        for i, c in enumerate(subs):
            self.assert_exactly_once_in_order(self.collect(c, channels, acked), acked, f"pod-{i}")
        # One publisher and one subscriber connection per pod on each master, nothing more:
        # no reader connection per channel or per slot.
        for port, names in self.connections_per_master().items():
            with self.subTest(master=port):
                self.assertEqual(len([n for n in names if n.startswith("podrelay-pub-")]), 3, names)
                self.assertEqual(len([n for n in names if n.startswith("podrelay-sub-")]), 3, names)
                self.assertEqual(len(names), 6, names)
        _, text = pods[1].get("/metrics")
        self.assertIn(f"podrelay_durable_streams {len(channels)}", text)
        # A durable channel's wake channel is not an app channel: SUB and PUB are refused.
        wake = "{" + next(iter(channels)) + "}:wake"
        with self.assertRaises(ServerError) as e:
            subs[0].subscribe(wake, timeout=10)
        self.assertEqual(e.exception.code, 200)
        self.assertIn(b"reserved", e.exception.message)
        with self.assertRaises(ServerError) as e:
            pub.publish(wake, b"x", timeout=10)
        self.assertEqual(e.exception.code, 200)
        self.assertEqual(len(pub.publish_durable(next(iter(channels)), b"still", timeout=10)) > 0,
                         True)

    def test_resume_on_another_pod(self):
        a, b = self.pod("a"), self.pod("b")
        pub = v2(a, "pub")
        first = v2(a, "app")
        self.assertEqual(first.resume("room:r").recovered, 1)
        seen = [pub.publish_durable("room:r", b"a%d" % i) for i in range(3)]
        self.assertEqual([m.id for m in smsgs(first, 3)], seen)
        first.close()
        missed = [pub.publish_durable("room:r", b"b%d" % i) for i in range(5)]
        again = v2(b, "app-again")
        ok = again.resume("room:r", seen[-1], b"")
        self.assertEqual(ok.recovered, 1)
        self.assertEqual(ok.last_id, missed[-1])
        self.assertEqual([f.id for f in again.pending() if isinstance(f, proto.Smsg)], missed)
        live = pub.publish_durable("room:r", b"live")
        got = smsgs(again, len(missed) + 1)  # the replayed ones are still in the inbox
        self.assertEqual([m.id for m in got], missed + [live])


class TestDurableClusterFailover(DurableClusterCase):
    def test_master_sigkill_every_acked_message_once_in_order(self):
        pods = [self.pod(f"pod-{i}", ["--durable-min-replicas", "1"]) for i in range(3)]
        channels = self.channels_on_every_master(1)
        victim = next(m for ch, m in channels.items())
        heir = self.cluster.replica_of(victim)
        subs = []
        for i, p in enumerate(pods[1:], start=1):
            c = v2(p, f"sub-{i}")
            c.subscribe(*channels, timeout=15)
            subs.append(c)
        loads = {ch: DurableLoad(v2(pods[0], f"pub-{ch}"), ch, ch.encode() + b"#", 4000, 10,
                                 0.004).start() for ch in channels}
        try:
            wait_for(lambda: all(len(l.acked) > 50 for l in loads.values()), 30,
                     what="acked publishes on every channel")
            t_kill = time.monotonic()
            victim.sigkill()
            report(f"SIGKILL {victim.name} (port {victim.port}); heir {heir.name}")
            wait_for(lambda: heir.info_field("cluster_state") == "ok" and
                     heir in self.cluster.masters(), 40, what=f"{heir.name} promoted")
            report(f"promoted after {time.monotonic() - t_kill:.2f}s")
            victim_ch = next(ch for ch, m in channels.items() if m is victim)
            before = len(loads[victim_ch].acked)
            # Publishes go on being answered on every channel; on the victim's, whose new
            # master has no replica yet, as ERR 304 NOT_REPLICATED (appended, not acked).
            def answered(load):
                return len(load.acked) + sum(load.nacked.values())
            for ch, load in loads.items():
                n = answered(load)
                wait_for(lambda: answered(load) > n + 20 or not load.running(), 40,
                         what=f"publishes answered on {ch} after the promotion")
            check_alive(*pods)
        finally:
            for load in loads.values():
                load.stop()
        acked = {ch: list(l.acked) for ch, l in loads.items()}
        for ch, load in loads.items():
            if ch != victim_ch:
                self.assertGreater(len(load.acked), before, f"{ch}: too few acked")
        report(f"acked per channel {({c: len(v) for c, v in acked.items()})}, nacked "
               f"{({c: l.nacked for c, l in loads.items()})}, victim channel acked before "
               f"the kill settled {before}")
        for i, c in enumerate(subs, start=1):
            self.assert_exactly_once_in_order(self.collect(c, channels, acked), acked, f"pod-{i}")


class TestDurableClusterSlotMove(DurableClusterCase):
    def test_slot_of_a_durable_channel_moves(self):
        pods = [self.pod(f"pod-{i}") for i in range(2)]
        channels = self.channels_on_every_master(1)
        ch, src = next(iter(channels.items()))
        dst = next(m for m in self.cluster.masters() if m is not src)
        sub = v2(pods[1], "sub")
        sub.subscribe(ch, timeout=15)
        pub = v2(pods[0], "pub")
        acked = {ch: []}
        for k in range(30):
            acked[ch].append(b"before%d" % k)
            pub.publish_durable(ch, acked[ch][-1], timeout=10)
        self.cluster.migrate_slot(self.stream_slot(ch), src, dst)
        report(f"slot {self.stream_slot(ch)} of {ch} moved {src.name} -> {dst.name}")
        deadline = time.monotonic() + 20
        k = 0
        while time.monotonic() < deadline and k < 60:
            payload = b"after%d" % k
            try:
                pub.publish_durable(ch, payload, timeout=10)
                acked[ch].append(payload)
            except Exception as e:  # noqa: BLE001  (a nack during the move is allowed)
                report(f"nacked during the move: {e}")
            k += 1
            time.sleep(0.02)
        self.assertGreater(len(acked[ch]), 60)
        self.assert_exactly_once_in_order(self.collect(sub, [ch], acked), acked, "pod-1")
        self.assertEqual(dst.cli("EXISTS", PREFIX + "{" + ch + "}").strip(), "1")


if __name__ == "__main__":
    unittest.main()
