"""Network partition between a sidecar and Redis, with network namespaces (needs root).

Namespace R holds Redis and a second sidecar (pod R); namespace S holds pod S and its apps.
They are joined by a veth pair created directly inside the two namespaces (the host's own
interfaces are never touched) with addresses in 10.x picked at run time. Taking the link
down is a silent partition: no FIN, no RST. /readyz of pod S must turn 503 within the PING
bound (interval 1 s + timeout 3 s); after the link comes back pod S reconnects, its
subscription is back on Redis (PUBSUB NUMSUB) and delivery resumes.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
import unittest

from harness import PODRELAY_BIN, REDIS_SERVER, IntegrationCase, Proc, free_port, http_get
from harness_ext import (AckedPublisher, Collector, NsWorker, figure, resp_command,
                         resp_numsub)

CHANNEL = "part"
PREFIX = "podrelay:"


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, timeout=10)
    if check and r.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {r.stderr.decode().strip()}")
    return r


class PartitionTest(IntegrationCase):

    def setUp(self):
        super().setUp()
        tag = f"{os.getpid() % 100000}"
        self.ns_r, self.ns_s = f"prR{tag}", f"prS{tag}"
        r = ip("netns", "add", self.ns_r, check=False)
        if r.returncode != 0:
            self.skipTest(f"ip netns not permitted here: {r.stderr.decode().strip()}")
        self.addCleanup(self._remove_namespaces)
        ip("netns", "add", self.ns_s)
        self.veth_r, self.veth_s = f"pvr{tag}", f"pvs{tag}"
        ip("link", "add", self.veth_r, "netns", self.ns_r, "type", "veth",
           "peer", "name", self.veth_s, "netns", self.ns_s)
        rng = random.Random()
        net = f"10.{rng.randint(200, 250)}.{rng.randint(0, 255)}"
        self.addr_r, self.addr_s = f"{net}.1", f"{net}.2"
        for ns, dev, addr in ((self.ns_r, self.veth_r, self.addr_r),
                              (self.ns_s, self.veth_s, self.addr_s)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        self.wr, self.ws = NsWorker(self.ns_r), NsWorker(self.ns_s)
        self.ns_procs = []

    def _remove_namespaces(self):
        for p in getattr(self, "ns_procs", []):
            if p.alive():
                p.stop(timeout=3)
        for w in ("wr", "ws"):
            if hasattr(self, w):
                getattr(self, w).close()
        for ns in (self.ns_s, self.ns_r):
            ip("netns", "del", ns, check=False)

    def start_in(self, ns, name, argv):
        p = self.track(Proc(name, ["ip", "netns", "exec", ns, *argv], self.tmpdir))
        self.ns_procs.append(p)
        return p

    def readyz(self, worker, admin_port):
        try:
            return worker.call(http_get, admin_port, "/readyz", timeout=5)
        except OSError as e:
            return (type(e).__name__, "")

    def wait_ready(self, worker, admin_port, proc, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assertTrue(proc.alive(), proc.stderr_text()[-2000:])
            if self.readyz(worker, admin_port)[0] == 200:
                return time.monotonic()
            time.sleep(0.05)
        self.fail(f"{proc.name} not ready within {timeout}s")

    def numsub(self):
        return self.wr.call(resp_numsub, self.redis_port, PREFIX + CHANNEL)

    def test_link_down_then_up(self):
        self.redis_port = free_port()
        rdir = os.path.join(self.tmpdir, "redis")
        os.makedirs(rdir)
        redis = self.start_in(self.ns_r, "redis", [
            REDIS_SERVER, "--port", str(self.redis_port), "--bind", self.addr_r, "127.0.0.1",
            "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", rdir])
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.wr.call(resp_command, self.redis_port, b"PING").startswith(b"+PONG"):
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "redis in namespace R did not start")
            time.sleep(0.05)
        url = f"redis://{self.addr_r}:{self.redis_port}"
        pods = {}
        for ns, worker, name in ((self.ns_r, self.wr, "podR"), (self.ns_s, self.ws, "podS")):
            port, admin = free_port(), free_port()
            proc = self.start_in(ns, name, [PODRELAY_BIN, "--listen", f"127.0.0.1:{port}",
                                            "--admin-listen", f"127.0.0.1:{admin}",
                                            "--redis", url, "--log-level", "debug"])
            pods[name] = (worker, port, admin, proc)
        for name, (worker, port, admin, proc) in pods.items():
            self.wait_ready(worker, admin, proc)
        _, port_r, admin_r, proc_r = pods["podR"]
        _, port_s, admin_s, proc_s = pods["podS"]
        col_s = self.ws.call(Collector.connect, port_s, [CHANNEL], name="colS")
        col_r = self.wr.call(Collector.connect, port_r, [CHANNEL], name="colR")
        for c in (col_s, col_r):
            self.addCleanup(c.close)
        ticker = self.wr.call(AckedPublisher.connect, port_r, CHANNEL, "T", 20, 4000, 120,
                              name="ticker")
        pub_s = self.ws.call(AckedPublisher.connect, port_s, "fromS", "S", 50, 10000, 120,
                             name="pubS")
        for p in (ticker, pub_s):
            self.addCleanup(p.close)
            p.start()
        deadline = time.monotonic() + 10
        while self.numsub() != 2:
            self.assertLess(time.monotonic(), deadline, "subscriptions not on Redis")
            time.sleep(0.05)
        time.sleep(1.5)
        self.assertGreater(len(col_s.msgs), 10, "no delivery to pod S before the partition")

        # --- partition ---------------------------------------------------------------
        t_down = time.monotonic()
        ip("-n", self.ns_r, "link", "set", self.veth_r, "down")
        t503 = None
        reason = ""
        while time.monotonic() < t_down + 12:
            st, body = self.readyz(self.ws, admin_s)
            if st == 503:
                t503 = time.monotonic() - t_down
                reason = body.strip()
                break
            time.sleep(0.05)
        self.assertIsNotNone(t503, "/readyz of pod S did not turn 503 within 12 s")
        n_before = len(col_s.msgs)
        time.sleep(max(0.0, 6.0 - (time.monotonic() - t_down)))
        during = len(col_s.msgs) - n_before
        self.assertTrue(proc_s.alive() and proc_r.alive())

        # --- heal --------------------------------------------------------------------
        t_up = time.monotonic()
        ip("-n", self.ns_r, "link", "set", self.veth_r, "up")
        t_ready = self.wait_ready(self.ws, admin_s, proc_s, timeout=20) - t_up
        n_at_up = len(col_s.msgs)
        self.assertTrue(col_s.wait_for(lambda c: len(c.msgs) > n_at_up + 5, 20),
                        "delivery to pod S did not resume")
        t_deliv = col_s.msgs[n_at_up][2] - t_up
        numsub_seen = self.numsub()
        deadline = time.monotonic() + 20
        while self.numsub() != 2:  # a stale connection goes once Redis writes to it
            self.assertLess(time.monotonic(), deadline, f"NUMSUB {self.numsub()} != 2")
            time.sleep(0.1)
        t_numsub = time.monotonic() - t_up
        time.sleep(1.0)
        for p in (ticker, pub_s):
            p.stop_sending()
            p.wait_answered(20)

        # accounting on both publishers
        for p in (ticker, pub_s):
            c = p.counts()
            self.assertEqual(c["unanswered"], 0, f"{p.tag}: {c}")
            self.assertEqual(c["multi"], 0, f"{p.tag}: {c}")
            bad = {k: v for k, v in c.items() if k.startswith("err")
                   and k not in ("err300", "err301", "err302")}
            self.assertEqual(bad, {}, f"{p.tag}: {c}")
        self.assertEqual(ticker.counts()["ok"], ticker.counts()["sent"])
        got_r = col_r.payloads()
        self.assertEqual(got_r, [ticker.payload(s) for s in sorted(ticker.sent)],
                         "pod R (same namespace as Redis) must not lose anything")
        got_s = col_s.payloads()
        self.assertEqual(len(got_s), len(set(got_s)), "duplicates on pod S")
        seqs = [int(p.split(b":")[1]) for p in got_s]
        self.assertEqual(seqs, sorted(seqs), "pod S out of order")
        after_heal = [ticker.payload(s) for s in sorted(ticker.sent)
                      if ticker.sent[s] > t_up + t_numsub]
        self.assertTrue(set(after_heal) <= set(got_s), "pod S missed ticks after the heal")
        self.assertLessEqual(t503, 4.0 + 0.75, f"readyz 503 after {t503:.2f}s; bound 4 s")
        figure("partition", readyz_503_after_link_down_s=t503, bound_s=4.0, reason=reason,
               partition_s=t_up - t_down, ticks_to_S_during_partition=during,
               readyz_200_after_link_up_s=t_ready, first_delivery_after_link_up_s=t_deliv,
               numsub_right_after_ready=numsub_seen, numsub_2_after_link_up_s=t_numsub,
               pubS=pub_s.counts(), ticks=ticker.counts()["sent"],
               ticks_delivered_S=len(got_s), ticks_delivered_R=len(got_r))


if __name__ == "__main__":
    unittest.main()
