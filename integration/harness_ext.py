"""Extra helpers for the reliability tests (outages, partitions, failover, hostile input).

Built on ``harness`` (which is not modified here): load generators that record every
request and reply with timestamps, a subscriber that records every message, a Prometheus
text parser, RSS readings, raw frame exchanges and a worker thread living in another
network namespace. Every thread is bounded in time and count, every wait has a timeout.
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import socket
import struct
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from harness import proto  # noqa: F401  (re-exported for the tests)

_RECV = 256 * 1024


def figure(test: str, **values) -> None:
    """One line of measured figures on stdout, for the lead to quote."""
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = f"{v:.3f}"
        parts.append(f"{k}={v}")
    sys.stdout.write(f"FIGURES {test}: {' '.join(parts)}\n")
    sys.stdout.flush()


# --- metrics ---------------------------------------------------------------------------
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(3) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def metric(samples, name: str, **labels) -> float:
    """Sum of every sample of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    want = set(labels.items())
    for (n, lab), v in samples.items():
        if n == name and want <= set(lab):
            total += v
    return total


def sidecar_metrics(sidecar) -> dict:
    status, body = sidecar.get("/metrics", timeout=5)
    if status != 200:
        raise AssertionError(f"/metrics answered {status}")
    return parse_metrics(body)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# --- raw connections ---------------------------------------------------------------------
