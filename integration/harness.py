"""Process harness for the integration suite: real redis-server, real podrelay daemons.

Everything here is bounded: every wait has a timeout, every process started is tracked and
killed in the test's cleanup (and at interpreter exit as a last resort). Ports are picked
at run time on 127.0.0.1. Each test gets a temp dir with one log file per process; the logs
are printed when the test fails or errors.

Paths: the daemon is ``$PODRELAY_BIN`` or ``$PODRELAY_BUILD_DIR/bin/podrelay``; the CLI is
``$PODRELAY_CLI_BIN`` or ``$PODRELAY_BUILD_DIR/bin/podrelay-cli``; ``PODRELAY_BUILD_DIR``
defaults to ``<repo>/build`` where ``<repo>`` is the parent of this file's folder.
"""

from __future__ import annotations

import atexit
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO_ROOT, "clients", "python"))

from podrelay import protocol as proto  # noqa: E402
from podrelay.sync_client import Client, ConnectionClosed, ServerError  # noqa: E402,F401

BUILD_DIR = os.environ.get("PODRELAY_BUILD_DIR", os.path.join(REPO_ROOT, "build"))
PODRELAY_BIN = os.environ.get("PODRELAY_BIN", os.path.join(BUILD_DIR, "bin", "podrelay"))
PODRELAY_CLI_BIN = os.environ.get("PODRELAY_CLI_BIN",
                                  os.path.join(BUILD_DIR, "bin", "podrelay-cli"))
REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN", shutil.which("redis-server") or "redis-server")
REDIS_CLI = os.environ.get("REDIS_CLI_BIN", shutil.which("redis-cli") or "redis-cli")

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# --- process bookkeeping ---------------------------------------------------------------
_LIVE: Dict[int, subprocess.Popen] = {}


def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except Exception:
                pass
    _LIVE.clear()


atexit.register(_kill_leftovers)

_HANDED_OUT: set = set()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (source ports of outgoing connections)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports for the servers a test starts are drawn below the kernel's ephemeral range: a port
# from bind(0) can be taken, between the probe and the server's own bind, by the source port
# of any outgoing connection on the machine (the Node tests beside this suite once lost such
# a race: "Address already in use"). A port below the range is taken only by a process that
# asks for it.
_PORT_LOW = 10000
_PORT_HIGH = ephemeral_low() - 1
_PORT_RANDOM = random.Random()  # its own: a test that seeds `random` must not fix the ports


def bindable(port: int) -> bool:
    """Whether a TCP socket can bind 127.0.0.1:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A currently free loopback TCP port, never the same one twice in this process."""
    for _ in range(200):
        if _PORT_HIGH - _PORT_LOW >= 1000:
            port = _PORT_RANDOM.randint(_PORT_LOW, _PORT_HIGH)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        if port not in _HANDED_OUT and bindable(port):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("could not find a free port")


class ProcessExited(AssertionError):
    """A process a wait depends on is gone: waiting longer cannot help."""


