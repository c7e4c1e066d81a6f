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
                             check_alive, cluster_port, spread_channels)
from harness import (REDIS_CLI, REDIS_SERVER, IntegrationCase, Proc, ProcessExited,  # noqa: E402
                     ServerError, Sidecar, proto, wait_for)
from harness_ext import Collector as AppCollector, make_test_pki  # noqa: E402

N_CHANNELS = 36
FAILOVER_TIMEOUT = 30.0  # SIGKILL -> replica promoted and cluster_state:ok everywhere
FOLLOW_TIMEOUT = 30.0  # promotion -> sidecars ready and resubscribed
CONVERGE_TIMEOUT = 20.0  # slot moved -> messages on its channel delivered again


def report(text: str) -> None:
    sys.stderr.write(f"\n    [cluster] {text}")
    sys.stderr.flush()


class ClusterCase(IntegrationCase):
    SUB_REPLY_TIMEOUT = 3.0

    def setUp(self):
        super().setUp()
        self.cluster = Cluster(self).start()
        self.collectors = []
        # Protocol violations that do not stop the scenario: the test goes on (so every
        # later step is exercised and reported) and fails at the end with all of them.
        self.problems = []
        self.addCleanup(self._stop_collectors)

    def _stop_collectors(self):
        for c in self.collectors:
            c.stop()

    def problem(self, text: str) -> None:
        report("PROBLEM: " + text)
        self.problems.append(text)

    def assert_no_problems(self):
        if self.problems:
            self.fail("protocol violations seen:\n  - " + "\n  - ".join(self.problems))

    def sidecar(self, name: str, seeds, extra=()) -> Sidecar:
        s = Sidecar(self, name, self.cluster.url(seeds), list(extra))
        return s.start(wait_ready=True)

    def collect(self, sidecar: Sidecar, channels, name: str) -> Collector:
        """A subscriber connection on ``sidecar`` for ``channels``, read on a thread. The SUB
        must be answered OK (PROTOCOL.md: once Redis confirmed every channel); if it is not,
        that is recorded as a problem and the test goes on once the subscriptions are seen
        on Redis (the caller checks PUBSUB SHARDCHANNELS)."""
        c = sidecar.client(client_name=f"sub-{name}")
        rid = c.next_request_id()
        c.send_raw(proto.encode_sub(rid, list(channels)))
        f = c._take(lambda f: isinstance(f, (proto.Ok, proto.Err)) and f.request_id == rid,
                    time.monotonic() + self.SUB_REPLY_TIMEOUT)
        if f is None:
            self.problem(f"{sidecar.name}: SUB of {len(channels)} channels not answered "
                         f"within {self.SUB_REPLY_TIMEOUT}s (no OK, no ERR)")
        elif isinstance(f, proto.Err):
            self.fail(f"{sidecar.name}: SUB refused: {f.code} {f.message!r}")
        col = Collector(c, name).start()
        self.collectors.append(col)
        return col

    def channels_by_master(self, channels):
        """{master: [app channel, ...]} for the current owners of each channel's slot."""
        out = {m: [] for m in self.cluster.masters()}
        for ch, slot in channels.items():
            out[self.cluster.owner(slot)].append(ch)
        return out

    def shardchannels_match(self, channels, last=None) -> bool:
        by_master = self.channels_by_master(channels)
        ok = True
        for m, chans in by_master.items():
            got = set(m.shardchannels())
            if last is not None:
                last[m.name] = (len(got), len(chans))
            ok = ok and got == {PREFIX + c for c in chans}
        return ok

    def wait_shardchannels(self, channels, timeout=15.0):
        """Every master lists exactly the subscribed channels its slots own (PUBSUB
        SHARDCHANNELS), i.e. the sidecars' SSUBSCRIBEs sit on the right shards."""
        last = {}
        try:
            wait_for(lambda: self.shardchannels_match(channels, last), timeout, interval=0.1,
                     what="PUBSUB SHARDCHANNELS on every master")
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

        # One connection-state series per master and role, all up.
        status, text = a.get("/metrics")
        self.assertEqual(status, 200)
        shard_lines = [l for l in text.splitlines()
                       if l.startswith("podrelay_redis_shard_connected{")]
        self.assertEqual(len(shard_lines), 6, shard_lines)
        self.assertTrue(all(l.endswith(" 1") for l in shard_lines), shard_lines)

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
        self.assert_no_problems()


