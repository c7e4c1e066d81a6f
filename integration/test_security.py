"""Security: app auth token, loopback-only listening, Redis AUTH (ACL user, requirepass via
--redis-password-file), Redis TLS (CA, wrong CA, client certificates), and secrets kept out
of the daemon's own output (text and JSON logs at debug level) and out of /metrics."""

from __future__ import annotations

import os
import subprocess
import time
import unittest

from harness import PODRELAY_BIN, REPO_ROOT, IntegrationCase, Proc, Sidecar, free_port, proto
from harness_ext import (Collector, RedisExt, daemon_output, figure, make_test_pki, raw_exchange,
                         secret_file)

TOKEN = "tok-9fJ3kLw2-app-secret"
PASSWORD = "pw-Zq8xR2mS-redis-secret"
WRONG_PASSWORD = "pw-WRONG-7Hq2-secret"
SECRETS = (TOKEN, PASSWORD, WRONG_PASSWORD)


class SecurityCase(IntegrationCase):

    def sidecar(self, name, url, extra=(), wait_ready=True, json_logs=None):
        # debug logs everywhere (harness); JSON on all pods but podB, which logs text
        if json_logs is None:
            json_logs = name != "podB"
        extra = list(extra) + (["--log-format", "json"] if json_logs else [])
        return Sidecar(self, name, url, extra).start(wait_ready)

    def secret_file(self, name, content):
        return secret_file(self.tmpdir, name, content)

    def assert_delivery(self, pod_a, pod_b, channel="sec", **client_kw):
        col = Collector.connect(pod_b.port, [channel], name="col", **client_kw)
        self.addCleanup(col.close)
        pub = pod_a.client(**client_kw)
        pub.publish(channel, b"across pods")
        t = col.wait_payload(b"across pods", 10)
        self.assertIsNotNone(t, "message did not cross pods")

    def assert_no_secrets(self, *pods):
        for pod in pods:
            out = daemon_output(pod.proc)
            status, metrics = pod.get("/metrics")
            for s in SECRETS:
                self.assertNotIn(s, out, f"secret in {pod.name}'s own output")
                self.assertNotIn(s, metrics, f"secret in {pod.name}'s /metrics")

    def assert_not_ready(self, pod, log_needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log_needle in daemon_output(pod.proc):
                break
            time.sleep(0.1)
        out = daemon_output(pod.proc)
        self.assertIn(log_needle, out, "expected log line missing")
        status, body = pod.get("/readyz")
        self.assertEqual(status, 503, body)
        self.assertEqual(len(body.strip().splitlines()), 1, body)
        line = next(l for l in out.splitlines() if log_needle in l)
        return body.strip(), line


class AppAuthTest(SecurityCase):

    def test_auth_token(self):
        redis = RedisExt(self).start()
        token_file = self.secret_file("token", TOKEN)
        pod = self.sidecar("pod", redis.url, ["--auth-token-file", token_file])
        col = Collector.connect(pod.port, ["auth"], name="good", token=TOKEN.encode())
        self.addCleanup(col.close)
        good = pod.client(auth_token=TOKEN)
        good.publish("auth", b"with token")
        self.assertIsNotNone(col.wait_payload(b"with token", 5))
        attempts = {
            "wrong": proto.encode_hello(b"x", TOKEN[:-1].encode()),
            "missing": proto.encode_hello(b"x", b""),
            "token_plus_newline": proto.encode_hello(b"x", (TOKEN + "\n").encode()),
            "wrong_then_pub": proto.encode_hello(b"x", b"nope") +
            proto.encode_pub(9, "auth", b"sneaky"),
            "wrong_then_sub_ping": proto.encode_hello(b"x", b"nope") +
            proto.encode_sub(3, ["auth"]) + proto.encode_ping(4),
        }
        for what, data in attempts.items():
            with self.subTest(what):
                frames, end, trailing = raw_exchange(pod.port, data)
                self.assertEqual([(type(f).__name__, getattr(f, "code", None)) for f in frames],
                                 [("Err", proto.AUTH_FAILED)], frames)
                self.assertIn(end, ("eof", "reset"))
        frames, end, _ = raw_exchange(pod.port, proto.encode_pub(5, "auth", b"no hello"))
        self.assertEqual([getattr(f, "code", None) for f in frames], [proto.HANDSHAKE_REQUIRED])
        time.sleep(0.3)
        self.assertEqual(col.payloads(), [b"with token"], "an unauthenticated PUB got through")
        self.assertEqual(redis.numsub("podrelay:auth"), 1)
        self.assert_no_secrets(pod)


class ListenTest(SecurityCase):

    def test_non_loopback_listen_needs_allow_remote(self):
        for addr in (f"0.0.0.0:{free_port()}", f"10.255.1.1:{free_port()}", f"[::]:{free_port()}"):
            with self.subTest(addr=addr):
                r = self.run_cli("--listen", addr, "--redis", "redis://127.0.0.1:1",
                                 "--admin-listen", f"127.0.0.1:{free_port()}",
                                 binary=PODRELAY_BIN, timeout=10)
                self.assertEqual(r.returncode, 2, r.stderr)
                lines = r.stderr.decode().strip().splitlines()
                self.assertEqual(len(lines), 1, lines)
                self.assertTrue(lines[0].startswith("podrelay: "), lines)
                self.assertIn("allow-remote", lines[0])

    def test_allow_remote_listens_on_all_addresses_in_own_netns(self):
        ns = f"prsec{os.getpid() % 100000}"
        r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, timeout=10)
        if r.returncode != 0:
            self.skipTest(f"ip netns not permitted: {r.stderr.decode().strip()}")
        self.addCleanup(subprocess.run, ["ip", "netns", "del", ns], capture_output=True,
                        timeout=10)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True,
                       timeout=10)
        port, admin = free_port(), free_port()
        # Redis is unreachable from the namespace: the app port must still accept and answer
        proc = self.track(Proc("remote", ["ip", "netns", "exec", ns, PODRELAY_BIN,
                                          "--listen", f"0.0.0.0:{port}", "--allow-remote",
                                          "--redis", "redis://127.0.0.1:1",
                                          "--admin-listen", f"127.0.0.1:{admin}"],
                               self.tmpdir))
        probe = ("import socket,sys,time\n"
                 "sys.path.insert(0,%r)\n"
                 "from podrelay import protocol as p\n"
                 "for i in range(100):\n"
                 "    try:\n"
                 "        s=socket.create_connection(('127.0.0.1',%d),1); break\n"
                 "    except OSError: time.sleep(0.05)\n"
                 "s.settimeout(5)\n"
                 "s.sendall(p.encode_hello(b'r')+p.encode_ping(1))\n"
                 "d=p.Decoder(); fr=[]\n"
                 "while len(fr)<2: fr+=d.feed(s.recv(4096))\n"
                 "print(fr[1].type)\n") % (os.path.join(REPO_ROOT, "clients", "python"), port)
        r = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", probe],
                           capture_output=True, timeout=20)
        self.assertEqual(r.stdout.decode().strip(), "PONG", r.stderr.decode())
        self.assertTrue(proc.alive())