def wait_for(pred: Callable[[], object], timeout: float, interval: float = 0.05,
             what: str = "condition"):
    """Poll ``pred`` until it returns a truthy value; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except ProcessExited:
            raise
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def http_get(port: int, path: str, timeout: float = 2.0) -> Tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


# The harness' own settings: not passed on to the processes it starts, where the sidecar
# would log each as an environment variable that no flag reads.
HARNESS_ENV = ("PODRELAY_BIN", "PODRELAY_CLI_BIN", "PODRELAY_BUILD_DIR", "PODRELAY_SANITIZED",
               "PODRELAY_KEEP_LOGS")


class Proc:
    """A child process whose stdout/stderr go to files in the test's temp dir."""

    def __init__(self, name: str, argv: Sequence[str], logdir: str, cwd: Optional[str] = None,
                 stdin=subprocess.DEVNULL, env: Optional[dict] = None):
        self.name = name
        self.argv = list(argv)
        self.stderr_path = os.path.join(logdir, f"{name}.stderr.log")
        self.stdout_path = os.path.join(logdir, f"{name}.stdout.log")
        # append: a restarted process keeps one log
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self._err.write(f"=== start: {' '.join(self.argv)}\n".encode())
        self._err.flush()
        env = {k: v for k, v in (os.environ if env is None else env).items()
               if k not in HARNESS_ENV}
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=self._out,
                                     stderr=self._err, cwd=cwd, env=env)
        _LIVE[self.proc.pid] = self.proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Exit code; AssertionError if the process does not exit within ``timeout``."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within {timeout}s")
        self._forget()
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Signal, wait, SIGKILL if needed. Returns the exit code."""
        if self.alive():
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._forget()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout=5)

    def _forget(self) -> None:
        _LIVE.pop(self.proc.pid, None)
        for f in (self._err, self._out):
            try:
                f.close()
            except Exception:
                pass

    def stderr_text(self) -> str:
        try:
            self._err.flush()
        except Exception:
            pass
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout_text(self) -> str:
        try:
            self._out.flush()
        except Exception:
            pass
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Redis:
    """A real redis-server on 127.0.0.1, no persistence, in its own temp dir."""

    def __init__(self, case: "IntegrationCase", name: str = "redis", port: Optional[int] = None):
        self.case = case
        self.name = name
        self.port = port or free_port()
        self.dir = os.path.join(case.tmpdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.proc: Optional[Proc] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "Redis":
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir]
        self.proc = self.case.track(Proc(self.name, argv, self.case.tmpdir, cwd=self.dir))
        wait_for(self._pong, timeout, what=f"{self.name} on port {self.port} to answer PING")
        return self

    def _pong(self) -> bool:
        if self.proc is None or not self.proc.alive():
            out = self.proc.stdout_text()[-1500:] if self.proc else ""
            raise ProcessExited(f"{self.name} exited: {self.proc and self.proc.stderr_text()}"
                                f"{out}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``redis-cli -p PORT args...`` and return its stdout (raw mode, not a tty)."""
        r = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"redis-cli {' '.join(args)} failed rc={r.returncode}: "
                                 f"{r.stderr.decode(errors='replace')}")
        return r.stdout.decode("utf-8", "replace")

    def numsub(self, channel: str) -> int:
        out = self.cli("PUBSUB", "NUMSUB", channel).split("\n")
        return int(out[1].strip())

    def numpat(self) -> int:
        return int(self.cli("PUBSUB", "NUMPAT").strip())

    def channels(self, pattern: str = "*") -> List[str]:
        return [c for c in self.cli("PUBSUB", "CHANNELS", pattern).split("\n") if c]

    def wait_numsub(self, channel: str, n: int, timeout: float = 10.0) -> None:
        last = []

        def check():
            last[:] = [self.numsub(channel)]
            return last[0] == n
        try:
            wait_for(check, timeout, interval=0.05, what=f"PUBSUB NUMSUB {channel} == {n}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last value {last}") from None

    def wait_numpat(self, n: int, timeout: float = 10.0) -> None:
        last = []

        def check():
            last[:] = [self.numpat()]
            return last[0] == n
        try:
            wait_for(check, timeout, interval=0.05, what=f"PUBSUB NUMPAT == {n}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last value {last}") from None


class Sidecar:
    """One real podrelay daemon."""

    def __init__(self, case: "IntegrationCase", name: str, redis_url: str,
                 extra_args: Sequence[str] = (), listen: Optional[Sequence[str]] = None,
                 resp: bool = False):
        self.case = case
        self.name = name
        self.redis_url = redis_url
        self.port = free_port()
        self.admin_port = free_port()
        # resp=True: also a RESP (Redis protocol) port, --resp-listen 127.0.0.1:resp_port
        self.resp_port: Optional[int] = free_port() if resp else None
        self.listen = list(listen) if listen is not None else [f"127.0.0.1:{self.port}"]
        self.extra_args = list(extra_args)
        self.proc: Optional[Proc] = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> List[str]:
        argv = [PODRELAY_BIN]
        for l in self.listen:
            argv += ["--listen", l]
        if self.resp_port is not None:
            argv += ["--resp-listen", f"127.0.0.1:{self.resp_port}"]
        argv += ["--redis", self.redis_url, "--admin-listen", f"127.0.0.1:{self.admin_port}",
                 "--log-level", "debug", *self.extra_args]
        return argv

    def start(self, wait_ready: bool = True) -> "Sidecar":
        self.proc = self.case.track(Proc(self.name, self.argv(), self.case.tmpdir))
        if wait_ready:
            self.wait_ready()
        else:
            self.wait_healthy()
        return self

    def _check_alive(self) -> None:
        if self.proc is None or not self.proc.alive():
            rc = self.proc.proc.returncode if self.proc else None
            raise ProcessExited(f"{self.name} exited (rc={rc}); stderr:\n"
                                 f"{self.proc.stderr_text() if self.proc else ''}")

    def get(self, path: str, timeout: float = 2.0) -> Tuple[int, str]:
        return http_get(self.admin_port, path, timeout)

    def readyz(self) -> int:
        return self.get("/readyz")[0]

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        def check():
            self._check_alive()
            return self.readyz() == 200
        wait_for(check, timeout, what=f"{self.name} /readyz == 200")

    def wait_readyz(self, status: int, timeout: float = READY_TIMEOUT) -> None:
        def check():
            self._check_alive()
            return self.readyz() == status
        wait_for(check, timeout, what=f"{self.name} /readyz == {status}")

    def wait_healthy(self, timeout: float = READY_TIMEOUT) -> None:
        def check():
            self._check_alive()
            return self.get("/healthz")[0] == 200
        wait_for(check, timeout, what=f"{self.name} /healthz == 200")

    def client(self, **kw) -> Client:
        kw.setdefault("client_name", f"test-{self.name}")
        return self.case.track_client(Client(self.addr, **kw))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        return self.proc.stop(sig, timeout) if self.proc else None