def delivered_index(col: Collector):
    """payload -> list of (channel, time) it was delivered with."""
    out = {}
    for ch, p, t in col.snapshot():
        out.setdefault(p, []).append((ch, t))
    return out


class TestClusterFailover(ClusterCase):
    def test_master_sigkill_under_acked_load(self):
        cl = self.cluster
        m0, m1, m2 = cl.masters()
        victim = m1
        heir = cl.replica_of(victim)
        # a: the publishing pod, two seeds (one of them the victim); b: the subscribing pod.
        a = self.sidecar("a", [m0, m1], ["--publish-buffer-timeout", "8"])
        b = self.sidecar("b", [m2])
        channels = spread_channels(cl, 30, stem="fo")
        by_master = self.channels_by_master(channels)
        self.assertTrue(all(len(v) >= 3 for v in by_master.values()),
                        {m.name: len(v) for m, v in by_master.items()})
        victim_channels = set(by_master[victim])
        col = self.collect(b, list(channels), "b")
        self.wait_shardchannels(channels)

        pub = AckedPublisher(a.client(client_name="pub-a"), list(channels), rate=300, window=64)
        pub.run_for(3.0)
        t_kill = time.monotonic()
        victim.sigkill()
        report(f"SIGKILL {victim.name} (port {victim.port}, {len(victim_channels)} of the "
               f"30 channels); heir {heir.name} (port {heir.port})")

        marks = {}
        readyz_seen = {a.name: set(), b.name: set()}
        deadline = t_kill + FAILOVER_TIMEOUT + FOLLOW_TIMEOUT
        while time.monotonic() < deadline and "restored" not in marks:
            pub.run_for(0.25)
            check_alive(a, b)
            now = time.monotonic()
            for s in (a, b):
                try:
                    readyz_seen[s.name].add(s.readyz())
                except OSError:
                    readyz_seen[s.name].add(0)
            if "promoted" not in marks and heir.info_field("cluster_state") == "ok" and \
                    heir in cl.masters():
                marks["promoted"] = now
            if "promoted" in marks and "ready" not in marks and \
                    a.readyz() == 200 and b.readyz() == 200:
                marks["ready"] = now
            if "ready" in marks and self.shardchannels_match(channels):
                marks["restored"] = time.monotonic()  # after the check completed
        self.assertIn("promoted", marks, f"{heir.name} not promoted within "
                      f"{FAILOVER_TIMEOUT + FOLLOW_TIMEOUT}s")
        self.assertIn("ready", marks, f"sidecars not ready again; readyz seen {readyz_seen}")
        self.assertIn("restored", marks, "subscriptions not restored on the new master")
        t_restored = marks["restored"]
        pub.run_for(3.0)  # load after the subscriptions were restored
        sent_total = pub.seq
        answered = pub.drain(20.0)

        # Later messages flow on every channel: one acked message per channel.
        final = set()
        p2 = a.client(client_name="pub-a-final")
        for ch in channels:
            p2.publish(ch, f"final:{ch}", timeout=10)
            final.add((ch, f"final:{ch}"))
        self.wait_delivered(col, final, 10, "one message on every channel after the failover")

        acked = pub.acked()
        # Must arrive: acked before the kill, or sent after the subscriptions were seen on
        # the new master. Replies are read between the probes of the loop above, so a
        # reply's read time can trail its PUBLISH by a probe's duration: a message sidecar a
        # held during the outage and flushed to the heir just before b's SSUBSCRIBE landed
        # there can be acked "after" the restore. Its send time cannot be later than the
        # PUBLISH, so it is the bound that holds.
        must = {rid for rid, t_ack in acked.items()
                if pub.sent[rid][2] > t_restored or t_ack < t_kill - 0.2}
        try:
            wait_for(lambda: all(pub.sent[r][1] in delivered_index(col) for r in must), 10,
                     interval=0.1, what="acked messages delivered")
        except ProcessExited:
            raise
        except AssertionError:
            pass  # the assertion on `missing` below names them, after the report
        time.sleep(0.5)  # a late duplicate would show up here
        idx = delivered_index(col)
        sent_by_payload = {p: ch for ch, p, _ in pub.sent.values()}
        dupes = [p for p, v in idx.items() if len(v) > 1]
        strays = [p for p, v in idx.items()
                  if not p.startswith("final:") and sent_by_payload.get(p) != v[0][0]]
        lost_window = [r for r, t in acked.items() if t_kill - 0.2 <= t <= t_restored and
                       pub.sent[r][1] not in idx]
        first_after = [t for ch, p, t in col.snapshot() if ch in victim_channels and
                       p.startswith("m") and pub.sent[int(p[1:]) + 1][2] > t_kill]
        t_first = min(first_after) - t_kill if first_after else float("nan")
        delivered_load = sum(1 for p in idx if p.startswith("m"))
        report(f"sent {sent_total}, acked {len(acked)}, nacked by code "
               f"{pub.nacks_by_code()}, unanswered {pub.outstanding()}, extra replies "
               f"{len(pub.extra_replies)}, delivered {delivered_load} (+{len(final)} final), "
               f"duplicates {len(dupes)}, acked-but-lost between kill and restore "
               f"{len(lost_window)}")
        report(f"kill -> promoted {marks['promoted'] - t_kill:.2f}s, -> both /readyz 200 "
               f"{marks['ready'] - t_kill:.2f}s, -> subscriptions restored "
               f"{t_restored - t_kill:.2f}s, -> first delivery on the failed shard's channels "
               f"{t_first:.2f}s; /readyz seen a={sorted(readyz_seen[a.name])} "
               f"b={sorted(readyz_seen[b.name])}")

        self.assertTrue(answered, f"{pub.outstanding()} publishes never answered")
        self.assertEqual(pub.extra_replies, [], "replies to unknown or already answered ids")
        self.assertEqual(dupes, [], "messages delivered more than once")
        self.assertEqual(strays, [], "messages delivered that were never sent on that channel")
        missing = sorted(r for r in must if pub.sent[r][1] not in idx)
        detail = [f"{pub.sent[r][1]} on {pub.sent[r][0]} sent t{pub.sent[r][2] - t_kill:+.3f}s"
                  f" acked t{acked[r] - t_kill:+.3f}s" for r in missing[:20]]
        self.assertEqual(missing, [], f"{len(missing)} of {len(must)} acked messages (before "
                         f"the kill or sent after the subscriptions were restored) not "
                         f"delivered; times from the kill, restored t{t_restored - t_kill:+.3f}s: "
                         f"{detail}")
        after = [r for r in acked if r in must and pub.sent[r][2] > t_restored]
        self.assertGreater(len(after), 100, "too few messages acked after the restore")
        self.assertTrue(victim_channels & {pub.sent[r][0] for r in after})
        # The connection-state series follow the masters: the heir's are up, and the dead
        # master's are gone (an alert on "any shard down" must clear after a failover).
        for s in (a, b):
            _, text = s.get("/metrics")
            shard_lines = [l for l in text.splitlines()
                           if l.startswith("podrelay_redis_shard_connected{")]
            self.assertEqual(len(shard_lines), 6, (s.name, shard_lines))
            self.assertTrue(all(l.endswith(" 1") for l in shard_lines), (s.name, shard_lines))
            self.assertFalse([l for l in shard_lines if f':{victim.port}"' in l], shard_lines)
        check_alive(a, b)
        self.assert_no_problems()


