"""Lazy replies on the publisher connection (README "Metrics", redis/publisher.hpp): while no
reply in flight is awaited (fire-and-forget publishes only), the sidecar leaves Redis'
answers in the socket for up to 5 ms or 4 KiB instead of waking for each one. Every reply
is still read and counted, errors included, with no further traffic needed; an awaited
publish is answered as before. Real redis-server and sidecar processes.
"""

from __future__ import annotations

import unittest

from harness import IntegrationCase, Sidecar, proto, wait_for
from harness_ext import metric, sidecar_metrics
from test_conformance import Raw, acl_redis, kinds


class LazyRepliesTest(IntegrationCase):

    def test_fire_and_forget_publishes_are_all_counted_but_not_timed(self):
        redis = self.start_redis()
        a = self.start_sidecar("podA", redis)
        b = self.start_sidecar("podB", redis)
        sub = b.client()
        sub.subscribe("ff")
        pub = a.client()
        before = sidecar_metrics(a)
        n = 20000  # replies well past the 4 KiB that wake the reader early
        pub.publish_many("ff", [b"%06d" % i for i in range(n)])
        got = [m.payload for m in self.expect_msgs(sub, n, timeout=60)]
        self.assertEqual(got, [b"%06d" % i for i in range(n)])

        def published():
            return metric(sidecar_metrics(a), "podrelay_messages_published_total") - \
                metric(before, "podrelay_messages_published_total")
        wait_for(lambda: published() == n, 10, what=f"{n} publishes counted")
        after = sidecar_metrics(a)
        # Read lazily, so no round trip was measured for most of them (the first write of
        # a burst may still go out while an earlier mode holds); never one per publish.
        timed = metric(after, "podrelay_redis_publish_latency_seconds_count") - \
            metric(before, "podrelay_redis_publish_latency_seconds_count")
        self.assertLess(timed, n / 2, "fire-and-forget replies were read one by one")
        self.assertEqual(metric(after, "podrelay_messages_dropped_total"), 0)
        # An acked publish right after: answered, and its round trip measured.
        pub.publish("ff", b"acked")
        self.assertEqual(self.expect_msgs(sub, 1)[0].payload, b"acked")
        wait_for(lambda: metric(sidecar_metrics(a),
                                "podrelay_redis_publish_latency_seconds_count") >=
                 metric(after, "podrelay_redis_publish_latency_seconds_count") + 1, 5,
                 what="the acked publish's round trip observed")

    def test_refused_fire_and_forget_publish_is_counted_with_no_more_traffic(self):
        # User "app" may use only channels podrelay:ok*: Redis answers NOPERM. Nothing is
        # sent after the one publish, so only the lazy-reply timer can bring its reply in.
        redis = acl_redis(self)
        pod = Sidecar(self, "pod", f"redis://app:apppw@127.0.0.1:{redis.port}").start(True)
        c = Raw(self, pod.port)
        c.send(proto.encode_pub(0, b"bad", b"x"))
        wait_for(lambda: metric(sidecar_metrics(pod), "podrelay_messages_dropped_total",
                                reason="redis_error") == 1, 5,
                 what="the refused fire-and-forget publish counted as dropped")
        # The connection and the sidecar are fine; an acked refused publish is nacked.
        c.send(proto.encode_pub(7, b"bad", b"y") + proto.encode_ping(8))
        got = kinds(c.collect(2, 5))
        self.assertEqual([k[:3] for k in got if k[0] == "ERR"], [("ERR", 7, proto.REDIS_ERROR)])
        self.assertIn(("PONG", 8), got)


if __name__ == "__main__":
    unittest.main()
