"""PUBX (protocol version 3): publish, but not back to the connection that sent it.

Real redis-server, two real sidecars (two pods). Whether a message was withheld is decided
against a marker published after it on the same channel (Redis keeps one channel's order),
never by waiting: the marker arriving means everything before it has arrived too.
"""

from __future__ import annotations

import unittest

from harness import IntegrationCase, ServerError, proto
from harness_ext import metric, sidecar_metrics


def payloads_until(case, client, marker: bytes, limit: int = 10000, timeout: float = 15.0):
    """Payloads (channel subscription copies, then pattern copies tagged) up to `marker`."""
    got = []
    for _ in range(limit):
        m = client.recv_msg(timeout=timeout)
        case.assertIsNotNone(m, f"no marker {marker!r}; got {got[-5:]}")
        if m.payload == marker and not m.pattern:
            return got
        got.append((m.payload, m.pattern) if m.pattern else m.payload)
    case.fail("marker never came")


class PubxTest(IntegrationCase):

    def setUp(self):
        super().setUp()
        self.redis = self.start_redis()
        self.a = self.start_sidecar("podA", self.redis)
        self.b = self.start_sidecar("podB", self.redis)

    def v3(self, pod, *channels):
        c = pod.client(hello=False)
        w = c.hello(b"v3", version=3)
        self.assertEqual(w.version, 3)
        if channels:
            c.subscribe(*channels)
        return c

    def test_the_sender_alone_misses_its_own_message(self):
        a1 = self.v3(self.a, "x")          # sends PUBX
        a2 = self.a.client()               # version 1, same sidecar
        a2.subscribe("x")
        b1 = self.v3(self.b, "x")          # sends PUBX on the other pod
        a1.publish("x", b"from-a1", echo=False)   # acked: OK as for PUB
        b1.publish("x", b"from-b1", echo=False)
        a2.publish("x", b"end")
        self.assertEqual(payloads_until(self, a1, b"end"), [b"from-b1"])
        self.assertEqual(payloads_until(self, a2, b"end"), [b"from-a1", b"from-b1"])
        self.assertEqual(payloads_until(self, b1, b"end"), [b"from-a1"])
        for pod in (self.a, self.b):
            with self.subTest(pod=pod.name):
                m = sidecar_metrics(pod)
                self.assertEqual(metric(m, "podrelay_echoes_withheld_total"), 1)
                self.assertEqual(metric(m, "podrelay_frames_received_total", type="PUBX"), 1)
                self.assertEqual(metric(m, "podrelay_messages_unrouted_total"), 0)

    def test_interleaved_fire_and_forget_from_two_senders_on_one_pod(self):
        # Two PUBX senders share the sidecar's publisher link and its echo filter; a third
        # connection sees everything, each sender everything but its own, in Redis' order.
        s1, s2 = self.v3(self.a, "x"), self.v3(self.a, "x")
        watcher = self.b.client()
        watcher.subscribe("x")
        remote = self.b.client()
        n = 300
        for i in range(n):
            s1.publish("x", b"s1-%d" % i, ack=False, echo=False)
            s2.publish("x", b"s2-%d" % i, ack=False, echo=False)
            if i % 50 == 0:
                remote.publish("x", b"r-%d" % i, ack=False)
        s1.publish("x", b"s1-last", echo=False)  # acked: everything before it reached Redis
        s2.publish("x", b"s2-last", echo=False)
        remote.publish("x", b"end")
        everything = payloads_until(self, watcher, b"end")
        self.assertEqual(len(everything), 2 * n + 2 + n // 50)
        self.assertEqual(payloads_until(self, s1, b"end"),
                         [p for p in everything if not p.startswith(b"s1-")])
        self.assertEqual(payloads_until(self, s2, b"end"),
                         [p for p in everything if not p.startswith(b"s2-")])
        self.assertEqual(metric(sidecar_metrics(self.a), "podrelay_echoes_withheld_total"),
                         2 * n + 2)

    def test_a_pattern_subscription_still_gets_the_message(self):
        a1 = self.v3(self.a, "x")
        a1.psubscribe("x*")
        a1.publish("x", b"mine", echo=False)
        other = self.b.client()
        other.publish("x", b"end")
        # The channel copy of "mine" is withheld; the pattern copy is delivered (PROTOCOL.md);
        # the marker's pattern copy comes after its channel copy or before: either is fine.
        got = [p for p in payloads_until(self, a1, b"end") if p != (b"end", b"x*")]
        self.assertEqual(got, [(b"mine", b"x*")])

    def test_a_sender_that_is_not_subscribed_changes_nothing(self):
        a1 = self.v3(self.a)
        a2 = self.a.client()
        a2.subscribe("x")
        a1.publish("x", b"one", echo=False)
        # The OK only says Redis took "one"; its copy may still be on its way to this sidecar.
        # Wait until a2, on the same sidecar, has it, so a1's SUB cannot race the copy (a
        # subscription that took effect first would rightly receive it, PUBX or not).
        self.assertEqual(a2.recv_msg(timeout=15.0).payload, b"one")
        a1.subscribe("x")
        a1.publish("x", b"two", echo=False)
        a2.publish("x", b"end")
        self.assertEqual(payloads_until(self, a2, b"end"), [b"two"])
        self.assertEqual(payloads_until(self, a1, b"end"), [])

    def test_pubx_needs_version_3_and_costs_other_connections_nothing(self):
        bystander = self.a.client()
        bystander.subscribe("x")
        for version in (1, 2):
            with self.subTest(version=version):
                c = self.a.client(hello=False)
                c.hello(b"old", version=version)
                c.send_raw(proto.encode_pubx(5, b"x", b"nope"))
                with self.assertRaises(ServerError) as e:
                    c.publish("x", b"after")
                self.assertEqual(e.exception.code, proto.UNKNOWN_TYPE)
                self.assertIn(b"PUBX needs", e.exception.message)
        bystander.publish("x", b"end")
        self.assertEqual(payloads_until(self, bystander, b"end"), [])

    def test_hello_version_3_is_answered_with_version_3(self):
        c = self.a.client(hello=False)
        w = c.hello(b"v3", version=3)
        self.assertEqual(w.version, 3)
        self.assertEqual(c.publish_durable("plain", b"p"), b"")  # version 2 holds: OK answer


if __name__ == "__main__":
    unittest.main()
