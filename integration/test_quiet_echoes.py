"""Quiet echoes (README "Lazy reads", redis/subscriber.hpp): the echo of a PUBX whose sender
is the only local subscriber of its channel is withheld anyway, so the sidecar leaves it in
its subscriber socket (SO_RCVLOWAT just above the echo bytes still to come) instead of
waking for it, until something else arrives or the lazy-read window ends. Nothing else may
wait behind it: another pod's message, a subscription's confirmation, a pattern copy, a
copy another local connection receives.

Sidecar A runs with a long window (--lazy-read-seconds 12: a spell lasts 10.5 to 12 s) and no
health PINGs during the test, so "not read yet" and "read at once" are seconds apart: every
bound below is under half the shortest spell. The bytes the sidecar expects are checked
both ways: one byte too few and the echo alone wakes it (its echo is counted at once); more
than a small message too many and that message waits for the spell's end.
"""

from __future__ import annotations

import time
import unittest

from harness import IntegrationCase, wait_for
from harness_ext import metric, sidecar_metrics
from test_pubx import payloads_until

WINDOW = ["--lazy-read-seconds", "12", "--redis-ping-interval", "60",
          "--redis-ping-timeout", "120"]
PROMPT = 3.0  # seconds: "at once", against a spell of 10.5 s or more


class QuietEchoesTest(IntegrationCase):

    def setUp(self):
        super().setUp()
        self.redis = self.start_redis()
        self.a = self.start_sidecar("podA", self.redis, WINDOW)
        self.b = self.start_sidecar("podB", self.redis)

    def v3(self, pod, *channels):
        c = pod.client(hello=False)
        self.assertEqual(c.hello(b"v3", version=3).version, 3)
        if channels:
            c.subscribe(*channels)
        return c

    def withheld(self) -> float:
        return metric(sidecar_metrics(self.a), "podrelay_echoes_withheld_total")

    def test_an_echo_nobody_needs_waits_but_nothing_waits_behind_it(self):
        a1 = self.v3(self.a, "x")
        watcher = self.b.client()
        watcher.subscribe("x")
        remote = self.b.client()
        a1.publish("x", b"e1", echo=False)  # acked: Redis has published it
        self.assertEqual(self.expect_msgs(watcher, 1)[0].payload, b"e1")
        time.sleep(0.3)  # the echo reached sidecar A's socket meanwhile
        self.assertEqual(self.withheld(), 0, "the echo woke the sidecar (mark too low)")

        # Another pod's message behind the echo comes at once, and brings the echo in.
        remote.publish("x", b"f1")
        m = a1.recv_msg(timeout=PROMPT)
        self.assertIsNotNone(m, "another pod's message waited behind the echo (mark too high)")
        self.assertEqual(m.payload, b"f1")
        self.assertEqual(self.withheld(), 1)
        self.assertEqual(self.expect_msgs(watcher, 1)[0].payload, b"f1")

        # A confirmation is not held either, even while an echo bigger than it is still on
        # its way: Redis holds the publish (CLIENT PAUSE WRITE) but answers the SUBSCRIBE.
        self.redis.cli("CLIENT", "PAUSE", "5000", "WRITE")
        a1.publish("x", b"e2" * 100, ack=False, echo=False)
        started = time.monotonic()
        a1.subscribe("y", timeout=PROMPT)
        self.assertLess(time.monotonic() - started, PROMPT)
        self.redis.cli("CLIENT", "UNPAUSE")
        self.assertEqual(self.expect_msgs(watcher, 1)[0].payload, b"e2" * 100)

        # The spell's timer reads what nobody woke the sidecar for.
        a1.publish("x", b"e3", echo=False)
        self.assertEqual(self.expect_msgs(watcher, 1)[0].payload, b"e3")
        wait_for(lambda: self.withheld() == 3, 20, what="the spell's end reading the echoes")
        remote.publish("x", b"end")
        self.assertEqual(payloads_until(self, a1, b"end"), [])  # none of its own came back
        m = sidecar_metrics(self.a)
        self.assertEqual(metric(m, "podrelay_messages_unrouted_total"), 0)
        self.assertEqual(metric(m, "podrelay_messages_dropped_total"), 0)

    def echo_copy_comes_at_once(self, other, why: str):
        """A PUBX sender on sidecar A publishes; `other` (also on A) must get a copy now."""
        sender = self.v3(self.a, "x")
        sender.publish("x", b"e1", ack=False, echo=False)
        m = other.recv_msg(timeout=PROMPT)
        self.assertIsNotNone(m, why)
        self.assertEqual(m.payload, b"e1")
        return m

    def test_an_echo_another_local_connection_receives_is_read_at_once(self):
        a2 = self.a.client()
        a2.subscribe("x")
        self.echo_copy_comes_at_once(a2, "the copy for another local connection waited")
        self.assertEqual(self.withheld(), 1)

    def test_a_pattern_copy_of_the_echo_is_read_at_once(self):
        a3 = self.a.client()
        a3.psubscribe("x*")
        m = self.echo_copy_comes_at_once(a3, "the pattern copy waited behind the quiet echo")
        self.assertEqual(m.pattern, b"x*")

    def test_many_quiet_echoes_at_the_default_window_are_all_withheld(self):
        # The default window (5 ms) on another sidecar, sender and watcher on different pods.
        c = self.start_sidecar("podC", self.redis)
        sender = self.v3(c, "z")
        watcher = self.a.client()
        watcher.subscribe("z")
        remote = self.b.client()
        n = 2000
        for i in range(n):
            sender.publish("z", b"q-%d" % i, ack=False, echo=False)
            if i % 100 == 0:
                remote.publish("z", b"r-%d" % i, ack=False)
                time.sleep(0.002)  # several spells, not one burst
        sender.publish("z", b"q-last", echo=False)  # acked: all of the sender's are published
        remote.publish("z", b"end")
        seen = payloads_until(self, watcher, b"end")
        self.assertEqual(len(seen), n + 1 + n // 100)
        self.assertEqual(payloads_until(self, sender, b"end"),
                         [b"r-%d" % i for i in range(0, n, 100)])
        wait_for(lambda: metric(sidecar_metrics(c), "podrelay_echoes_withheld_total") == n + 1, 10,
                 what="every echo withheld")


if __name__ == "__main__":
    unittest.main()
