"""Helpers for the tests of podrelay's RESP front end (issue 11) with real, unmodified peers.

Every test is a mixin run twice:

- ``...DirectTest`` (``target = "direct"``): the apps talk to redis-server itself. This is
  the control: it proves the test, and must pass whatever the daemon can do;
- ``...SidecarTest`` (``target = "sidecar"``): three podrelay pods on that one Redis, each
  started with ``resp=True`` (``--resp-listen 127.0.0.1:<free port>``), each app talking
  only to its own pod's RESP port. Skipped only when ``podrelay --help`` does not list
  ``--resp-listen``; the reason is printed.

Peers run as child processes (their output goes to the test's logs): Debian's python3
(``$PODRELAY_DEBIAN_PYTHON``, default /usr/bin/python3, where python3-socketio and
friends live, whatever ``python3`` runs this suite) and ruby. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import unittest
from typing import List, Optional, Sequence

from harness import PODRELAY_BIN, IntegrationCase, Proc, ProcessExited, Redis, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.join(HERE, "resp_peers")
DEBIAN_PYTHON = os.environ.get("PODRELAY_DEBIAN_PYTHON", "/usr/bin/python3")
RUBY = os.environ.get("RUBY_BIN", shutil.which("ruby") or "ruby")

_skip_reason: Optional[List[Optional[str]]] = None


def resp_skip_reason() -> Optional[str]:
    """None when the daemon has a RESP front end (``--help`` lists ``--resp-listen``), else
    why the sidecar variants are skipped. A binary that cannot run is not a reason to skip:
    the sidecar variants then fail (in setUp, like every other test)."""
    global _skip_reason
    if _skip_reason is None:
        try:
            r = subprocess.run([PODRELAY_BIN, "--help"], capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            _skip_reason = [None]
        else:
            text = (r.stdout + r.stderr).decode("utf-8", "replace")
            _skip_reason = [None if "--resp-listen" in text else
                            f"{PODRELAY_BIN} --help does not list --resp-listen "
                            f"(daemon without the RESP front end)"]
    return _skip_reason[0]


def resp_ping(port: int, timeout: float = 1.0) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(64).startswith(b"+PONG")


class RespPeerCase(IntegrationCase):
    """Base of the Direct/Sidecar pairs. ``start_pods`` gives each app its endpoint."""

    target = "direct"

    def setUp(self):
        if self.target == "sidecar":
            reason = resp_skip_reason()
            if reason:
                sys.stderr.write(f"\n    skipped: {reason}\n")
                raise unittest.SkipTest(reason)
        super().setUp()
        self.redis: Optional[Redis] = None
        self.sidecars = []

    @property
    def sidecar(self) -> bool:
        return self.target == "sidecar"

    def start_pods(self, n: int = 3, extra_args: Sequence[str] = (),
                   redis: Optional[Redis] = None) -> List[int]:
        """Start Redis (unless given) and, for the sidecar target, ``n`` pods with a RESP
        port. Returns the port each of the ``n`` apps talks to: Redis' own port ``n`` times
        (direct) or pod i's RESP port (sidecar)."""
        self.redis = redis or self.start_redis()
        if not self.sidecar:
            return [self.redis.port] * n
        for i in range(n):
            pod = self.start_sidecar(f"pod{i + 1}", self.redis, list(extra_args), resp=True)
            wait_for(lambda: resp_ping(pod.resp_port), 10,
                     what=f"{pod.name} RESP port {pod.resp_port} to answer PING")
            self.sidecars.append(pod)
        return [p.resp_port for p in self.sidecars]

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}"

    # --- peers ------------------------------------------------------------------------
    def peer(self, name: str, argv: Sequence[str], env: Optional[dict] = None) -> Proc:
        e = dict(os.environ)
        e.pop("PYTHONPATH", None)  # Debian's python3 with its own packages only
        e.update(env or {})
        return self.track(Proc(name, argv, self.tmpdir, cwd=PEERS_DIR, env=e))

    def py_peer(self, name: str, script: str, *args: str) -> Proc:
        return self.peer(name, [DEBIAN_PYTHON, "-u", os.path.join(PEERS_DIR, script), *args])

    def rb_peer(self, name: str, script: str, *args: str) -> Proc:
        return self.peer(name, [RUBY, os.path.join(PEERS_DIR, script), *args])

    def wait_output(self, proc: Proc, token: str, timeout: float = 20.0) -> str:
        """Wait until ``token`` is in the process' stdout; returns the whole stdout."""
        def check():
            out = proc.stdout_text()
            if token in out:
                return out
            if not proc.alive():
                raise ProcessExited(f"{proc.name} exited (rc={proc.proc.returncode}) before "
                                    f"printing {token!r}; stdout:\n{out}\nstderr:\n"
                                    f"{proc.stderr_text()[-3000:]}")
            return None
        return wait_for(check, timeout, what=f"{proc.name} to print {token!r}")

    def wait_exit_ok(self, proc: Proc, timeout: float = 30.0) -> str:
        rc = proc.wait(timeout)
        out = proc.stdout_text()
        self.assertEqual(rc, 0, f"{proc.name} rc={rc}; stdout:\n{out}\nstderr:\n"
                                f"{proc.stderr_text()[-3000:]}")
        return out

    # --- what the harness (not the apps) reads on Redis itself ---------------------------
    def wait_redis_numsub(self, channel: str, n: int, timeout: float = 15.0) -> None:
        self.redis.wait_numsub(channel, n, timeout)

    def redis_psub_connections(self) -> int:
        """Connections to Redis holding at least one pattern (NUMPAT counts patterns)."""
        return sum(1 for line in self.redis.cli("CLIENT", "LIST").splitlines()
                   if " psub=" in line and " psub=0 " not in line)


# --- a raw RESP2/RESP3 connection ------------------------------------------------------------
class Push(list):
    """A RESP3 push (``>``)."""


class Error(str):
    """A RESP error reply (``-``) or RESP3 blob error (``!``)."""


class RespConn:
    """A blocking RESP client: send a command, read one reply, with a deadline each."""

    def __init__(self, port: int, timeout: float = 5.0, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, *args) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("RESP reply timed out")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise ConnectionError(f"connection closed; unparsed bytes {self.buf[:200]!r}")
        self.buf += data

    def _line(self, deadline: float) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill(deadline)

    def _bytes(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self, timeout: Optional[float] = None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return self._read(deadline)

    def _read(self, deadline: float):
        line = self._line(deadline)
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return Error(rest.decode())
        if t in (b":", b"("):
            return int(rest)
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        if t == b"_":
            return None
        if t in (b"$", b"!", b"="):
            n = int(rest)
            if n < 0:
                return None
            data = self._bytes(n, deadline)
            return Error(data.decode()) if t == b"!" else data
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self._read(deadline) for _ in range(n)]
            return Push(items) if t == b">" else items
        if t in (b"%", b"|"):
            n = int(rest)
            return {self._key(self._read(deadline)): self._read(deadline) for _ in range(n)}
        raise AssertionError(f"unparseable RESP line {line[:100]!r}")

    @staticmethod
    def _key(k):
        return k.decode() if isinstance(k, bytes) else k

    def read_until_close(self, timeout: float) -> bytes:
        """Every byte until EOF/reset; ``self.eof`` tells whether it closed in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(deadline)
            except ConnectionResetError:
                self.eof = True  # a reset after the error reply is a close too
                break
            except (ConnectionError, OSError):
                break
        return self.buf