def read_frames_until_close(sock: socket.socket, timeout: float,
                            max_frame_bytes: int = 64 << 20):
    """Every frame until EOF/reset. Returns (frames, end, trailing_bytes) where ``end`` is
    'eof', 'reset' or 'timeout' and trailing_bytes counts bytes of an incomplete last frame."""
    dec = proto.Decoder(max_frame_bytes)
    frames = []
    deadline = time.monotonic() + timeout
    end = "timeout"
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(_RECV)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            end = "reset"
            break
        if not data:
            end = "eof"
            break
        frames += dec.feed(data)
    return frames, end, dec.buffered


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, host: str = "127.0.0.1"):
    """Connect, send ``data``, read until close: (frames, end, trailing_bytes)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return read_frames_until_close(s, timeout)


def _handshake(sock: socket.socket, dec, name: bytes, token: bytes, extra: bytes,
               want_ok: Optional[int], timeout: float):
    sock.sendall(proto.encode_hello(name, token) + extra)
    deadline = time.monotonic() + timeout
    got = []
    welcome = None
    while True:
        for f in got:
            if isinstance(f, (proto.Err, proto.Goaway)):
                raise AssertionError(f"handshake refused: {f}")
            if isinstance(f, proto.Welcome):
                welcome = f
        if welcome is not None and (want_ok is None or any(
                isinstance(f, proto.Ok) and f.request_id == want_ok for f in got)):
            return welcome, [f for f in got if not isinstance(f, (proto.Welcome, proto.Ok))]
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"handshake timed out; got {got}")
        sock.settimeout(left)
        data = sock.recv(_RECV)
        if not data:
            raise AssertionError(f"closed during handshake; got {got}")
        got += dec.feed(data)


class AckedPublisher:
    """One app connection publishing with acks at a bounded rate on one channel.

    Request id = sequence number (1..max_count), payload = ``tag:seq``. Records the send
    time of every PUB and every reply (kind, code, time). Stops sending on stop(), after
    ``max_count`` or ``max_seconds``, on GOAWAY or on a send error."""

    def __init__(self, sock: socket.socket, channel: str, tag: str, rate: float,
                 max_count: int, max_seconds: float, name: str = "pub", token: bytes = b""):
        self.sock = sock
        self.channel = channel.encode()
        self.tag = tag.encode()
        self.rate = rate
        self.max_count = max_count
        self.max_seconds = max_seconds
        self.lock = threading.Lock()
        self.sent: Dict[int, float] = {}
        self.replies: Dict[int, List[Tuple[str, int, float]]] = {}
        self.unexpected: List[object] = []
        self.goaway: Optional[Tuple[int, bytes, float]] = None
        self.end: Optional[Tuple[str, float]] = None
        self.send_error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._dec = proto.Decoder(64 << 20)
        sock.settimeout(10)
        self.welcome, early = _handshake(sock, self._dec, name.encode(), token, b"", None, 10)
        for f in early:
            self._on_frame(f, time.monotonic())
        self._sender = threading.Thread(target=self._send_loop, daemon=True)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader_stop = threading.Event()

    @classmethod
    def connect(cls, port: int, *a, host: str = "127.0.0.1", **kw) -> "AckedPublisher":
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, *a, **kw)

    def payload(self, seq: int) -> bytes:
        return b"%s:%d" % (self.tag, seq)

    def start(self) -> "AckedPublisher":
        self._reader.start()
        self._sender.start()
        return self

    def _send_loop(self) -> None:
        t0 = last = time.monotonic()
        credit = 1.0
        seq = 0
        wsock = self.sock.dup()
        try:
            wsock.settimeout(10)
            while not self._stop.is_set() and seq < self.max_count and self.goaway is None:
                now = time.monotonic()
                if now - t0 > self.max_seconds:
                    break
                credit = min(credit + (now - last) * self.rate, max(1.0, self.rate))
                last = now
                due = min(self.max_count, seq + int(credit))
                credit -= due - seq
                if due > seq:
                    buf = []
                    with self.lock:
                        for s in range(seq + 1, due + 1):
                            self.sent[s] = now
                            buf.append(proto.encode_pub(s, self.channel, self.payload(s)))
                    seq = due
                    wsock.sendall(b"".join(buf))
                time.sleep(0.004)
        except OSError as e:
            self.send_error = e
        finally:
            wsock.close()

    def _on_frame(self, f, t: float) -> None:
        with self.lock:
            if isinstance(f, proto.Ok):
                self.replies.setdefault(f.request_id, []).append(("OK", 0, t))
            elif isinstance(f, proto.Err) and f.request_id != 0:
                self.replies.setdefault(f.request_id, []).append(("ERR", f.code, t))
            elif isinstance(f, proto.Goaway):
                self.goaway = (f.code, f.message, t)
            else:
                self.unexpected.append(f)

    def _read_loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds + 120
        while not self._reader_stop.is_set() and time.monotonic() < deadline:
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(_RECV)
            except socket.timeout:
                continue
            except OSError as e:
                self.end = (f"error:{e}", time.monotonic())
                return
            if not data:
                self.end = ("eof", time.monotonic())
                return
            now = time.monotonic()
            for f in self._dec.feed(data):
                self._on_frame(f, now)

    def stop_sending(self, timeout: float = 10) -> None:
        self._stop.set()
        self._sender.join(timeout)
        if self._sender.is_alive():
            raise AssertionError("publisher sender thread did not stop")

    def unanswered(self) -> List[int]:
        with self.lock:
            return [s for s in self.sent if s not in self.replies]

    def wait_answered(self, timeout: float) -> List[int]:
        """Wait until every sent PUB has a reply (or the connection ended); the ids still
        unanswered are returned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.unanswered() or self.end is not None:
                break
            time.sleep(0.05)
        return self.unanswered()

    def close(self) -> None:
        self._stop.set()
        self._reader_stop.set()
        self._sender.join(5)
        self._reader.join(5)
        try:
            self.sock.close()
        except OSError:
            pass

    # summaries ----------------------------------------------------------------------
    def outcome(self, seq: int) -> Optional[Tuple[str, int]]:
        r = self.replies.get(seq)
        return (r[0][0], r[0][1]) if r else None

    def counts(self) -> Dict[str, int]:
        with self.lock:
            c = {"sent": len(self.sent), "ok": 0, "unanswered": 0, "multi": 0}
            for s in self.sent:
                r = self.replies.get(s)
                if not r:
                    c["unanswered"] += 1
                    continue
                if len(r) > 1:
                    c["multi"] += 1
                if r[0][0] == "OK":
                    c["ok"] += 1
                else:
                    c[f"err{r[0][1]}"] = c.get(f"err{r[0][1]}", 0) + 1
            return c