class RedisAuthTest(SecurityCase):

    def test_acl_user_in_url_and_wrong_password(self):
        redis = RedisExt(self).start()
        redis.cli("ACL", "SETUSER", "relay", "on", f">{PASSWORD}", "~*", "&*", "+@all")
        redis.cli("ACL", "SETUSER", "default", "off")
        redis.user, redis.password = "relay", PASSWORD
        url = f"redis://relay:{PASSWORD}@127.0.0.1:{redis.port}"
        a = self.sidecar("podA", url)
        b = self.sidecar("podB", url)
        self.assert_delivery(a, b)
        bad = self.sidecar("bad", f"redis://relay:{WRONG_PASSWORD}@127.0.0.1:{redis.port}",
                           wait_ready=False)
        reason, line = self.assert_not_ready(bad, "WRONGPASS")
        nouser = self.sidecar("nouser", f"redis://127.0.0.1:{redis.port}", wait_ready=False)
        reason2, line2 = self.assert_not_ready(nouser, "redis unreachable")
        self.assert_no_secrets(a, b, bad, nouser)
        figure("security.acl", readyz_reason=reason, log_line=line[:300])

    def test_requirepass_with_password_file(self):
        redis = RedisExt(self, extra_args=["--requirepass", PASSWORD], password=PASSWORD).start()
        pw = self.secret_file("redis-password", PASSWORD)
        a = self.sidecar("podA", redis.url, ["--redis-password-file", pw])
        b = self.sidecar("podB", redis.url, ["--redis-password-file", pw])
        self.assert_delivery(a, b)
        wrong = self.secret_file("wrong-password", WRONG_PASSWORD)
        bad = self.sidecar("bad", redis.url, ["--redis-password-file", wrong], wait_ready=False)
        reason, line = self.assert_not_ready(bad, "WRONGPASS")
        # the file wins over a password in the URL
        c = self.sidecar("podC", f"redis://:{WRONG_PASSWORD}@127.0.0.1:{redis.port}",
                         ["--redis-password-file", pw])
        self.assert_delivery(c, a, channel="sec2")
        missing = self.run_cli("--redis", redis.url, "--redis-password-file",
                               os.path.join(self.tmpdir, "nope"), "--listen",
                               f"127.0.0.1:{free_port()}", "--admin-listen",
                               f"127.0.0.1:{free_port()}", binary=PODRELAY_BIN, timeout=10)
        self.assertEqual(missing.returncode, 2, missing.stderr)
        self.assertTrue(missing.stderr.decode().startswith("podrelay: "), missing.stderr)
        self.assert_no_secrets(a, b, bad, c)
        figure("security.requirepass", readyz_reason=reason, log_line=line[:300])


