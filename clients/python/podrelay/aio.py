"""asyncio client for the podrelay sidecar (proto/PROTOCOL.md), API modelled on the Node
client (clients/node/README.md).

All protocol bytes come from ``protocol``; this module is the I/O and the bookkeeping
around it: request ids, subscriptions, a bounded send queue, reconnect, handler dispatch.

Delivery contract, in one place:

- An operation that was never written to a socket waits in a bounded queue (while
  disconnected, or while the socket pushes back) and is sent after the reconnect.
- An acked publish that was written but not answered when the connection broke fails with
  ``OUTCOME_UNKNOWN`` (302): it may or may not have been published. It is never re-sent.
- On ``GOAWAY`` (the sidecar drains) nothing more is written on that connection (queued
  operations wait for the next one) and the client keeps reading until the sidecar closes,
  at most ``drain_wait`` seconds: every publish the sidecar had read gets its real answer.
- Subscriptions are state, not requests: after a reconnect the client re-subscribes every
  channel and pattern before anything else it sends. Re-sending SUB/UNSUB is idempotent.
- Nothing is dropped without its awaiting caller being told.

Thread-safety: none. One ``Client`` belongs to one event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import socket
import time
from collections import deque
from typing import (Any, Awaitable, Callable, Deque, Dict, Iterable, List, Optional, Tuple,
                    Union)

from . import protocol as p
from .sync_client import parse_address

__all__ = ["connect", "Client", "PodrelayError", "DEFAULT_ADDRESS"]

log = logging.getLogger("podrelay.aio")

DEFAULT_ADDRESS = "127.0.0.1:7400"
Name = Union[str, bytes, bytearray, memoryview]
Handler = Callable[[bytes, bytes, Optional[bytes]], Union[None, Awaitable[None]]]

_READ_SIZE = 256 * 1024
_WRITE_BATCH = 256 * 1024


class PodrelayError(Exception):
    """An error from the sidecar (``ERR``/``GOAWAY``) or from the client itself
    (``local=True``). ``code`` is the PROTOCOL.md section 4 code (0 for client-only
    errors such as ``CLIENT_CLOSED``), ``name`` its name, ``message`` the text."""

    def __init__(self, code: int, name: str, message: str, *, local: bool = False):
        super().__init__(f"{name} ({code}): {message}")
        self.code = code
        self.name = name
        self.message = message
        self.local = local

    @classmethod
    def from_frame(cls, frame: Union[p.Err, p.Goaway]) -> "PodrelayError":
        return cls(frame.code, p.error_name(frame.code),
                   frame.message.decode("utf-8", "replace"))


class PodrelayTimeout(PodrelayError, TimeoutError):
    """The client's own ``TIMEOUT`` (``connect``, ``ready``, ``ping``). It is also a
    ``TimeoutError`` (the same class as ``asyncio.TimeoutError``), so either ``except``
    catches it."""


def _local(code: int, name: str, message: str) -> PodrelayError:
    return PodrelayError(code, name, message, local=True)


def _timeout(message: str) -> PodrelayTimeout:
    return PodrelayTimeout(0, "TIMEOUT", message, local=True)


def _outcome_unknown(why: str) -> PodrelayError:
    return _local(p.OUTCOME_UNKNOWN, "OUTCOME_UNKNOWN", f"publish outcome unknown: {why}")


def _closed() -> PodrelayError:
    return _local(0, "CLIENT_CLOSED", "the client was closed")


def _to_bytes(v: Name, what: str) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"{what} must be str or bytes, not {type(v).__name__}")


def _name_list(names: Union[Name, Iterable[Name]], what: str) -> List[bytes]:
    if isinstance(names, (str, bytes, bytearray, memoryview)):
        names = [names]
    out = []
    for n in names:
        b = _to_bytes(n, what)
        if len(b) > p.MAX_STR_BYTES:
            raise ValueError(f"{what} longer than {p.MAX_STR_BYTES} bytes")
        out.append(b)
    return out


class _Op:
    """One frame waiting to be written, and what to do with its answer."""

    __slots__ = ("kind", "rid", "names", "data", "future", "from_handler", "written")

    def __init__(self, kind: str, rid: int, data: bytes, future: Optional[asyncio.Future],
                 names: Optional[List[bytes]] = None):
        self.kind = kind  # "pub", "pub0" (no ack), "sub", "unsub", "psub", "punsub", "rsub", "ping"
        self.rid = rid
        self.data = data
        self.future = future      # None for internal re-subscribe frames
        self.names = names or []
        self.from_handler = False
        self.written = False


class _Conn:
    """One established connection (after WELCOME)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 decoder: p.Decoder, welcome: p.Welcome, leftover: List[p.Frame]):
        self.reader = reader
        self.writer = writer
        self.decoder = decoder
        self.welcome = welcome
        self.leftover = leftover
        self.last_rx = time.monotonic()
        self.goaway: Optional[PodrelayError] = None
        self.goaway_deadline = 0.0
        self.error: Optional[BaseException] = None
        self.unflushed: List["_Op"] = []  # written, drain() not yet returned

    def abort(self) -> None:
        try:
            self.writer.transport.abort()
        except Exception:  # noqa: BLE001 - already gone
            pass