class IntegrationCase(unittest.TestCase):
    """Base class: temp dir, process/client tracking, logs printed on failure."""

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            failed = len(result.failures) + len(result.errors) > before
            tmp = getattr(self, "tmpdir", None)
            if failed and tmp:
                self._dump_logs(tmp)
            if tmp and os.environ.get("PODRELAY_KEEP_LOGS") != "1":
                shutil.rmtree(tmp, ignore_errors=True)

    def _dump_logs(self, tmp: str) -> None:
        out = sys.stderr
        out.write(f"\n----- logs of {self.id()} ({tmp}) -----\n")
        for fn in sorted(os.listdir(tmp)):
            path = os.path.join(tmp, fn)
            if not fn.endswith(".log") or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            if len(data) > 60000:  # keep the end, it is where the failure is
                data = b"...[cut]...\n" + data[-60000:]
            out.write(f"--- {fn} ---\n{data.decode('utf-8', 'replace')}\n")
        out.write(f"----- end of logs of {self.id()} -----\n")
        out.flush()

    def setUp(self):
        self.tmpdir = tempfile.mkdtemp(prefix="podrelay-it-")
        self._procs: List[Proc] = []
        self._clients: List[Client] = []
        self.addCleanup(self._cleanup_all)
        for b in (PODRELAY_BIN,):
            if not os.access(b, os.X_OK):
                self.fail(f"podrelay binary not found or not executable: {b} "
                          f"(build first, or set PODRELAY_BIN / PODRELAY_BUILD_DIR)")

    def _cleanup_all(self):
        for c in self._clients:
            c.close()
        # SIGTERM first (lets the daemon remove unix sockets), SIGKILL if it lingers
        for p in reversed(self._procs):
            if p.alive():
                p.stop(signal.SIGTERM, timeout=3)
        for p in self._procs:
            if p.alive():
                p.kill()

    def track(self, proc: Proc) -> Proc:
        self._procs.append(proc)
        return proc

    def track_client(self, c: Client) -> Client:
        self._clients.append(c)
        return c

    # --- helpers used by many tests ---------------------------------------------------
    def start_redis(self, **kw) -> Redis:
        return Redis(self, **kw).start()

    def start_sidecar(self, name: str, redis: Redis, extra_args: Sequence[str] = (),
                      wait_ready: bool = True, **kw) -> Sidecar:
        return Sidecar(self, name, redis.url, extra_args, **kw).start(wait_ready)

    def run_cli(self, *args: str, input: Optional[bytes] = None, timeout: float = 20.0,
                binary: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run a binary to completion (bounded), logging its output into the test's logs."""
        argv = [binary or PODRELAY_CLI_BIN, *args]
        try:
            r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self._log_run(argv, None, e.stdout or b"", e.stderr or b"")
            raise AssertionError(f"{' '.join(argv)} did not finish within {timeout}s")
        self._log_run(argv, r.returncode, r.stdout, r.stderr)
        return r

    def _log_run(self, argv, rc, out: bytes, err: bytes) -> None:
        with open(os.path.join(self.tmpdir, "commands.log"), "ab") as f:
            f.write(f"$ {' '.join(argv)}\n  rc={rc}\n".encode())
            f.write(b"  stdout: " + (out or b"")[:4000] + b"\n")
            f.write(b"  stderr: " + (err or b"")[:4000] + b"\n")

    def expect_msgs(self, client: Client, n: int, timeout: float = 10.0) -> List[proto.Msg]:
        """Exactly ``n`` messages within ``timeout`` (fewer fails the test)."""
        deadline = time.monotonic() + timeout
        got: List[proto.Msg] = []
        while len(got) < n:
            m = client.recv_msg(timeout=max(0.0, deadline - time.monotonic()))
            if m is None:
                self.fail(f"expected {n} messages, got {len(got)} within {timeout}s: "
                          f"{got[:5]}")
            got.append(m)
        return got

    def expect_no_msg(self, client: Client, grace: float = 0.5) -> None:
        m = client.recv_msg(timeout=grace)
        self.assertIsNone(m, f"unexpected extra message: {m}")
