"""Blocking podrelay client over a plain socket (TCP ``host:port`` or ``unix:/path``).

All protocol work is done by ``protocol``; this class only moves bytes and keeps the
received frames in arrival order so callers can wait for a reply by request id while
messages keep arriving. Not thread-safe: one thread per ``Client``.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from typing import Deque, Iterable, List, Optional, Tuple, Union

from . import protocol as p

Bytesish = Union[bytes, bytearray, str]
_RECV_SIZE = 256 * 1024


class ConnectionClosed(Exception):
    """The sidecar closed the connection (EOF or reset)."""


class ServerError(Exception):
    """The sidecar answered ERR (or GOAWAY). ``message`` is the raw bytes it sent."""

    def __init__(self, code: int, message: bytes, request_id: int = 0, goaway: bool = False):
        self.code = code
        self.name = p.error_name(code)
        self.message = message
        self.request_id = request_id
        self.goaway = goaway
        kind = "GOAWAY" if goaway else "ERR"
        super().__init__(f"{kind} {self.name} ({code}) id={request_id}: "
                         f"{message.decode('utf-8', 'replace')}")


def parse_address(address: str) -> Tuple[int, Union[str, Tuple[str, int]]]:
    """``unix:/path`` -> (AF_UNIX, path); ``host:port`` / ``[v6]:port`` -> (AF_INET*, (h, p))."""
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if not path:
            raise ValueError(f"empty unix socket path in {address!r}")
        return socket.AF_UNIX, path
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address must be host:port or unix:/path, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


class Client:
    """A blocking client. ``timeout`` bounds every wait that is not given its own."""

    def __init__(self, address: str, *, client_name: Bytesish = b"py-sync",
                 auth_token: Bytesish = b"", timeout: float = 10.0, hello: bool = True,
                 max_frame_bytes: int = 64 * 1024 * 1024):
        self.address = address
        self.timeout = timeout
        self.decoder = p.Decoder(max_frame_bytes)
        self.welcome: Optional[p.Welcome] = None
        self.eof = False
        self.goaway: Optional[p.Goaway] = None  # the sidecar's GOAWAY, once seen
        self._inbox: Deque[p.Frame] = deque()
        self._next_id = 0
        family, sockaddr = parse_address(address)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(sockaddr)
            if family != socket.AF_UNIX:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hello:
                self.hello(client_name, auth_token)
        except BaseException:
            self.sock.close()
            raise

    # --- plumbing --------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def next_request_id(self) -> int:
        self._next_id = self._next_id % 0xFFFFFFFF + 1  # wraps, skips 0
        return self._next_id

    def send_raw(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _deadline(self, timeout: Optional[float]) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _read_once(self, deadline: float) -> bool:
        """Read what is available until ``deadline``; False on timeout. Raises on EOF."""
        if self.eof:
            raise ConnectionClosed("connection closed by peer")
        # past the deadline we still drain what is already there (tiny timeout)
        remaining = max(deadline - time.monotonic(), 0.001)
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_RECV_SIZE)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            raise ConnectionClosed(f"connection reset: {e}") from e
        if not data:
            self.eof = True
            raise ConnectionClosed("connection closed by peer")
        self._inbox.extend(self.decoder.feed(data))
        return True

    def _take(self, match, deadline: float, fatal=None):
        """Remove and return the first inbox frame for which ``match`` is true, waiting
        until ``deadline``; None on timeout. ``fatal(frame)`` may raise for frames that
        end the wait (connection errors)."""
        scanned = 0
        while True:
            while scanned < len(self._inbox):
                f = self._inbox[scanned]
                if match(f):
                    del self._inbox[scanned]
                    return f
                if fatal is not None:
                    fatal(f)
                scanned += 1
            try:
                if not self._read_once(deadline):
                    return None
            except ConnectionClosed:
                # frames decoded before EOF were already queued; one last scan
                while scanned < len(self._inbox):
                    f = self._inbox[scanned]
                    if match(f):
                        del self._inbox[scanned]
                        return f
                    if fatal is not None:
                        fatal(f)
                    scanned += 1
                raise

    @staticmethod
    def _raise_on_connection_error(f: p.Frame) -> None:
        if isinstance(f, p.Err) and f.request_id == 0:
            raise ServerError(f.code, f.message, 0)
        if isinstance(f, p.Goaway):
            raise ServerError(f.code, f.message, 0, goaway=True)

    def _raise_on_fatal_err(self, f: p.Frame) -> None:
        if isinstance(f, p.Err) and f.request_id == 0:
            raise ServerError(f.code, f.message, 0)
        if isinstance(f, p.Goaway):
            self.goaway = f

    def _wait_reply(self, request_id: int, timeout: Optional[float]) -> p.Frame:
        """A GOAWAY does not end this wait: after it the sidecar still sends the answers it
        owes (PROTOCOL.md, GOAWAY), then closes. A close before the answer raises the
        GOAWAY as ServerError (the request was not executed), or ConnectionClosed."""
        def match(f):
            return (isinstance(f, (p.Ok, p.Err, p.Pong, p.PubOk, p.RsubOk))
                    and f.request_id == request_id)
        try:
            f = self._take(match, self._deadline(timeout), self._raise_on_fatal_err)
        except ConnectionClosed:
            if self.goaway is not None:
                raise ServerError(self.goaway.code, self.goaway.message, 0, goaway=True) from None
            raise
        if f is None:
            raise TimeoutError(f"no reply to request {request_id} within timeout")
        if isinstance(f, p.Err):
            raise ServerError(f.code, f.message, f.request_id)
        return f

    def _request(self, encoded_builder, timeout: Optional[float]) -> p.Frame:
        rid = self.next_request_id()
        self.send_raw(encoded_builder(rid))
        return self._wait_reply(rid, timeout)

    # --- protocol operations ---------------------------------------------------------
    def hello(self, client_name: Bytesish = b"", auth_token: Bytesish = b"",
              version: int = p.PROTOCOL_VERSION, timeout: Optional[float] = None) -> p.Welcome:
        self.send_raw(p.encode_hello(client_name, auth_token, version))
        f = self._take(lambda f: isinstance(f, (p.Welcome, p.Err, p.Goaway)),
                       self._deadline(timeout))
        if f is None:
            raise TimeoutError("no WELCOME within timeout")
        if isinstance(f, p.Err):
            raise ServerError(f.code, f.message, f.request_id)
        if isinstance(f, p.Goaway):
            raise ServerError(f.code, f.message, 0, goaway=True)
        self.welcome = f
        self.decoder.version = f.version
        return f

    def publish(self, channel: Bytesish, payload: Bytesish = b"", *, ack: bool = True,
                echo: bool = True, timeout: Optional[float] = None) -> int:
        """Publish; with ``ack`` wait for OK (raise ServerError on ERR) and return the id.
        ``echo=False`` sends a PUBX (protocol version 3: the sidecar does not deliver the
        message back to this connection; best effort, PROTOCOL.md section 10); it needs a
        connection that said ``hello(version=3)``."""
        encode = p.encode_pub
        if not echo:
            if self.welcome is None or self.welcome.version < p.PUBX_VERSION:
                raise ValueError("echo=False (PUBX) needs a protocol version 3 connection")
            encode = p.encode_pubx
        if not ack:
            self.send_raw(encode(0, channel, payload))
            return 0
        rid = self.next_request_id()
        self.send_raw(encode(rid, channel, payload))
        self._wait_reply(rid, timeout)
        return rid

    def publish_durable(self, channel: Bytesish, payload: Bytesish = b"",
                        timeout: Optional[float] = None) -> bytes:
        """Version 2: acked publish; the stream id Redis assigned on a durable channel
        (b"" on a plain channel)."""
        f = self._request(lambda rid: p.encode_pub(rid, channel, payload), timeout)
        return f.id if isinstance(f, p.PubOk) else b""

    def resume(self, channel: Bytesish, since_id: Bytesish = b"", epoch: Bytesish = b"",
               timeout: Optional[float] = None) -> p.RsubOk:
        """Version 2: RSUB; returns the RSUBOK (the replayed SMSGs arrive before it)."""
        return self._request(lambda rid: p.encode_rsub(rid, channel, since_id, epoch), timeout)

    def recv_smsg(self, timeout: Optional[float] = None) -> Optional[p.Smsg]:
        """Next SMSG (version 2 durable message), or None on timeout."""
        return self._take(lambda f: isinstance(f, p.Smsg), self._deadline(timeout),
                          self._raise_on_connection_error)

    def publish_many(self, channel: Bytesish, payloads: Iterable[Bytesish],
                     batch_bytes: int = 256 * 1024) -> None:
        """Fire-and-forget publish of many payloads, written in large batches."""
        buf = bytearray()
        for pl in payloads:
            buf += p.encode_pub(0, channel, pl)
            if len(buf) >= batch_bytes:
                self.send_raw(bytes(buf))
                buf.clear()
        if buf:
            self.send_raw(bytes(buf))

    def subscribe(self, *channels: Bytesish, timeout: Optional[float] = None) -> None:
        self._request(lambda rid: p.encode_sub(rid, channels), timeout)

    def unsubscribe(self, *channels: Bytesish, timeout: Optional[float] = None) -> None:
        """No channels: remove all of this connection's channel subscriptions."""
        self._request(lambda rid: p.encode_unsub(rid, channels), timeout)

    def psubscribe(self, *patterns: Bytesish, timeout: Optional[float] = None) -> None:
        self._request(lambda rid: p.encode_psub(rid, patterns), timeout)

    def punsubscribe(self, *patterns: Bytesish, timeout: Optional[float] = None) -> None:
        self._request(lambda rid: p.encode_punsub(rid, patterns), timeout)

    def ping(self, timeout: Optional[float] = None) -> float:
        """Round trip time of a PING in seconds."""
        t0 = time.monotonic()
        self._request(p.encode_ping, timeout)
        return time.monotonic() - t0

    def recv_msg(self, timeout: Optional[float] = None) -> Optional[p.Msg]:
        """Next MSG, or None if none arrives within ``timeout``. Raises ConnectionClosed
        if the connection ends first and ServerError on a connection-level ERR/GOAWAY."""
        return self._take(lambda f: isinstance(f, p.Msg), self._deadline(timeout),
                          self._raise_on_connection_error)

    def recv_frame(self, timeout: Optional[float] = None) -> Optional[p.Frame]:
        """Next frame of any type in arrival order, or None on timeout."""
        return self._take(lambda f: True, self._deadline(timeout))

    def read_until_closed(self, timeout: Optional[float] = None) -> List[p.Frame]:
        """All frames until the sidecar closes the connection; TimeoutError if it doesn't."""
        deadline = self._deadline(timeout)
        try:
            while True:
                if not self._read_once(deadline):
                    raise TimeoutError("connection still open after timeout")
        except ConnectionClosed:
            pass
        frames = list(self._inbox)
        self._inbox.clear()
        return frames

    def pending(self) -> List[p.Frame]:
        """Frames received and not yet taken (for diagnostics)."""
        return list(self._inbox)