class Client:
    """A connection to the local sidecar that survives sidecar restarts.

    Create it with ``await connect(...)``. Subscription handlers are called one at a time,
    in arrival order, from a dispatcher task: a handler may be a plain function or a
    coroutine function (awaited before the next message is dispatched), and may itself
    call ``publish``/``subscribe``. While more than ``max_dispatch_bytes`` of messages wait
    for slow handlers, the client stops reading the socket, so the sidecar's own bound
    (``GOAWAY SLOW_CONSUMER``) applies instead of unbounded memory here.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, client_name: Name = "",
                 auth_token: Name = "", reconnect: bool = True,
                 reconnect_min_delay: float = 0.1, reconnect_max_delay: float = 5.0,
                 connect_timeout: float = 5.0, max_pending_bytes: int = 8 * 1024 * 1024,
                 max_incoming_frame_bytes: int = 16 * 1024 * 1024,
                 max_dispatch_bytes: int = 8 * 1024 * 1024,
                 ping_interval: float = 30.0, ping_timeout: float = 10.0,
                 drain_wait: float = 35.0,
                 protocol_version: int = p.MAX_PROTOCOL_VERSION):
        parse_address(address)  # validate early
        self.address = address
        self.client_name = _to_bytes(client_name, "client_name")
        self.auth_token = _to_bytes(auth_token, "auth_token")
        self.reconnect = reconnect
        self.reconnect_min_delay = reconnect_min_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.connect_timeout = connect_timeout
        self.max_pending_bytes = max_pending_bytes
        self.max_incoming_frame_bytes = max_incoming_frame_bytes
        self.max_dispatch_bytes = max_dispatch_bytes
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        # After GOAWAY the sidecar still answers the publishes it accepted, then closes
        # (bounded by its --drain-timeout); this bounds how long we wait for that close.
        self.drain_wait = drain_wait
        # 2: durable channels (subscribe_durable, stream ids); 1 for a sidecar before them;
        # 3: also publish(..., echo=False) (PUBX), for a sidecar that speaks it.
        if not p.PROTOCOL_VERSION <= protocol_version <= p.PUBX_VERSION:
            raise ValueError(f"protocol_version must be {p.PROTOCOL_VERSION} to {p.PUBX_VERSION}")
        self.protocol_version = protocol_version

        self.state = "connecting"  # connecting, ready, draining (after GOAWAY), backoff, closed
        self.server_info: Optional[p.Welcome] = None
        self._loop = asyncio.get_running_loop()
        self._conn: Optional[_Conn] = None
        self._next_rid = 0
        self._queue: Deque[_Op] = deque()
        self._pending_bytes = 0
        self._queue_event = asyncio.Event()
        self._inflight: Dict[int, _Op] = {}     # insertion order = send order
        self._channels: Dict[bytes, List[Handler]] = {}
        self._patterns: Dict[bytes, List[Handler]] = {}
        # Durable channels: handlers, and the last stream id and epoch seen per channel, so
        # a reconnect resumes exactly after the last message received.
        self._durable: Dict[bytes, List[Handler]] = {}
        self.durable_positions: Dict[bytes, Tuple[bytes, bytes]] = {}  # channel -> (id, epoch)
        self._listeners: Dict[str, List[Callable[..., Any]]] = {}
        self._dispatch: Deque[p.Msg] = deque()
        self._dispatch_bytes = 0
        self._dispatch_event = asyncio.Event()
        self._handler_waits = 0
        self._read_gate = asyncio.Event()
        self._read_gate.set()
        self._read_gate_opened = 0.0  # monotonic time the gate last opened
        self._ready: asyncio.Future = self._loop.create_future()
        self._closing = False
        self._closed_error: Optional[PodrelayError] = None
        self._wake = asyncio.Event()            # interrupts the backoff sleep
        self._run_task = self._loop.create_task(self._run(), name="podrelay-connection")
        self._dispatch_task = self._loop.create_task(self._dispatch_loop(),
                                                     name="podrelay-dispatch")

    # --- public API ------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.state == "ready"

    @property
    def pending_bytes(self) -> int:
        """Bytes of frames waiting in the client's queue."""
        return self._pending_bytes

    def on(self, event: str, fn: Callable[..., Any]) -> None:
        """Listen to ``connect(welcome)``, ``disconnect(error)``, ``reconnecting(attempt,
        delay, error)``, ``goaway(error)``, ``message(payload, channel, pattern)``,
        ``error(error)``, ``close(error)``. Listeners are plain functions."""
        self._listeners.setdefault(event, []).append(fn)

    def off(self, event: str, fn: Callable[..., Any]) -> None:
        fns = self._listeners.get(event, [])
        if fn in fns:
            fns.remove(fn)

    async def ready(self, timeout: Optional[float] = None) -> p.Welcome:
        """The current connection's WELCOME; waits for the connection if there is none
        (for up to ``timeout`` seconds, then ``PodrelayTimeout``)."""
        if self.state == "ready" and self.server_info is not None:
            return self.server_info
        if self._closed_error is not None:
            raise self._closed_error
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except asyncio.TimeoutError:
            raise _timeout(f"not connected to the sidecar within {timeout}s") from None

    async def publish(self, channel: Name, payload: Name = b"", *, ack: bool = True,
                      echo: bool = True) -> None:
        """Publish ``payload`` on ``channel``. With ``ack`` returns once Redis accepted it
        and raises ``PodrelayError`` on a nack; without, returns once the frame was handed
        to the operating system. ``echo=False`` (a client made with ``protocol_version=3``)
        sends a PUBX: the sidecar does not deliver the message back to this connection's
        own subscription of ``channel`` (best effort; pattern subscriptions still get it;
        every other subscriber does, on every pod)."""
        ch = _to_bytes(channel, "channel")
        if len(ch) > p.MAX_STR_BYTES:
            raise ValueError(f"channel longer than {p.MAX_STR_BYTES} bytes")
        if not echo and self.protocol_version < p.PUBX_VERSION:
            raise ValueError("echo=False (PUBX) needs a client made with protocol_version=3")
        rid = self._rid() if ack else 0
        encode = p.encode_pub if echo else p.encode_pubx
        data = encode(rid, ch, _to_bytes(payload, "payload"))
        self._check_frame_size(data)
        if len(data) > self.max_pending_bytes:
            raise _local(p.PUBLISH_BUFFER_FULL, "PUBLISH_BUFFER_FULL",
                         f"a publish of {len(data)} bytes can never fit the client queue "
                         f"(max_pending_bytes {self.max_pending_bytes})")
        if self._pending_bytes + len(data) > self.max_pending_bytes:
            raise _local(p.PUBLISH_BUFFER_FULL, "PUBLISH_BUFFER_FULL",
                         f"client queue is full ({self._pending_bytes} of "
                         f"{self.max_pending_bytes} bytes)")
        # On a durable channel (protocol 2) the answer carries the stream id Redis assigned.
        return await self._request(_Op("pub" if ack else "pub0", rid, data,
                                       self._loop.create_future()))

    async def subscribe_durable(self, channel: Name, handler: Handler, *,
                                since: Optional[Name] = None,
                                epoch: Optional[Name] = None) -> p.RsubOk:
        """Subscribe ``handler(payload, channel, stream_id)`` to a durable channel (one the
        sidecar's ``--durable`` patterns select; protocol version 2). With ``since`` (and
        the ``epoch`` it came from) the messages published after that id are replayed
        first. Returns the sidecar's RSUBOK: ``recovered`` 0 means history no longer
        reaches back that far (or the stream was recreated): reload your state.
        After a reconnect the client resumes each durable channel after the last id it
        received, by itself, and emits ``resumed(channel, rsubok)``."""
        if not callable(handler):
            raise TypeError("handler must be callable")
        if self.protocol_version < 2:
            raise ValueError("subscribe_durable needs a client made with protocol_version=2 "
                             "or 3 (durable channels are protocol version 2)")
        ch = _to_bytes(channel, "channel")
        if self._closed_error is not None:
            raise self._closed_error
        since_b = _to_bytes(since, "since") if since is not None else b""
        epoch_b = _to_bytes(epoch, "epoch") if epoch is not None else b""
        created = ch not in self._durable
        self._durable.setdefault(ch, [])
        if handler not in self._durable[ch]:
            self._durable[ch].append(handler)
        previous = self.durable_positions.get(ch)
        if since_b:
            self.durable_positions[ch] = (since_b, epoch_b)
        rid = self._rid()
        op = _Op("rsub", rid, p.encode_rsub(rid, ch, since_b, epoch_b),
                 self._loop.create_future(), [ch])
        try:
            ok = await self._request(op)
        except (PodrelayError, asyncio.CancelledError) as e:
            # Refused or given up: nothing of it stays (an app that saves
            # durable_positions must not save a position the sidecar refused).
            still_ours = created and self._durable.pop(ch, None) is not None
            if still_ours and isinstance(e, asyncio.CancelledError):
                self._unsubscribe_behind("unsub", [ch])
            if previous is None:
                self.durable_positions.pop(ch, None)
            else:
                self.durable_positions[ch] = previous
            raise
        return ok

    async def subscribe(self, channels: Union[Name, Iterable[Name]], handler: Handler) -> None:
        """Subscribe ``handler(payload, channel, None)`` to one channel or a list of them.
        Returns once the sidecar confirmed (Redis has the subscription)."""
        await self._sub("sub", self._channels, _name_list(channels, "channel"), handler)

    async def psubscribe(self, patterns: Union[Name, Iterable[Name]], handler: Handler) -> None:
        """Subscribe ``handler(payload, channel, pattern)`` to Redis glob patterns."""
        await self._sub("psub", self._patterns, _name_list(patterns, "pattern"), handler)

    async def unsubscribe(self, channels: Union[None, Name, Iterable[Name]] = None,
                          handler: Optional[Handler] = None) -> None:
        """Remove ``handler`` (or every handler) from the channels (or from every channel).
        No removed handler is called after this call started."""
        await self._unsub("unsub", self._channels, channels, handler, "channel")

    async def punsubscribe(self, patterns: Union[None, Name, Iterable[Name]] = None,
                           handler: Optional[Handler] = None) -> None:
        await self._unsub("punsub", self._patterns, patterns, handler, "pattern")

    async def unsubscribe_durable(self, channel: Name) -> None:
        """Stop a durable subscription and forget its position."""
        ch = _to_bytes(channel, "channel")
        if self._durable.pop(ch, None) is None:
            return
        self.durable_positions.pop(ch, None)
        rid = self._rid()
        await self._request(_Op("unsub", rid, p.encode_unsub(rid, [ch]),
                                self._loop.create_future(), [ch]))

    async def ping(self, timeout: float = 5.0) -> float:
        """Round trip to the sidecar (not to Redis) in seconds."""
        t0 = time.monotonic()
        rid = self._rid()
        op = _Op("ping", rid, p.encode_ping(rid), self._loop.create_future())
        try:
            await asyncio.wait_for(self._request(op), timeout)
        except asyncio.TimeoutError:
            raise _timeout(f"no PONG within {timeout}s") from None
        return time.monotonic() - t0

    async def close(self, timeout: float = 5.0) -> None:
        """Stop reconnecting, let accepted operations finish for up to ``timeout`` seconds,
        then close. Whatever is still unsettled fails (``CLIENT_CLOSED``, or
        ``OUTCOME_UNKNOWN`` for acked publishes already sent)."""
        if self.state == "closed" and self._run_task.done():
            return
        self._closing = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        # Connected: let the queue flush and the answers come. Draining (after GOAWAY):
        # only the answers can still come; the queue is never sent.
        while ((self.state == "ready" and (self._queue or self._inflight))
               or (self.state == "draining" and self._inflight)):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.01)
        self._shutdown(_closed())
        await self._finish_tasks()

    def destroy(self) -> None:
        """Close at once (no flush). Safe to call from sync code."""
        self._closing = True
        self._shutdown(_closed())

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- requests --------------------------------------------------------------------
    def _rid(self) -> int:
        self._next_rid = self._next_rid % 0xFFFFFFFF + 1  # wraps, skips 0
        return self._next_rid

    def _check_frame_size(self, data: bytes) -> None:
        limit = (self.server_info.max_frame_bytes if self.server_info
                 else p.DEFAULT_MAX_FRAME_BYTES)
        if len(data) - 4 > limit:
            raise _local(p.FRAME_TOO_LARGE, "FRAME_TOO_LARGE",
                         f"frame of {len(data) - 4} bytes above the sidecar's limit {limit}")

    async def _request(self, op: _Op) -> Any:
        if self._closed_error is not None:
            raise self._closed_error
        if asyncio.current_task() is self._dispatch_task:
            # A handler waiting for a reply must not be starved by the read gate.
            op.from_handler = True
            self._handler_waits += 1
            self._update_read_gate()
        self._enqueue(op)
        try:
            return await op.future
        except asyncio.CancelledError:
            if op.kind in ("pub", "pub0", "ping") and not op.written:
                self._dequeue(op)  # never sent: it no longer holds room in the queue
            raise
        finally:
            if op.from_handler:
                self._handler_waits -= 1
                self._update_read_gate()

    def _enqueue(self, op: _Op, front: bool = False) -> None:
        if front:
            self._queue.appendleft(op)
        else:
            self._queue.append(op)
        self._pending_bytes += len(op.data)
        self._queue_event.set()

    def _dequeue(self, op: _Op) -> None:
        try:
            self._queue.remove(op)
        except ValueError:
            return
        self._pending_bytes -= len(op.data)

    def _unsubscribe_behind(self, kind: str, names: List[bytes]) -> None:
        """Queue an (P)UNSUB for ``names`` that nobody awaits: a cancelled subscribe's
        SUB may already be on its way, and its subscription must not outlive it. A closed
        client has nothing to undo."""
        if self._closed_error is not None:
            return
        for rid, data, chunk in self._sub_frames(kind, names):
            op = _Op(kind, rid, data, self._loop.create_future(), chunk)
            op.future.add_done_callback(_ignore_outcome)
            self._enqueue(op)

    def _sub_frames(self, kind: str, names: List[bytes]) -> List[Tuple[int, bytes, List[bytes]]]:
        """SUB/PSUB/UNSUB/PUNSUB frames for ``names``, split to fit the frame limit."""
        enc = {"sub": p.encode_sub, "psub": p.encode_psub, "unsub": p.encode_unsub,
               "punsub": p.encode_punsub}[kind]
        limit = (self.server_info.max_frame_bytes if self.server_info
                 else p.DEFAULT_MAX_FRAME_BYTES)
        out = []
        chunk: List[bytes] = []
        size = 1 + 4 + 2
        for n in names:
            if chunk and (size + 2 + len(n) > limit or len(chunk) >= p.MAX_LIST_ITEMS):
                rid = self._rid()
                out.append((rid, enc(rid, chunk), chunk))
                chunk, size = [], 1 + 4 + 2
            chunk.append(n)
            size += 2 + len(n)
        if chunk or not names:
            rid = self._rid()
            out.append((rid, enc(rid, chunk), chunk))
        return out

    async def _sub(self, kind: str, table: Dict[bytes, List[Handler]], names: List[bytes],
                   handler: Handler) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        if not names:
            raise _local(p.INVALID_ARGUMENT, "INVALID_ARGUMENT", "empty list")
        if kind == "psub" and any(not n for n in names):
            raise _local(p.INVALID_ARGUMENT, "INVALID_ARGUMENT", "empty pattern")
        if self._closed_error is not None:
            raise self._closed_error
        added: List[Tuple[bytes, bool]] = []  # (name, channel newly created)
        for n in dict.fromkeys(names):
            hs = table.get(n)
            if hs is None:
                table[n] = [handler]
                added.append((n, True))
            elif handler not in hs:
                hs.append(handler)
                added.append((n, False))
        ops = [_Op(kind, rid, data, self._loop.create_future(), chunk)
               for rid, data, chunk in self._sub_frames(kind, list(dict.fromkeys(names)))]
        try:
            await asyncio.gather(*(self._request(op) for op in ops))
        except PodrelayError as e:
            if e.name not in ("CLIENT_CLOSED",):
                self._roll_back(table, added, handler)
            raise
        except asyncio.CancelledError:
            # The caller gave up (a timeout): its handler must not stay subscribed.
            gone = self._roll_back(table, added, handler)
            if gone:
                self._unsubscribe_behind("unsub" if kind == "sub" else "punsub", gone)
            raise

    @staticmethod
    def _roll_back(table: Dict[bytes, List[Handler]], added: List[Tuple[bytes, bool]],
                   handler: Handler) -> List[bytes]:
        """Undo one subscribe call's registrations; returns the names left with no
        handler at all (the sidecar subscription of these is no longer wanted)."""
        gone = []
        for n, created in added:
            hs = table.get(n)
            if hs and handler in hs:
                hs.remove(handler)
                if not hs and created:
                    del table[n]
                    gone.append(n)
        return gone

    async def _unsub(self, kind: str, table: Dict[bytes, List[Handler]],
                     names: Union[None, Name, Iterable[Name]], handler: Optional[Handler],
                     what: str) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        targets = list(table) if names is None else _name_list(names, what)
        removed = []
        for n in dict.fromkeys(targets):
            hs = table.get(n)
            if hs is None:
                continue
            if handler is not None:
                if handler in hs:
                    hs.remove(handler)
                if hs:
                    continue
            del table[n]
            removed.append(n)
        if not removed:
            return
        ops = [_Op(kind, rid, data, self._loop.create_future(), chunk)
               for rid, data, chunk in self._sub_frames(kind, removed)]
        await asyncio.gather(*(self._request(op) for op in ops))

    # --- connection lifecycle --------------------------------------------------------
    def _emit(self, event: str, *args: Any) -> None:
        for fn in list(self._listeners.get(event, ())):
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a listener must not break the client
                log.exception("podrelay: %s listener raised", event)
        if event == "error" and not self._listeners.get("error"):
            err = args[0] if args else None
            if isinstance(err, BaseException) and not isinstance(err, PodrelayError):
                # an application handler raised: keep its traceback
                log.error("podrelay: a message handler raised %r", err, exc_info=err)
            else:
                log.warning("podrelay: %s", err if err is not None else "error")

    def _backoff(self, attempt: int) -> float:
        step = min(self.reconnect_max_delay, self.reconnect_min_delay * (2 ** (attempt - 1)))
        return step * random.uniform(0.5, 1.0)  # jitter: 50-100 % of the step

    async def _run(self) -> None:
        attempt = 0
        last_error: Optional[BaseException] = None
        try:
            while not self._closing:
                self.state = "connecting"
                try:
                    conn = await asyncio.wait_for(self._open(), self.connect_timeout)
                except PodrelayError as e:
                    if not e.local and e.code // 100 == 1:
                        # refused handshake (AUTH_FAILED, UNSUPPORTED_VERSION): fatal
                        self._shutdown(e)
                        return
                    last_error = e
                except (OSError, asyncio.TimeoutError, p.ProtocolError, EOFError) as e:
                    last_error = e
                else:
                    attempt = 0
                    err = await self._serve(conn)
                    last_error = err
                    if self._closing:
                        return
                    if conn.goaway is not None and conn.goaway.code == p.SHUTTING_DOWN:
                        attempt = 0  # the next sidecar instance is expected shortly
                if self._closing:
                    return
                if not self.reconnect:
                    self._shutdown(_local(0, "NOT_CONNECTED",
                                          f"connection to the sidecar lost: {last_error}"))
                    return
                attempt += 1
                delay = self._backoff(attempt)
                self.state = "backoff"
                self._emit("reconnecting", attempt, delay, last_error)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug here must not hang the callers
            log.exception("podrelay: connection task failed")
            self._shutdown(_local(0, "INTERNAL_ERROR", repr(e)))

    async def _open(self) -> _Conn:
        family, addr = parse_address(self.address)
        if family == socket.AF_UNIX:
            reader, writer = await asyncio.open_unix_connection(addr, limit=_READ_SIZE)
        else:
            reader, writer = await asyncio.open_connection(addr[0], addr[1], limit=_READ_SIZE)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
        try:
            writer.write(p.encode_hello(self.client_name, self.auth_token,
                                        self.protocol_version))
            await writer.drain()
            decoder = p.Decoder(self.max_incoming_frame_bytes, self.protocol_version)
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    raise EOFError("sidecar closed the connection during the handshake")
                frames = decoder.feed(data)
                if frames:
                    break
            first, rest = frames[0], frames[1:]
            if isinstance(first, (p.Err, p.Goaway)):
                raise PodrelayError.from_frame(first)
            if not isinstance(first, p.Welcome):
                raise p.ProtocolError(p.UNEXPECTED_FRAME, "UNEXPECTED_FRAME",
                                      f"expected WELCOME, got {first.type}")
            # The sidecar may send frames up to the limit it announces (PROTOCOL.md): a
            # larger --max-frame-bytes than this client's default must not cut it off.
            decoder.max_frame_bytes = max(decoder.max_frame_bytes,
                                          first.max_frame_bytes)
            return _Conn(reader, writer, decoder, first, rest)
        except BaseException:
            writer.transport.abort()
            raise

    async def _serve(self, conn: _Conn) -> Optional[BaseException]:
        """Runs one established connection until it ends; returns why it ended."""
        self._conn = conn
        self.server_info = conn.welcome
        self.state = "ready"
        # Re-subscribe before anything queued: subscriptions are state, not requests.
        resub = []
        for kind, table in (("sub", self._channels), ("psub", self._patterns)):
            if table:
                resub += [_Op(kind, rid, data, None, chunk)
                          for rid, data, chunk in self._sub_frames(kind, list(table))]
        asked = {op.names[0] for op in self._queue if op.kind == "rsub" and op.future}
        for ch in self._durable:
            if ch in asked:  # the app's own RSUB is still queued; it will do
                continue
            since, epoch = self.durable_positions.get(ch, (b"", b""))
            rid = self._rid()
            resub.append(_Op("rsub", rid, p.encode_rsub(rid, ch, since, epoch), None, [ch]))
        for op in reversed(resub):
            self._enqueue(op, front=True)
        if not self._ready.done():
            self._ready.set_result(conn.welcome)
        self._emit("connect", conn.welcome)
        writer_task = self._loop.create_task(self._write_loop(conn), name="podrelay-writer")
        keepalive_task = (self._loop.create_task(self._keepalive(conn), name="podrelay-ping")
                          if self.ping_interval > 0 else None)
        error: Optional[BaseException] = None
        try:
            for f in conn.leftover:
                self._on_frame(conn, f)
            while True:
                if conn.goaway is None:
                    await self._read_gate.wait()
                    data = await conn.reader.read(_READ_SIZE)
                else:
                    # Draining: the sidecar sends the answers it owes, then closes. Only
                    # OK/ERR come now, so the read gate (for MSG backpressure) is skipped.
                    left = conn.goaway_deadline - time.monotonic()
                    try:
                        data = await asyncio.wait_for(conn.reader.read(_READ_SIZE),
                                                      max(left, 0.0))
                    except asyncio.TimeoutError:
                        break
                if not data:
                    if conn.goaway is not None:
                        break  # the close that ends a drain

                    error = conn.error or EOFError("sidecar closed the connection")
                    break
                conn.last_rx = time.monotonic()
                for f in conn.decoder.feed(data):
                    self._on_frame(conn, f)
        except asyncio.CancelledError:
            raise
        except p.ProtocolError as e:
            error = e
            self._emit("error", _local(e.code, e.name, f"from the sidecar: {e.text}"))
        except (OSError, EOFError) as e:
            error = conn.error or e
        finally:
            for t in (writer_task, keepalive_task):
                if t is not None:
                    t.cancel()
            conn.abort()
            for t in (writer_task, keepalive_task):
                if t is not None:
                    try:
                        await t
                    except BaseException:  # noqa: BLE001 - cancelled or failed: done either way
                        pass
            self._lost(conn, error)
        if conn.goaway is not None:
            error = conn.goaway
        return error

    def _lost(self, conn: _Conn, error: Optional[BaseException]) -> None:
        """Settle what the broken connection owed: acked publishes -> OUTCOME_UNKNOWN,
        pings -> CONNECTION_LOST, (un)subscribe requests -> re-queued (idempotent)."""
        if self._conn is conn:
            self._conn = None
        if self.state in ("ready", "draining"):
            self.state = "connecting"
        self._ready = self._loop.create_future() if self._ready.done() else self._ready
        why = str(conn.goaway or error or "connection closed")
        requeue = []
        for op in conn.unflushed:
            if op.kind == "pub0":
                self._settle(op, exc=_outcome_unknown(why))
        conn.unflushed = []
        for op in self._inflight.values():
            if op.kind == "pub":
                self._settle(op, exc=_outcome_unknown(why))
            elif op.kind == "ping":
                self._settle(op, exc=_local(0, "CONNECTION_LOST",
                                            f"connection to the sidecar lost: {why}"))
            elif op.future is not None:
                op.written = False
                requeue.append(op)
            # internal re-subscribe ops are simply regenerated on the next connection
        self._inflight.clear()
        for op in reversed(requeue):
            self._enqueue(op, front=True)
        # queued re-subscribes of this connection are stale: the next one makes new ones
        stale = [op for op in self._queue if op.future is None]
        for op in stale:
            self._queue.remove(op)
            self._pending_bytes -= len(op.data)
        if not self._closing:
            self._emit("disconnect", error if conn.goaway is None else conn.goaway)

    async def _write_loop(self, conn: _Conn) -> None:
        limit = conn.welcome.max_frame_bytes
        while True:
            while not self._queue or conn.goaway is not None:
                if conn.goaway is not None:
                    return  # nothing more is read by the sidecar: keep the queue for later
                self._queue_event.clear()
                await self._queue_event.wait()
            batch: List[_Op] = []
            size = 0
            while self._queue and size < _WRITE_BATCH:
                op = self._queue.popleft()
                self._pending_bytes -= len(op.data)
                if (op.future is not None and op.future.done()
                        and op.kind in ("pub", "pub0", "ping")):
                    continue  # cancelled by its caller before it was written
                # (SUB & co. are sent even then: the subscription table already changed)
                if len(op.data) - 4 > limit:
                    self._settle(op, exc=_local(
                        p.FRAME_TOO_LARGE, "FRAME_TOO_LARGE",
                        f"frame of {len(op.data) - 4} bytes above the sidecar's limit {limit}"))
                    continue
                if op.rid:
                    self._inflight[op.rid] = op
                op.written = True
                batch.append(op)
                size += len(op.data)
            if not batch:
                continue
            conn.unflushed = batch
            conn.writer.write(b"".join(op.data for op in batch))
            try:
                await conn.writer.drain()  # transport backpressure
            except (OSError, EOFError) as e:
                conn.error = e
                conn.abort()
                return  # _lost() settles conn.unflushed
            conn.unflushed = []
            for op in batch:
                if op.kind == "pub0":
                    self._settle(op, result=None)

    async def _keepalive(self, conn: _Conn) -> None:
        while conn.goaway is None:  # after GOAWAY a PING is never answered
            idle = time.monotonic() - conn.last_rx
            if idle < self.ping_interval:
                await asyncio.sleep(self.ping_interval - idle)
                continue
            asked = time.monotonic()
            try:
                await self.ping(timeout=self.ping_timeout)
            except PodrelayError as e:
                if e.name != "TIMEOUT" or conn.goaway is not None:
                    return
                if conn.last_rx > asked or self._reads_held_since(asked):
                    # The PONG is queued behind messages this client itself is slow to
                    # take (slow handlers hold the read gate): the sidecar is alive.
                    continue
                conn.error = e
                conn.abort()
                return

    def _reads_held_since(self, t: float) -> bool:
        return not self._read_gate.is_set() or self._read_gate_opened > t

    def _on_frame(self, conn: _Conn, f: p.Frame) -> None:
        if isinstance(f, p.Msg):
            self._dispatch.append(f)
            self._dispatch_bytes += len(f.payload) + len(f.channel) + len(f.pattern) + 64
            self._dispatch_event.set()
            self._update_read_gate()
        elif isinstance(f, p.Smsg):
            last = self.durable_positions.get(f.channel)
            self.durable_positions[f.channel] = (f.id, last[1] if last else b"")
            self._dispatch.append(f)
            self._dispatch_bytes += len(f.payload) + len(f.channel) + len(f.id) + 64
            self._dispatch_event.set()
            self._update_read_gate()
        elif isinstance(f, (p.Ok, p.Pong)):
            op = self._inflight.pop(f.request_id, None)
            if op is not None:
                self._settle(op, result=None)
        elif isinstance(f, p.PubOk):
            op = self._inflight.pop(f.request_id, None)
            if op is not None:
                self._settle(op, result=f.id)
        elif isinstance(f, p.RsubOk):
            op = self._inflight.pop(f.request_id, None)
            if op is not None and op.names:
                self.durable_positions[op.names[0]] = (f.last_id, f.epoch)
                self._emit("resumed", op.names[0], f)
                self._settle(op, result=f)
        elif isinstance(f, p.Err):
            if f.request_id == 0 or p.closes_connection(f.code):
                err = PodrelayError.from_frame(f)
                conn.error = err
                self._emit("error", err)
                return
            op = self._inflight.pop(f.request_id, None)
            err = PodrelayError.from_frame(f)
            if op is None:
                return
            if op.future is None:  # a re-subscribe after reconnect was refused
                self._emit("error", err)
            self._settle(op, exc=err)
        elif isinstance(f, p.Goaway):
            # The sidecar reads nothing more: stop writing (what is queued waits for the next
            # connection) and keep reading, for the answers to the publishes it accepted.
            conn.goaway = PodrelayError.from_frame(f)
            conn.goaway_deadline = time.monotonic() + self.drain_wait
            if self.state == "ready":
                self.state = "draining"
            self._queue_event.set()  # the writer sees the GOAWAY and stops
            self._emit("goaway", conn.goaway)
        else:
            conn.error = _local(p.UNEXPECTED_FRAME, "UNEXPECTED_FRAME",
                                f"sidecar sent {f.type}")
            self._emit("error", conn.error)
            conn.abort()

    @staticmethod
    def _settle(op: _Op, result: Any = None, exc: Optional[BaseException] = None) -> None:
        fut = op.future
        if fut is None or fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def _update_read_gate(self) -> None:
        if self._dispatch_bytes <= self.max_dispatch_bytes or self._handler_waits > 0:
            if not self._read_gate.is_set():
                self._read_gate_opened = time.monotonic()
                self._read_gate.set()
        else:
            self._read_gate.clear()

    async def _dispatch_loop(self) -> None:
        while True:
            while not self._dispatch:
                self._dispatch_event.clear()
                await self._dispatch_event.wait()
            m = self._dispatch.popleft()
            if isinstance(m, p.Smsg):
                self._dispatch_bytes -= len(m.payload) + len(m.channel) + len(m.id) + 64
                self._update_read_gate()
                await self._dispatch_durable(m)
                continue
            self._dispatch_bytes -= len(m.payload) + len(m.channel) + len(m.pattern) + 64
            self._update_read_gate()
            pattern = m.pattern or None
            self._emit("message", m.payload, m.channel, pattern)
            table = self._patterns if pattern is not None else self._channels
            key = pattern if pattern is not None else m.channel
            for h in list(table.get(key, ())):
                if h not in table.get(key, ()):  # removed by an earlier handler
                    continue
                await self._call_handler(h, m.payload, m.channel, pattern)

    async def _dispatch_durable(self, m: p.Smsg) -> None:
        self._emit("message", m.payload, m.channel, None)
        # Plain SUB handlers of a durable channel get it too (as for a MSG).
        for table, third in ((self._durable, m.id), (self._channels, None)):
            for h in list(table.get(m.channel, ())):
                await self._call_handler(h, m.payload, m.channel, third)

    async def _call_handler(self, h: Handler, *args: object) -> None:
        # A handler's exception is reported on "error"; the client goes on.
        try:
            r = h(*args)
            if inspect.isawaitable(r):
                await r
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - reported, the client goes on
            self._emit("error", e)

    def _shutdown(self, error: PodrelayError) -> None:
        """Closed for good: fail everything still owed, stop the tasks."""
        if self._closed_error is not None:
            return
        self._closing = True
        self._closed_error = error
        self.state = "closed"
        self._wake.set()
        conn = self._conn
        for op in self._inflight.values():
            self._settle(op, exc=_outcome_unknown(str(error)) if op.kind == "pub" else error)
        self._inflight.clear()
        for op in self._queue:
            self._settle(op, exc=error)
        self._queue.clear()
        self._pending_bytes = 0
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # mark retrieved
        if conn is not None:
            conn.abort()
        try:
            current = asyncio.current_task()
        except RuntimeError:  # destroy() called outside the event loop
            current = None
        if self._run_task is not current and not self._run_task.done():
            self._run_task.cancel()
        if self._dispatch_task is not current and not self._dispatch_task.done():
            # deliver what already arrived? No: closed means no more handler calls.
            self._dispatch_task.cancel()
        self._emit("close", error if error.name != "CLIENT_CLOSED" else None)

    async def _finish_tasks(self) -> None:
        current = asyncio.current_task()
        for t in (self._run_task, self._dispatch_task):
            if t is current or t.done():
                continue
            try:
                await asyncio.wait_for(asyncio.shield(t), 5.0)
            except BaseException:  # noqa: BLE001 - cancelled or timed out: nothing to add
                pass


