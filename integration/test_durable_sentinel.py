"""Durable channels across a Sentinel failover with --durable-min-replicas 1: a master, one
replica, three sentinels, two sidecars. A publish answered PUBOK was on the replica
(WAIT 1), so it survives the master's SIGKILL: both pods deliver every one of them exactly
once, in order, from the promoted replica. After the failover the new master has no
replica, so publishes are appended but answered ERR 304 NOT_REPLICATED, and delivered too.
"""

from __future__ import annotations

import time
from typing import List

from harness import Sidecar, proto, wait_for
from test_durable import DurableLoad, v2
from test_sentinel import SentinelCase  # the set-up only: it has no test of its own


class DurableSentinelFailoverTest(SentinelCase):

    def test_acked_durable_messages_survive_the_failover(self):
        master, replica, _, url = self.start_failover_set()
        args = ["--durable", "room:*", "--durable-min-replicas", "1",
                "--publish-buffer-timeout", "8"]
        pods = [Sidecar(self, f"pod{i}", url, args).start() for i in range(2)]
        subs = [v2(p, f"sub{i}") for i, p in enumerate(pods)]
        for s in subs:
            self.assertEqual(s.resume("room:fo").recovered, 1)
        load = DurableLoad(v2(pods[0], "pub"), "room:fo", b"f", 5000, 20, 0.003).start()
        acked, outcomes = load.acked, load.nacked
        try:
            wait_for(lambda: len(acked) > 50, 20, what="acked publishes before the kill")
            master.kill()
            wait_for(lambda: replica.cli("ROLE").startswith("master"), 30, interval=0.05,
                     what="the replica promoted to master")
            for p in pods:
                p.wait_ready(timeout=20)
            wait_for(lambda: outcomes.get(proto.NOT_REPLICATED, 0) > 5, 20,
                     what="publishes on the promoted master (no replica left: 304)")
        finally:
            load.stop()
        self.assertFalse(load.running())
        want = set(acked)
        last = b"f%06d" % (max(int(a[1:]) for a in acked) if acked else 0)
        for i, s in enumerate(subs):
            got: List[bytes] = []
            deadline = time.monotonic() + 30
            # every acked one, and one published after the failover (answered 304)
            while ((not want.issubset(got) or not any(g > last for g in got))
                   and time.monotonic() < deadline):
                m = s.recv_smsg(timeout=1)
                if m is not None:
                    got.append(m.payload)
            with self.subTest(pod=i):
                self.assertEqual(want.difference(got), set(), f"pod {i} missed acked messages")
                self.assertEqual(len(got), len(set(got)), "a message arrived twice")
                self.assertEqual(got, sorted(got), "out of order")
                self.assertTrue(any(g > last for g in got),
                                "nothing published after the failover was delivered")
