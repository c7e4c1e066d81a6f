"""The Redis-protocol front end on Redis Cluster: a RESP client's SUBSCRIBE becomes an
SSUBSCRIBE on the shard owning the channel's slot, its PUBLISH an SPUBLISH there, PUBSUB
NUMSUB counts shard subscribers on the owner, and PSUBSCRIBE answers a clear error. Real
cluster of redis-server processes (3 masters, 3 replicas) and real sidecars."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster_harness import PREFIX, spread_channels  # noqa: E402
from harness import Sidecar, free_port  # noqa: E402
from test_cluster import ClusterCase  # noqa: E402
from test_resp_session import Resp  # noqa: E402


class TestRespOnCluster(ClusterCase):

    def resp_sidecar(self, name, seeds):
        port = free_port()
        # The prefix makes the Redis names those spread_channels() computed slots for.
        s = Sidecar(self, name, self.cluster.url(seeds),
                    ["--resp-listen", f"127.0.0.1:{port}", "--resp-channel-prefix", PREFIX])
        s.start(wait_ready=True)
        s.resp_port = port
        return s

    def test_subscribe_and_publish_are_sharded_and_psubscribe_is_refused(self):
        cl = self.cluster
        masters = cl.masters()
        a = self.resp_sidecar("a", [masters[0]])
        b = self.resp_sidecar("b", [masters[1]])
        channels = spread_channels(cl, 12)
        by_master = self.channels_by_master(channels)
        self.assertTrue(all(len(v) >= 1 for v in by_master.values()),
                        {m.name: len(v) for m, v in by_master.items()})

        sub = Resp(self, b.resp_port)
        sub.send("SUBSCRIBE", *channels)
        got = [sub.reply(timeout=10) for _ in channels]
        self.assertEqual(got, [[b"subscribe", ch.encode(), (":", str(i + 1))]
                               for i, ch in enumerate(channels)])
        # One shard subscription per channel, on the master that owns its slot.
        for m, chans in by_master.items():
            for ch in chans:
                self.assertEqual(m.shardnumsub(PREFIX + ch), 1, (m.name, ch))

        pub = Resp(self, a.resp_port)
        for ch in channels:
            pub.send("PUBLISH", ch, f"hi {ch}")
        # SPUBLISH on the owner answers its shard subscribers: sidecar b's one SSUBSCRIBE
        self.assertEqual([pub.reply(timeout=10) for _ in channels], [(":", "1")] * len(channels))
        msgs = [sub.reply(timeout=10) for _ in channels]
        self.assertEqual(sorted(msgs), sorted([b"message", ch.encode(), b"hi " + ch.encode()]
                                              for ch in channels))

        first = next(iter(channels))
        pub.send("PUBSUB", "NUMSUB", first)
        self.assertEqual(pub.reply(timeout=10), [first.encode(), (":", "1")])

        pub.send("PSUBSCRIBE", "ch*")
        kind, text = pub.reply()
        self.assertEqual(kind, "-", text)
        pub.send("PING")
        self.assertEqual(pub.reply(), ("+", "PONG"))  # the connection stays usable


if __name__ == "__main__":
    unittest.main()