def _ignore_outcome(fut: "asyncio.Future[Any]") -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved: nobody awaits this request


async def connect(address: str = DEFAULT_ADDRESS, *, client_name: Name = "",
                  auth_token: Name = "", reconnect: bool = True, wait: bool = True,
                  timeout: Optional[float] = None, **options: Any) -> Client:
    """Create a client and (with ``wait``) wait for its first connection.

    With ``reconnect`` the client keeps retrying (backoff with jitter) for up to ``timeout``
    seconds (default: ``connect_timeout``, 5 s) before ``connect`` gives up, closes the
    client and raises. A handshake refused by the sidecar (``AUTH_FAILED``) raises at once.
    With ``wait=False`` it returns at once; operations queue until the connection is up.
    Other keyword options are those of ``Client``.
    """
    client = Client(address, client_name=client_name, auth_token=auth_token,
                    reconnect=reconnect, **options)
    if not wait:
        return client
    limit = timeout if timeout is not None else client.connect_timeout
    try:
        await client.ready(timeout=limit)
    except PodrelayTimeout:
        client.destroy()
        await client._finish_tasks()
        raise _timeout(
            f"could not connect to the sidecar at {address} within {limit}s") from None
    except BaseException:
        client.destroy()
        await client._finish_tasks()
        raise
    return client