class Collector:
    """One app connection subscribed to ``channels`` recording every MSG with its arrival
    time, in arrival order. Records GOAWAY and the end of the connection."""

    def __init__(self, sock: socket.socket, channels: Sequence[str], name: str = "sub",
                 max_seconds: float = 300, token: bytes = b""):
        self.sock = sock
        self.msgs: List[Tuple[bytes, bytes, float]] = []  # (channel, payload, t)
        self.other: List[object] = []
        self.goaway = None
        self.end: Optional[Tuple[str, float]] = None
        self._dec = proto.Decoder(64 << 20)
        self._stop = threading.Event()
        self.max_seconds = max_seconds
        sock.settimeout(10)
        sub = proto.encode_sub(1, [c.encode() for c in channels])
        self.welcome, early = _handshake(sock, self._dec, name.encode(), token, sub, 1, 15)
        for f in early:
            self._on_frame(f, time.monotonic())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @classmethod
    def connect(cls, port: int, *a, host: str = "127.0.0.1", **kw) -> "Collector":
        s = socket.create_connection((host, port), timeout=10)
        return cls(s, *a, **kw)

    def _on_frame(self, f, t: float) -> None:
        if isinstance(f, proto.Msg):
            self.msgs.append((f.channel, f.payload, t))
        elif isinstance(f, proto.Goaway):
            self.goaway = (f.code, f.message, t)
        else:
            self.other.append(f)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(_RECV)
            except socket.timeout:
                continue
            except OSError as e:
                self.end = (f"error:{e}", time.monotonic())
                return
            if not data:
                self.end = ("eof", time.monotonic())
                return
            now = time.monotonic()
            for f in self._dec.feed(data):
                self._on_frame(f, now)

    def payloads(self) -> List[bytes]:
        return [p for _, p, _ in list(self.msgs)]

    def wait_for(self, pred: Callable[["Collector"], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            time.sleep(0.02)
        return pred(self)

    def wait_payload(self, payload: bytes, timeout: float) -> Optional[float]:
        """Arrival time of ``payload`` (None if it does not arrive within ``timeout``)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            msgs = self.msgs
            for _, p, t in msgs[seen:]:
                if p == payload:
                    return t
            seen = len(msgs)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            self.sock.close()
        except OSError:
            pass


def check_accounting(tc, publishers: Sequence[AckedPublisher],
                     collectors: Dict[str, Collector], required: Callable[[AckedPublisher, int],
                                                                          bool]):
    """The checks shared by the outage tests. Returns a dict of figures.

    - every PUB sent got exactly one answer: OK or ERR 300/301/302;
    - no pod received a message twice, and every message received was published;
    - a message nacked 300/301 (never written to Redis) was received nowhere;
    - per publisher, each pod received its messages in publish order;
    - every acked message for which ``required(pub, seq)`` holds reached every pod.
    """
    figs = {}
    by_payload = {}
    for p in publishers:
        c = p.counts()
        for k, v in c.items():
            figs[f"{p.tag.decode()}_{k}"] = v
        with p.lock:
            for s in p.sent:
                by_payload[p.payload(s)] = (p, s)
    for p in publishers:
        with p.lock:
            unanswered = [s for s in p.sent if s not in p.replies]
            multi = {s: r for s, r in p.replies.items() if len(r) > 1}
            bad = {s: r[0] for s, r in p.replies.items()
                   if r[0][0] == "ERR" and r[0][1] not in (300, 301, 302)}
            stray = [s for s in p.replies if s not in p.sent]
        tc.assertEqual(unanswered[:20], [], f"{p.tag}: {len(unanswered)} publishes never answered")
        tc.assertEqual(multi, {}, f"{p.tag}: publishes answered more than once")
        tc.assertEqual(bad, {}, f"{p.tag}: nack codes outside 300/301/302")
        tc.assertEqual(stray, [], f"{p.tag}: replies to ids never sent")
        tc.assertEqual(p.unexpected, [], f"{p.tag}: unexpected frames")
    for pod, col in collectors.items():
        payloads = col.payloads()
        figs[f"delivered_{pod}"] = len(payloads)
        seen = set()
        dups = []
        unknown = []
        for pl in payloads:
            if pl in seen:
                dups.append(pl)
            seen.add(pl)
            if pl not in by_payload:
                unknown.append(pl)
        tc.assertEqual(dups[:10], [], f"pod {pod}: {len(dups)} duplicate deliveries")
        tc.assertEqual(unknown[:10], [], f"pod {pod}: messages that were never published")
        never_written = [pl for pl in payloads
                         if by_payload[pl][0].outcome(by_payload[pl][1]) in
                         (("ERR", 300), ("ERR", 301))]
        tc.assertEqual(never_written[:10], [],
                       f"pod {pod}: received messages that were nacked 300/301 (never sent)")
        for p in publishers:
            seqs = [by_payload[pl][1] for pl in payloads if by_payload[pl][0] is p]
            tc.assertEqual(seqs, sorted(seqs), f"pod {pod}: {p.tag} out of order")
        missing = []
        for p in publishers:
            with p.lock:
                for s in p.sent:
                    if p.outcome(s) == ("OK", 0) and required(p, s) and p.payload(s) not in seen:
                        missing.append(p.payload(s))
        figs[f"required_missing_{pod}"] = len(missing)
        tc.assertEqual(missing[:10], [],
                       f"pod {pod}: {len(missing)} acked messages (published while every "
                       f"subscriber connection was up) not delivered")
    # one order per channel on every pod (for the messages all pods received)
    sets = [set(c.payloads()) for c in collectors.values()]
    common = set.intersection(*sets) if sets else set()
    orders = {pod: [pl for pl in c.payloads() if pl in common] for pod, c in collectors.items()}
    first = next(iter(orders.values()), [])
    for pod, o in orders.items():
        tc.assertEqual(o, first, f"pod {pod}: order differs from the other pods")
    figs["common_delivered"] = len(common)
    return figs


# --- network namespaces ------------------------------------------------------------------
CLONE_NEWNET = 0x40000000


class NsWorker:
    """A thread that lives in network namespace ``ns`` (ip netns) and runs calls there.
    Sockets created by a call belong to that namespace and may then be used anywhere."""

    def __init__(self, ns: str):
        self.ns = ns
        self._q: "queue.Queue" = queue.Queue()
        self._ready: "queue.Queue" = queue.Queue()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        ok, err = self._ready.get(timeout=10)
        if not ok:
            raise OSError(err)

    def _run(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{self.ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001
            self._ready.put((False, str(e)))
            return
        self._ready.put((True, None))
        while True:
            item = self._q.get()
            if item is None:
                return
            fn, args, kw, out = item
            try:
                out.put((True, fn(*args, **kw)))
            except BaseException as e:  # noqa: BLE001
                out.put((False, e))

    def call(self, fn, *args, timeout: float = 30, **kw):
        out: "queue.Queue" = queue.Queue()
        self._q.put((fn, args, kw, out))
        ok, v = out.get(timeout=timeout)
        if not ok:
            raise v
        return v

    def close(self) -> None:
        self._q.put(None)
        self._t.join(5)


def resp_command(port: int, *args: bytes, host: str = "127.0.0.1", timeout: float = 3.0):
    """Send one RESP command, return the raw reply bytes (enough for small replies)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"".join(parts))
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if _resp_complete(data):
                break
        return data


def _resp_complete(data: bytes) -> bool:
    def parse(pos):
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise IndexError
        t, rest = data[pos:pos + 1], data[pos + 1:end]
        pos = end + 2
        if t == b"*":
            for _ in range(max(0, int(rest))):
                pos = parse(pos)
            return pos
        if t == b"$":
            n = int(rest)
            if n < 0:
                return pos
            if len(data) < pos + n + 2:
                raise IndexError
            return pos + n + 2
        return pos
    try:
        return parse(0) == len(data)
    except (IndexError, ValueError):
        return False


def resp_numsub(port: int, channel: str, host: str = "127.0.0.1") -> int:
    r = resp_command(port, b"PUBSUB", b"NUMSUB", channel.encode(), host=host)
    # *2\r\n$N\r\nchannel\r\n:K\r\n
    return int(r.rsplit(b":", 1)[1].strip())


def ensure_nofile(n: int) -> int:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(n, soft), hard) if hard != resource.RLIM_INFINITY else max(n, soft)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