class TestClusterSlotMigration(ClusterCase):
    def converge(self, pub: AckedPublisher, col: Collector, channel: str,
                 t_moved: float) -> float:
        """Keeps publishing on every channel until a message on ``channel`` published after
        ``t_moved`` is delivered; returns the seconds from ``t_moved``."""
        deadline = t_moved + CONVERGE_TIMEOUT
        while time.monotonic() < deadline:
            pub.run_for(0.2)
            for ch, p, t in col.snapshot():
                if ch == channel and p.startswith("m") and pub.sent[int(p[1:]) + 1][2] > t_moved:
                    return t - t_moved
        self.fail(f"no message on {channel} delivered within {CONVERGE_TIMEOUT}s of the "
                  f"slot move")

    def check_flowing(self, pub: AckedPublisher, col: Collector, channel: str,
                      seconds: float = 2.0):
        """Every message acked on ``channel`` from now on is delivered."""
        first = pub.seq + 1
        pub.run_for(seconds)
        self.assertTrue(pub.drain(10))
        acked = [r for r, t in pub.acked().items() if r >= first and pub.sent[r][0] == channel]
        self.assertGreater(len(acked), 5)
        want = {(channel, pub.sent[r][1]) for r in acked}
        self.wait_delivered(col, want, 10, f"{len(want)} acked messages on {channel}")

    def test_slot_of_subscribed_channel_moves(self):
        cl = self.cluster
        m0, m1, m2 = cl.masters()
        a = self.sidecar("a", [m0])
        b = self.sidecar("b", [m1, m2])
        channels = spread_channels(cl, 12, stem="mv")
        by_master = self.channels_by_master(channels)
        self.assertTrue(all(by_master.values()), {m.name: len(v) for m, v in by_master.items()})
        col = self.collect(b, list(channels), "b")
        self.wait_shardchannels(channels)
        pub = AckedPublisher(a.client(client_name="pub-a"), list(channels), rate=200, window=64)
        pub.run_for(1.0)

        # 1. Exactly one slot, CLUSTER SETSLOT procedure: the slot of X from m0 to m1.
        x = by_master[m0][0]
        slot_x = cl.keyslot(PREFIX + x)
        self.assertEqual(slot_x, channels[x])
        t0 = time.monotonic()
        cl.migrate_slot(slot_x, m0, m1)
        t_moved = time.monotonic()
        report(f"slot {slot_x} of {x} moved {m0.name} -> {m1.name} in {t_moved - t0:.2f}s")
        conv = self.converge(pub, col, x, t_moved)
        report(f"{x}: first delivery of a message published after the move "
               f"{conv:.2f}s after it")
        self.wait_shardchannels(channels, CONVERGE_TIMEOUT)
        self.assertIn(PREFIX + x, m1.shardchannels())
        self.assertNotIn(PREFIX + x, m0.shardchannels())
        self.check_flowing(pub, col, x)

        # 2. redis-cli --cluster reshard of a range that includes the slot of Y (on m2):
        # reshard takes the source's lowest slots, so move as many as reach Y's slot.
        infos = {i.node_id: i for i in cl.nodes_view()}
        ranges = sorted(infos[m2.node_id].slots)
        y = min(by_master[m2], key=lambda ch: channels[ch])
        slot_y = channels[y]
        offset = 0
        for lo, hi in ranges:
            if lo <= slot_y <= hi:
                offset += slot_y - lo
                break
            offset += hi - lo + 1
        n_slots = offset + 1
        argv = [REDIS_CLI, "--cluster", "reshard", m0.addr, "--cluster-from", m2.node_id,
                "--cluster-to", m0.node_id, "--cluster-slots", str(n_slots), "--cluster-yes"]
        t0 = time.monotonic()
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        self._log_run(argv, r.returncode, r.stdout, r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace")[-2000:])
        wait_for(lambda: all(cl.owner_seen_by(n, slot_y) == m0.node_id for n in cl.live_nodes()),
                 20, interval=0.1, what=f"slot {slot_y} on {m0.name} everywhere")
        t_moved = time.monotonic()
        report(f"reshard of {n_slots} slots {m2.name} -> {m0.name} (incl. slot {slot_y} of "
               f"{y}) took {t_moved - t0:.2f}s")
        conv = self.converge(pub, col, y, t_moved)
        report(f"{y}: first delivery of a message published after the reshard "
               f"{conv:.2f}s after it")
        self.wait_shardchannels(channels, CONVERGE_TIMEOUT)
        self.check_flowing(pub, col, y)
        # Every channel still flows after both moves.
        first = pub.seq + 1
        pub.run_for(1.0)
        self.assertTrue(pub.drain(10))
        want = {(pub.sent[r][0], pub.sent[r][1]) for r in pub.acked() if r >= first}
        self.assertEqual({ch for ch, _ in want}, set(channels))
        self.wait_delivered(col, want, 10, "messages on every channel after both moves")

        # Accounting over the whole run.
        self.assertTrue(pub.drain(15), f"{pub.outstanding()} publishes never answered")
        self.assertEqual(pub.extra_replies, [])
        idx = delivered_index(col)
        self.assertEqual([p for p, v in idx.items() if len(v) > 1], [], "duplicates")
        acked = pub.acked()
        lost = [r for r in acked if pub.sent[r][1] not in idx]
        report(f"sent {pub.seq}, acked {len(acked)}, nacked by code {pub.nacks_by_code()}, "
               f"delivered {len(idx)}, acked-but-not-delivered {len(lost)} "
               f"(on {sorted({pub.sent[r][0] for r in lost})})")
        check_alive(a, b)
        self.assert_no_problems()


class TestClusterTls(IntegrationCase):
    """rediss-cluster://: TLS to the seed's CLUSTER SLOTS and to every shard it names, on a
    cluster whose nodes speak TLS only (clients, bus, replication)."""

    def test_tls_to_every_shard_and_a_wrong_ca_refused(self):
        pki_dir = os.path.join(self.tmpdir, "pki")
        os.makedirs(pki_dir)
        pki = make_test_pki(pki_dir)
        cl = Cluster(self, masters=3, replicas=0, tls=pki).start()
        masters = cl.masters()
        self.assertEqual(len(masters), 3)
        url = cl.url(masters[:1])  # one seed: the other shards come from its CLUSTER SLOTS
        self.assertTrue(url.startswith("rediss-cluster://"), url)
        a, b = (Sidecar(self, f"pod{n}", url, ["--tls-ca-file", pki["ca"]]).start() for n in "ab")
        channels = spread_channels(cl, 9, stem="tls")
        owners = {cl.owner(slot).name for slot in channels.values()}
        self.assertEqual(len(owners), 3, owners)  # the test reaches every shard
        col = AppCollector.connect(b.port, list(channels), name="col")
        self.addCleanup(col.close)
        pub = a.client()
        for ch in channels:
            pub.publish(ch, b"tls:" + ch.encode(), timeout=10)
        want = {(ch.encode(), b"tls:" + ch.encode()) for ch in channels}
        self.assertTrue(col.wait_for(lambda c: want <= {(ch, p) for ch, p, _ in c.msgs}, 10),
                        col.msgs)
        # Every shard holds the subscription it owns: the sidecar reached each over TLS.
        for m in masters:
            self.assertEqual(sorted(m.shardchannels()),
                             sorted(PREFIX + ch for ch, slot in channels.items()
                                    if cl.owner(slot) is m), m.name)
        # A cluster whose certificates the sidecar cannot verify is not used.
        other = Sidecar(self, "otherca", url, ["--tls-ca-file", pki["other_ca"]]).start(
            wait_ready=False)
        wait_for(lambda: "certificate verify failed" in other.proc.stderr_text(), 10,
                 what="the wrong CA refused")
        self.assertEqual(other.readyz(), 503)


class TestOneNodeCluster(IntegrationCase):
    """A one-node cluster (a dev or a small staging setup): its node never met another, so
    CLUSTER SLOTS names it with an empty host, which Redis documents as "the host you
    asked". Before, the sidecar resolved "" (to localhost): wrong for any Redis that is not
    on the pod's loopback. The node listens on 127.0.0.2 only, so localhost is wrong here."""

    def test_an_empty_host_in_cluster_slots_is_the_seed(self):
        port = cluster_port()
        node_dir = os.path.join(self.tmpdir, "onenode")
        os.makedirs(node_dir)
        argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.2", "--cluster-enabled",
                "yes", "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly",
                "no", "--dir", node_dir]
        self.track(Proc("onenode", argv, self.tmpdir, cwd=node_dir))
        cli = [REDIS_CLI, "-h", "127.0.0.2", "-p", str(port)]

        def run(*args):
            r = subprocess.run(cli + list(args), capture_output=True, timeout=5,
                               stdin=subprocess.DEVNULL)
            return r.stdout.decode(errors="replace")

        wait_for(lambda: run("PING").strip() == "PONG", 10, what="the node up")
        self.assertEqual(run("CLUSTER", "ADDSLOTSRANGE", "0", "16383").strip(), "OK")
        wait_for(lambda: "cluster_state:ok" in run("CLUSTER", "INFO"), 20,
                 what="cluster_state:ok")
        self.assertIn("\n\n", run("CLUSTER", "SLOTS"))  # the empty host this is about
        url = f"redis-cluster://127.0.0.2:{port}"
        a, b = (Sidecar(self, f"pod{n}", url).start() for n in "ab")
        col = AppCollector.connect(b.port, ["solo"], name="col")
        self.addCleanup(col.close)
        a.client().publish("solo", b"one node", timeout=10)
        self.assertTrue(col.wait_for(lambda c: b"one node" in c.payloads(), 10), col.msgs)
        _, text = a.get("/metrics")
        self.assertIn(f'podrelay_redis_shard_connected{{role="publisher",'
                      f'shard="127.0.0.2:{port}"}} 1', text)


if __name__ == "__main__":
    unittest.main()
