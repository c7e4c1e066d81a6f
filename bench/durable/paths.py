"""The three measured paths, each as a publisher and a subscriber over plain sockets.

- ``direct``: XADD (pipelined, `MAXLEN ~`, one field `d`, as the sidecar writes it) on one
  Redis connection, `XREAD BLOCK` on another; no sidecar.
- ``durable``: PUB (fire and forget) on sidecar A, RSUB on sidecar B, protocol version 2.
- ``pubsub``: PUB on sidecar A, SUB on sidecar B, on a channel that is not durable.

The handshakes use the project's Python client; the measured loops then use the raw socket
and the client's frame decoder, so no path pays for the client's inbox bookkeeping.
Every object here is owned by one thread of one process.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import List

from podrelay import protocol as p
from podrelay.sync_client import Client

from .resp import RespError, RespReader, command

PATHS = ("direct", "durable", "pubsub")


@dataclass
class Endpoints:
    """Where a path's publisher and subscriber connect (picklable, for the child)."""
    redis_port: int
    pod_a: int
    pod_b: int
    max_len: int


def _redis_socket(port: int, timeout: float) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _v2_client(port: int, timeout: float) -> Client:
    c = Client(f"127.0.0.1:{port}", hello=False, timeout=timeout)
    c.hello("bench", version=2)
    return c


class Publisher:
    """Encodes messages for one path and writes them; reads and discards replies.
    Owned by one thread (the forked publisher process's)."""

    def __init__(self, path: str, ep: Endpoints, name: str, timeout: float = 30):
        self.path = path
        self.timeout = timeout
        if path == "direct":
            self.sock = _redis_socket(ep.redis_port, timeout)
            key, max_len = name.encode(), str(ep.max_len).encode()
            self._prefix = [b"XADD", key, b"MAXLEN", b"~", max_len, b"*", b"d"]
            self.replies = RespReader()
            self.errors = 0
            self.replied = 0
        else:
            self._client = _v2_client(ep.pod_a, timeout)
            self.sock = self._client.sock
            self._channel = name.encode()
        self.sock.settimeout(timeout)

    def encode(self, payload: bytes) -> bytes:
        if self.path == "direct":
            return command(*self._prefix, payload)
        return p.encode_pub(0, self._channel, payload)

    def drain(self) -> None:
        """Read whatever replies are waiting (XADD ids), without blocking. A PUB with
        request id 0 has no reply; the sidecar reports a failure as an ERR frame, which
        the subscriber then notices as missing messages."""
        if self.path != "direct":
            return
        # A socket with a timeout would wait that long for EAGAIN; timeout 0 is only
        # Python-side state (the descriptor is non-blocking either way), no syscall.
        self.sock.settimeout(0)
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    return
                if not data:
                    raise ConnectionError("Redis closed the publisher connection")
                self._count(self.replies.feed(data))
        finally:
            self.sock.settimeout(self.timeout)

    def _count(self, replies: list) -> None:
        self.replied += len(replies)
        self.errors += sum(isinstance(r, RespError) for r in replies)

    def finish(self, sent: int, timeout: float = 30) -> None:
        """Wait (bounded) for the reply of every XADD sent: closing a socket with unread
        replies makes the kernel reset the connection, and Redis would drop the commands
        it has not read yet."""
        if self.path != "direct":
            return
        deadline = time.monotonic() + timeout
        while self.replied < sent and time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not data:
                raise ConnectionError("Redis closed the publisher connection")
            self._count(self.replies.feed(data))

    def close(self) -> None:
        self.sock.close()


class Subscriber:
    """Subscribes on one path; ``feed(data)`` returns the payloads ``data`` completed.
    Owned by one thread (the parent process's measuring loop)."""

    def __init__(self, path: str, ep: Endpoints, name: str, timeout: float = 30):
        self.path = path
        self.first: List[bytes] = []
        if path == "direct":
            self.sock = _redis_socket(ep.redis_port, timeout)
            self._key = name.encode()
            self._last = b"0-0"  # a fresh key per run: everything in it is this run's
            self._reader = RespReader()
            self._ask()
        else:
            c = _v2_client(ep.pod_b, timeout)
            if path == "durable":
                c.resume(name)
            else:
                c.subscribe(name)
            self.sock = c.sock
            self._decoder = c.decoder
            self.first = [f.payload for f in c.pending() if isinstance(f, (p.Msg, p.Smsg))]
        self.sock.settimeout(timeout)

    def _ask(self) -> None:
        # One XREAD outstanding at a time, as the sidecar's stream reader does.
        self.sock.sendall(command(b"XREAD", b"BLOCK", 1000, b"COUNT", 1000, b"STREAMS",
                                  self._key, self._last))

    def feed(self, data: bytes) -> List[bytes]:
        if self.path != "direct":
            out = []
            for f in self._decoder.feed(data):
                if isinstance(f, (p.Msg, p.Smsg)):
                    out.append(f.payload)
                elif isinstance(f, (p.Err, p.Goaway)):
                    raise RuntimeError(f"sidecar sent {f}")
            return out
        out = []
        for reply in self._reader.feed(data):
            if isinstance(reply, RespError):
                raise RuntimeError(f"XREAD failed: {reply}")
            if reply:  # None: BLOCK timed out with nothing new
                entries = reply[0][1]
                self._last = entries[-1][0]
                out.extend(e[1][1] for e in entries)
            self._ask()
        return out

    def close(self) -> None:
        self.sock.close()