# --- Redis restarts ------------------------------------------------------------------
def restart_redis_paused(case, redis, pause_ms: int, timeout: float = 10.0):
    """Start ``redis`` again on its port and, as its very first command, pause every
    write (PUBLISH included) for ``pause_ms``: subscribers can come back before any
    buffered publish is executed. Returns (t_up, raced) where ``raced`` is True when a
    podrelay publisher connection was already there when the pause took effect."""
    from harness import REDIS_SERVER, Proc
    argv = [REDIS_SERVER, "--port", str(redis.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", redis.dir]
    redis.proc = case.track(Proc(redis.name, argv, case.tmpdir, cwd=redis.dir))
    deadline = time.monotonic() + timeout
    while True:
        if not redis.proc.alive():
            raise AssertionError(f"{redis.name} exited: {redis.proc.stderr_text()[-2000:]}")
        try:
            s = socket.create_connection(("127.0.0.1", redis.port), timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("restarted redis never accepted a connection")
            time.sleep(0.001)
    with s:
        s.sendall(b"CLIENT PAUSE %d WRITE\r\nCLIENT LIST\r\n" % pause_ms)
        data = b""
        while data.count(b"\r\n") < 2 or not _resp_complete(data.split(b"\r\n", 1)[1]):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    t_up = time.monotonic()
    if not data.startswith(b"+OK"):
        raise AssertionError(f"CLIENT PAUSE failed: {data[:200]!r}")
    raced = b"name=podrelay-pub" in data
    return t_up, raced


def redis_unpause(redis) -> None:
    redis.cli("CLIENT", "UNPAUSE")


# --- Redis with TLS / passwords / extra flags -------------------------------------------
import ssl  # noqa: E402
import subprocess  # noqa: E402

from harness import REDIS_CLI, REDIS_SERVER, Proc, Redis, wait_for  # noqa: E402


class RedisExt(Redis):
    """``harness.Redis`` plus extra server flags, TLS (``tls`` = dict of ca/cert/key file
    paths for the server and, with ``client_auth``, the client) and a password."""

    def __init__(self, case, name: str = "redis", port: Optional[int] = None,
                 extra_args: Sequence[str] = (), tls: Optional[dict] = None,
                 client_auth: bool = False, password: Optional[str] = None,
                 user: Optional[str] = None):
        super().__init__(case, name, port)
        self.extra_args = list(extra_args)
        self.tls = tls
        self.client_auth = client_auth
        self.password = password
        self.user = user

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    def argv(self) -> List[str]:
        argv = [REDIS_SERVER, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir]
        if self.tls:
            argv += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", self.tls["server_cert"],
                     "--tls-key-file", self.tls["server_key"],
                     "--tls-ca-cert-file", self.tls["ca"],
                     "--tls-auth-clients", "yes" if self.client_auth else "no"]
        else:
            argv += ["--port", str(self.port)]
        return argv + self.extra_args

    def start(self, timeout: float = 10.0) -> "RedisExt":
        self.proc = self.case.track(Proc(self.name, self.argv(), self.case.tmpdir, cwd=self.dir))
        wait_for(self._pong, timeout, what=f"{self.name} on port {self.port} to answer")
        return self

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        if not self.tls:
            return s
        ctx = ssl.create_default_context(cafile=self.tls["ca"])
        if self.client_auth:
            ctx.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
        return ctx.wrap_socket(s, server_hostname="localhost")

    def _pong(self) -> bool:
        if self.proc is None or not self.proc.alive():
            from harness import ProcessExited
            raise ProcessExited(f"{self.name} exited: {self.proc and self.proc.stderr_text()}")
        with self._connect() as s:
            s.sendall(b"PING\r\n")
            r = s.recv(64)
            return r.startswith(b"+PONG") or r.startswith(b"-NOAUTH")

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        extra = []
        if self.tls:
            extra += ["--tls", "--cacert", self.tls["ca"]]
            if self.client_auth:
                extra += ["--cert", self.tls["client_cert"], "--key", self.tls["client_key"]]
        if self.user:
            extra += ["--user", self.user]
        if self.password:
            extra += ["--pass", self.password, "--no-auth-warning"]
        r = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *extra, *args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"redis-cli {' '.join(args)} failed rc={r.returncode}: "
                                 f"{r.stderr.decode(errors='replace')}")
        return r.stdout.decode("utf-8", "replace")


def secret_file(directory: str, name: str, content: str) -> str:
    """`content` and a newline in a file only its owner may read (as a mounted Secret)."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(content + "\n")
    os.chmod(path, 0o600)
    return path


def daemon_output(proc) -> str:
    """A process's stderr+stdout as written by the process itself (without the harness'
    '=== start: argv' lines, which hold the command line)."""
    text = proc.stderr_text() + proc.stdout_text()
    return "\n".join(l for l in text.splitlines() if not l.startswith("=== start:"))


def make_test_pki(dirpath: str, run=None) -> dict:
    """A CA, a server certificate (SAN IP:127.0.0.1, DNS:localhost), a client certificate
    and a second, unrelated CA. EC P-256 keys (fast). Returns the file paths."""
    def sh(*argv):
        r = subprocess.run(argv, cwd=dirpath, capture_output=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: {r.stderr.decode(errors='replace')}")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        sh("openssl", "req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
           "-days", "2", "-subj", f"/CN=podrelay test {ca}")
    exts = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                  "extendedKeyUsage=serverAuth\n",
        "client": "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    }
    for who, ext in exts.items():
        with open(os.path.join(dirpath, f"{who}.ext"), "w") as f:
            f.write(ext)
        sh("openssl", "req", *key, "-keyout", f"{who}.key", "-out", f"{who}.csr",
           "-subj", f"/CN=podrelay-{who}")
        sh("openssl", "x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", f"{who}.crt", "-days", "2", "-extfile", f"{who}.ext")
    p = lambda n: os.path.join(dirpath, n)  # noqa: E731
    return {"ca": p("ca.crt"), "other_ca": p("other-ca.crt"),
            "server_cert": p("server.crt"), "server_key": p("server.key"),
            "client_cert": p("client.crt"), "client_key": p("client.key")}
