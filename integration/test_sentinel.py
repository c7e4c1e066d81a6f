"""Sentinel failover under acked load: a master, one replica, three redis-sentinel
processes (quorum 2, down-after-milliseconds 1000, failover-timeout 5000) and three
sidecars that find the master through the sentinels. SIGKILL the master: the sidecars must
follow the promoted replica, re-subscribe and deliver again, with the accounting of
test_outages (exactly one answer per acked publish, no duplicates, nothing delivered that
was nacked 300/301, one order on every pod)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import unittest

from harness import REDIS_CLI, IntegrationCase, Proc, Sidecar, free_port, wait_for
from harness_ext import (AckedPublisher, Collector, RedisExt, check_accounting, figure, metric,
                         make_test_pki, resp_command, secret_file, sidecar_metrics)

REDIS_SENTINEL = os.environ.get("REDIS_SENTINEL_BIN",
                                shutil.which("redis-sentinel") or "redis-sentinel")
PREFIX = "podrelay:"
CHANNEL = "fo"


class SentinelCase(IntegrationCase):

    def require_sentinel(self):
        if shutil.which(REDIS_SENTINEL) is None and not os.access(REDIS_SENTINEL, os.X_OK):
            self.skipTest("redis-sentinel not installed")

    def start_sentinel(self, i, master_port, quorum=2, extra_conf="", tls=None):
        """A redis-sentinel on a free port; `tls` (make_test_pki's files): TLS only, to its
        clients and to the master."""
        port = free_port()
        d = os.path.join(self.tmpdir, f"sentinel{i}")
        os.makedirs(d)
        listen = f"port {port}\n"
        if tls:
            listen = (f"port 0\ntls-port {port}\ntls-cert-file {tls['server_cert']}\n"
                      f"tls-key-file {tls['server_key']}\ntls-ca-cert-file {tls['ca']}\n"
                      f"tls-auth-clients no\ntls-replication yes\n")
        conf = os.path.join(d, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"{listen}bind 127.0.0.1\ndaemonize no\ndir {d}\n"
                    f"sentinel resolve-hostnames no\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master_port} {quorum}\n"
                    f"sentinel down-after-milliseconds mymaster 1000\n"
                    f"sentinel failover-timeout mymaster 5000\n"
                    f"sentinel parallel-syncs mymaster 1\n" + extra_conf)
        proc = self.track(Proc(f"sentinel{i}", [REDIS_SENTINEL, conf], self.tmpdir, cwd=d))

        def up():
            if not proc.alive():
                raise AssertionError(proc.stderr_text()[-2000:])
            if not tls:
                return resp_command(port, b"PING").startswith((b"+PONG", b"-NOAUTH"))
            r = subprocess.run([REDIS_CLI, "--tls", "--cacert", tls["ca"], "-h", "127.0.0.1",
                                "-p", str(port), "SENTINEL", "get-master-addr-by-name",
                                "mymaster"], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=5)
            return str(master_port).encode() in r.stdout
        wait_for(up, 15, what=f"sentinel{i}")
        return port

    def sentinel_view(self, port):
        known = resp_command(port, b"SENTINEL", b"sentinels", b"mymaster")
        replicas = resp_command(port, b"SENTINEL", b"replicas", b"mymaster")
        return known.split(b"\r\n", 1)[0], replicas.split(b"\r\n", 1)[0]

    def start_failover_set(self):
        """A master, a replica in sync and three sentinels that know both: (master, replica,
        the sentinel ports, the redis-sentinel:// URL). Skips when redis-sentinel is missing."""
        self.require_sentinel()
        master = RedisExt(self, "master").start()
        replica = RedisExt(self, "replica",
                           extra_args=["--replicaof", "127.0.0.1", str(master.port)]).start()
        wait_for(lambda: "master_link_status:up" in replica.cli("INFO", "replication"), 15,
                 what="replica in sync")
        sentinels = [self.start_sentinel(i, master.port) for i in (1, 2, 3)]
        # the sentinels must know each other and the replica before a failover can happen
        wait_for(lambda: all(self.sentinel_view(p) == (b"*2", b"*1") for p in sentinels), 20,
                 interval=0.2, what="sentinels discovering each other and the replica")
        url = "redis-sentinel://" + ",".join(f"127.0.0.1:{p}" for p in sentinels) + "/mymaster"
        return master, replica, sentinels, url


class SentinelFailoverTest(SentinelCase):

    def test_master_killed_under_load(self):
        master, replica, sentinels, url = self.start_failover_set()
        pods = {n: Sidecar(self, f"pod{n}", url).start() for n in "ABC"}
        cols = {}
        for n, pod in pods.items():
            cols[n] = Collector.connect(pod.port, [CHANNEL], name=f"col-{n}")
            self.addCleanup(cols[n].close)
        master.wait_numsub(PREFIX + CHANNEL, 3)
        t_setup = time.monotonic()
        pubs = [AckedPublisher.connect(pods["A"].port, CHANNEL, f"F{i}", 250, 30000, 90,
                                       name=f"F{i}") for i in (1, 2)]
        for p in pubs:
            self.addCleanup(p.close)
            p.start()
        time.sleep(1.5)
        t_kill = time.monotonic()
        master.kill()
        wait_for(lambda: replica.cli("ROLE").startswith("master"), 30, interval=0.05,
                 what="the replica promoted to master")
        t_promoted = time.monotonic()
        replica.wait_numsub(PREFIX + CHANNEL, 3, timeout=30)
        t_resub = time.monotonic()
        for n, pod in pods.items():
            pod.wait_ready(timeout=20)
        t_ready = time.monotonic()
        time.sleep(2.0)
        for p in pubs:
            p.stop_sending()
        for p in pubs:
            left = p.wait_answered(30)
            self.assertEqual(left[:10], [], f"{p.tag}: {len(left)} unanswered")
        # first message published after the kill that reached every pod
        arrival = {}
        for n, col in cols.items():
            for _, pl, t in col.msgs:
                arrival.setdefault(pl, {})[n] = t
        sent_at = {p.payload(s): t for p in pubs for s, t in list(p.sent.items())}
        after_kill = [max(a.values()) for pl, a in arrival.items()
                      if len(a) == 3 and sent_at.get(pl, 0) > t_kill]
        self.assertTrue(after_kill, "nothing published after the kill reached every pod")
        t_delivery = min(after_kill)

        windows = [(t_setup, t_kill), (t_resub, float("inf"))]

        def required(p, s):
            t_sent, t_ack = p.sent[s], p.replies[s][0][2]
            return any(a < t_sent and t_ack < b - 0.02 for a, b in windows)
        want = {p.payload(s) for p in pubs for s in list(p.sent)
                if p.outcome(s) == ("OK", 0) and required(p, s)}
        for col in cols.values():
            col.wait_for(lambda c_: want <= set(c_.payloads()), 15)
        time.sleep(0.5)
        figs = check_accounting(self, pubs, cols, required)
        m = sidecar_metrics(pods["A"])
        oks = sum(p.counts()["ok"] for p in pubs)
        self.assertEqual(metric(m, "podrelay_publish_acks_total"), oks)
        nacks = sum(v for p in pubs for k, v in p.counts().items() if k.startswith("err"))
        self.assertEqual(metric(m, "podrelay_publish_nacks_total"), nacks)
        self.assertIn(replica.port, [int(x) for x in resp_command(
            sentinels[0], b"SENTINEL", b"get-master-addr-by-name", b"mymaster")
            .split(b"\r\n")[-2:-1]])
        logs = pods["A"].proc.stderr_text()
        self.assertIn("redis master moved", logs)
        figure("sentinel.failover", kill_to_promoted_s=t_promoted - t_kill,
               kill_to_resubscribed_s=t_resub - t_kill, kill_to_all_ready_s=t_ready - t_kill,
               kill_to_first_delivery_everywhere_s=t_delivery - t_kill,
               promoted_to_first_delivery_s=t_delivery - t_promoted, acked=oks, nacked=nacks,
               required=len(want), **figs)



class SentinelAuthTest(SentinelCase):
    """Sentinels with a password of their own (requirepass on the sentinels, as Helm charts
    can set up), next to a different data password on the master."""

    def test_sentinels_with_their_own_password(self):
        self.require_sentinel()
        data_pw, sentinel_pw = "data-pw-4e1b", "sentinel-pw-97c2"
        master = RedisExt(self, "master", extra_args=["--requirepass", data_pw],
                          password=data_pw).start()
        port = self.start_sentinel(1, master.port, quorum=1, extra_conf=(
            f"sentinel auth-pass mymaster {data_pw}\nrequirepass {sentinel_pw}\n"
            f"sentinel sentinel-pass {sentinel_pw}\n"
            f"user watcher on >watcher-pw-51d0 &* +@all\n"))
        url = f"redis-sentinel://127.0.0.1:{port}/mymaster"
        data = ["--redis-password-file", secret_file(self.tmpdir, "data", data_pw)]
        # Without the sentinels' password: not ready, and the log says why.
        bare = Sidecar(self, "bare", url, data).start(wait_ready=False)
        wrong = Sidecar(self, "wrong", url, data + [
            "--sentinel-password-file", secret_file(self.tmpdir, "wrong", "nope")]).start(
                wait_ready=False)
        by_password = ["--sentinel-password-file",
                       secret_file(self.tmpdir, "sentinel", sentinel_pw)]
        by_acl_user = ["--sentinel-username", "watcher", "--sentinel-password-file",
                       secret_file(self.tmpdir, "watcher", "watcher-pw-51d0")]
        good = [Sidecar(self, "podA", url, data + by_password).start(),
                Sidecar(self, "podB", url, data + by_acl_user).start()]
        col = Collector.connect(good[1].port, [CHANNEL], name="col")
        self.addCleanup(col.close)
        master.wait_numsub(PREFIX + CHANNEL, 1)
        pub = good[0].client()
        pub.publish(CHANNEL, b"through authenticated sentinels", timeout=10)
        self.assertTrue(col.wait_for(
            lambda c_: b"through authenticated sentinels" in c_.payloads(), 10), col.payloads())
        for pod, needle in ((bare, "the sentinels want a password: --sentinel-password-file"),
                            (wrong, "AUTH refused by 127.0.0.1:")):
            wait_for(lambda: needle in pod.proc.stderr_text(), 10, what=f"{pod.name}: {needle}")
            self.assertEqual(pod.readyz(), 503)
        for pod in [bare, wrong] + good:
            out = pod.proc.stderr_text()
            self.assertNotIn(data_pw, out)
            self.assertNotIn(sentinel_pw, out)
            self.assertNotIn("watcher-pw-51d0", out)
        figure("sentinel.auth", no_password_log=next(
            l for l in bare.proc.stderr_text().splitlines() if "NOAUTH" in l)[:300],
            wrong_password_log=next(l for l in wrong.proc.stderr_text().splitlines()
                                    if "AUTH refused" in l)[:300])



class SentinelTlsTest(SentinelCase):
    """rediss-sentinel://: TLS to the sentinel and to the master it names."""

    def test_tls_to_the_sentinel_and_the_master(self):
        self.require_sentinel()
        pki_dir = os.path.join(self.tmpdir, "pki")
        os.makedirs(pki_dir)
        pki = make_test_pki(pki_dir)
        master = RedisExt(self, "master", tls=pki).start()
        port = self.start_sentinel(1, master.port, quorum=1, tls=pki)
        url = f"rediss-sentinel://127.0.0.1:{port}/mymaster"
        a, b = (Sidecar(self, f"pod{n}", url, ["--tls-ca-file", pki["ca"]]).start() for n in "AB")
        col = Collector.connect(b.port, [CHANNEL], name="col")
        self.addCleanup(col.close)
        master.wait_numsub(PREFIX + CHANNEL, 1)
        a.client().publish(CHANNEL, b"over TLS", timeout=10)
        self.assertTrue(col.wait_for(lambda c_: b"over TLS" in c_.payloads(), 10),
                        col.payloads())
        # A sentinel whose certificate the sidecar cannot verify is not asked.
        other = Sidecar(self, "otherca", url, ["--tls-ca-file", pki["other_ca"]]).start(
            wait_ready=False)
        wait_for(lambda: "certificate verify failed" in other.proc.stderr_text(), 10,
                 what="the wrong CA refused")
        self.assertEqual(other.readyz(), 503)


if __name__ == "__main__":
    unittest.main()