class TlsTest(SecurityCase):

    def setUp(self):
        super().setUp()
        pki_dir = os.path.join(self.tmpdir, "pki")
        os.makedirs(pki_dir)
        t0 = time.monotonic()
        self.pki = make_test_pki(pki_dir)
        self.pki_seconds = time.monotonic() - t0

    def test_tls_ca_and_wrong_ca(self):
        redis = RedisExt(self, tls=self.pki).start()
        a = self.sidecar("podA", redis.url, ["--tls-ca-file", self.pki["ca"]])
        b = self.sidecar("podB", redis.url, ["--tls-ca-file", self.pki["ca"]])
        self.assert_delivery(a, b)
        self.assertEqual(redis.numsub("podrelay:sec"), 1)
        bad = self.sidecar("wrongca", redis.url, ["--tls-ca-file", self.pki["other_ca"]],
                           wait_ready=False)
        reason, line = self.assert_not_ready(bad, "certificate verify failed")
        # the name checked is the URL host unless --tls-server-name says otherwise
        badname = self.sidecar("badname", redis.url, ["--tls-ca-file", self.pki["ca"],
                                                      "--tls-server-name", "not-the-server"],
                               wait_ready=False)
        reason2, line2 = self.assert_not_ready(badname, "certificate verify failed")
        # the log says which check failed, and which name was checked
        self.assertIn("hostname mismatch (checked not-the-server;", line2)
        self.assertNotIn("hostname mismatch", line)
        badip = self.sidecar("badip", redis.url, ["--tls-ca-file", self.pki["ca"],
                                                  "--tls-server-name", "127.0.0.9"],
                             wait_ready=False)
        _, line3 = self.assert_not_ready(badip, "IP address mismatch (checked 127.0.0.9;")
        named = self.sidecar("named", redis.url, ["--tls-ca-file", self.pki["ca"],
                                                  "--tls-server-name", "localhost"])
        self.assert_delivery(named, a, channel="sec3")
        plain = self.sidecar("plain", f"redis://127.0.0.1:{redis.port}", wait_ready=False)
        time.sleep(1.5)
        self.assertEqual(plain.readyz(), 503)
        figure("security.tls", pki_seconds=self.pki_seconds, wrong_ca_reason=reason,
               wrong_ca_log=line[:300], wrong_name_log=line2[:300], wrong_ip_log=line3[:300])

    def test_tls_client_certificate(self):
        redis = RedisExt(self, tls=self.pki, client_auth=True,
                         extra_args=["--requirepass", PASSWORD], password=PASSWORD).start()
        pw = self.secret_file("redis-password", PASSWORD)
        common = ["--tls-ca-file", self.pki["ca"], "--redis-password-file", pw]
        cert = ["--tls-cert-file", self.pki["client_cert"], "--tls-key-file",
                self.pki["client_key"]]
        a = self.sidecar("podA", redis.url, common + cert)
        b = self.sidecar("podB", redis.url, common + cert)
        self.assert_delivery(a, b)
        nocert = self.sidecar("nocert", redis.url, common, wait_ready=False)
        time.sleep(2.0)
        self.assertEqual(nocert.readyz(), 503)
        out = daemon_output(nocert.proc)
        self.assertIn("redis unreachable", out)
        self.assert_no_secrets(a, b, nocert)
        line = next(l for l in out.splitlines() if "redis unreachable" in l)
        figure("security.tls_client_cert", no_cert_log=line[:300])


if __name__ == "__main__":
    unittest.main()
