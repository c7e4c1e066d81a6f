"""redis-cli (Debian redis-tools), unmodified, on the RESP port (issue 11): SUBSCRIBE,
PSUBSCRIBE, PUBLISH, PING in subscribed mode, RESP3 (``redis-cli -3``), an unsupported
command. Each mixin runs as ``...DirectTest`` (redis-cli on redis-server: the control) and
``...SidecarTest`` (on the pods' RESP ports; see resp_harness)."""

from __future__ import annotations

import subprocess
import unittest

from harness import REDIS_CLI
from resp_harness import Error, Push, RespConn, RespPeerCase

UNSUPPORTED_GET = "ERR podrelay supports only pub/sub commands: 'GET'"
CONTEXT_GET = ("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
               "QUIT / RESET are allowed in this context")


class RedisCliMixin:

    def cli(self, port: int, *args: str, resp3: bool = False, timeout: float = 10.0):
        argv = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port)] + (["-3"] if resp3 else [])
        r = subprocess.run(argv + list(args), capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        self._log_run(argv + list(args), r.returncode, r.stdout, r.stderr)
        return r

    def subscriber(self, name: str, port: int, *args: str, resp3: bool = False):
        argv = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port)] + (["-3"] if resp3 else [])
        return self.peer(name, argv + list(args))

    def conn(self, port: int) -> RespConn:
        c = RespConn(port)
        self.addCleanup(c.close)
        return c

    def test_subscribe_psubscribe_publish(self):
        p1, p2, p3 = self.start_pods(3)
        sub = self.subscriber("cli-sub", p2, "SUBSCRIBE", "news", "other")
        psub = self.subscriber("cli-psub", p3, "PSUBSCRIBE", "ne*")
        sub3 = self.subscriber("cli-sub-resp3", p3, "SUBSCRIBE", "news", resp3=True)
        self.wait_output(sub, "subscribe\nother\n2\n")
        self.wait_output(psub, "psubscribe\nne*\n1\n")
        self.wait_output(sub3, "subscribe\nnews\n1\n")
        self.wait_redis_numsub("news", 2)

        r = self.cli(p1, "PUBLISH", "news", "hello world")
        self.assertEqual((r.returncode, r.stdout), (0, b"3\n"))  # 2 subscribers + 1 pattern
        r = self.cli(p1, "PUBLISH", "news", "résumé", resp3=True)
        self.assertEqual((r.returncode, r.stdout), (0, b"3\n"))
        r = self.cli(p1, "PUBLISH", "nobody-listens", "x")
        self.assertEqual((r.returncode, r.stdout), (0, b"0\n"))
        msgs = "message\nnews\nhello world\nmessage\nnews\nrésumé\n"
        self.assertEqual(self.wait_output(sub, msgs),
                         "subscribe\nnews\n1\nsubscribe\nother\n2\n" + msgs)
        self.assertEqual(self.wait_output(sub3, msgs), "subscribe\nnews\n1\n" + msgs)
        pmsgs = "pmessage\nne*\nnews\nhello world\npmessage\nne*\nnews\nrésumé\n"
        self.assertEqual(self.wait_output(psub, pmsgs), "psubscribe\nne*\n1\n" + pmsgs)

    def test_ping_and_commands_in_subscribed_mode(self):
        p1, p2, _ = self.start_pods(3)
        c = self.conn(p2)
        self.assertEqual(c.call("SUBSCRIBE", "a", "b"), [b"subscribe", b"a", 1])
        self.assertEqual(c.read(), [b"subscribe", b"b", 2])
        self.assertEqual(c.call("PING"), [b"pong", b""])
        self.assertEqual(c.call("PING", "hi"), [b"pong", b"hi"])
        self.assertEqual(c.call("GET", "x"), CONTEXT_GET)
        self.assertEqual(c.call("PSUBSCRIBE", "z*"), [b"psubscribe", b"z*", 3])
        self.wait_redis_numsub("a", 1)
        self.assertEqual(self.cli(p1, "PUBLISH", "a", "m1").stdout, b"1\n")
        self.assertEqual(c.read(), [b"message", b"a", b"m1"])
        u1, u2 = c.call("UNSUBSCRIBE"), c.read()  # Redis' order is its dict's
        self.assertEqual(sorted([u1[1], u2[1]]), [b"a", b"b"])
        self.assertEqual([u1[0], u1[2], u2[0], u2[2]], [b"unsubscribe", 2, b"unsubscribe", 1])
        self.assertEqual(c.call("PUNSUBSCRIBE"), [b"punsubscribe", b"z*", 0])
        self.assertEqual(c.call("PING"), "PONG")  # back in normal mode

    def test_resp3(self):
        p1, p2, _ = self.start_pods(3)
        r = self.cli(p2, "HELLO", "3", resp3=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        for line in (b"server redis\n", b"proto 3\n", b"mode standalone\n", b"role master\n"):
            self.assertIn(line, r.stdout)
        self.assertEqual(self.cli(p2, "PING", resp3=True).stdout, b"PONG\n")
        c = self.conn(p2)
        hello = c.call("HELLO", "3")
        self.assertEqual((hello["server"], hello["proto"]), (b"redis", 3))
        self.assertEqual(c.call("SUBSCRIBE", "r3"), Push([b"subscribe", b"r3", 1]))
        self.assertEqual(c.call("PING"), "PONG")  # RESP3: normal replies while subscribed
        self.wait_redis_numsub("r3", 1)
        self.assertEqual(self.cli(p1, "PUBLISH", "r3", "pushed").stdout, b"1\n")
        self.assertEqual(c.read(), Push([b"message", b"r3", b"pushed"]))

    def test_a_selected_database_does_not_matter_to_pub_sub(self):
        # As in Redis, a publish on one database reaches a subscriber on another (apps that
        # SELECT 1 for their pub/sub connection: before, the sidecar refused it).
        p1, p2, _ = self.start_pods(3)
        sub = self.subscriber("cli-db1", p2, "-n", "1", "SUBSCRIBE", "dbnews")
        self.wait_output(sub, "subscribe\ndbnews\n1\n")
        self.wait_redis_numsub("dbnews", 1)
        r = self.cli(p1, "-n", "2", "PUBLISH", "dbnews", "across")
        self.assertEqual((r.returncode, r.stdout), (0, b"1\n"), r.stderr)
        self.wait_output(sub, "subscribe\ndbnews\n1\nmessage\ndbnews\nacross\n")
        c = self.conn(p1)  # redis-cli goes on after a refused SELECT; a client may not
        self.assertEqual(c.call("SELECT", "1"), "OK")
        self.assertEqual(c.call("SELECT", "16"), "ERR DB index is out of range")
        self.assertEqual(c.call("PUBLISH", "dbnews", "from db 1"), 1)
        out = self.wait_output(sub, "from db 1\n")
        self.assertTrue(out.endswith("across\nmessage\ndbnews\nfrom db 1\n"), out)

    def test_unsupported_command_keeps_connection_usable(self):
        _, p2, _ = self.start_pods(3)
        r = self.cli(p2, "GET", "x")
        c = self.conn(p2)
        got = c.call("GET", "x")
        if self.sidecar:
            self.assertEqual(r.stdout.strip(), UNSUPPORTED_GET.encode())
            self.assertEqual(got, UNSUPPORTED_GET)
            self.assertIsInstance(got, Error)
            self.assertEqual(c.call("SET", "k", "v"),
                             "ERR podrelay supports only pub/sub commands: 'SET'")
        else:  # Redis runs it: a nil, printed by redis-cli as an empty line
            self.assertEqual(r.stdout, b"\n")
            self.assertIsNone(got)
        self.assertEqual(c.call("PING"), "PONG")
        self.assertEqual(c.call("ECHO", "still here"), b"still here")
        self.assertEqual(c.call("PUBLISH", "nobody", "x"), 0)


class RedisCliDirectTest(RedisCliMixin, RespPeerCase):
    target = "direct"


class RedisCliSidecarTest(RedisCliMixin, RespPeerCase):
    target = "sidecar"


if __name__ == "__main__":
    unittest.main()
