#!/usr/bin/env python3
"""Chat server for one pod, Python standard library only: browsers receive messages over
Server-Sent Events (GET /events) and send them with POST /send. Every message goes through
the local podrelay sidecar (channel "chat") with the asyncio client, so all pods, Node and
Python alike, see it.

Env: PORT (default 8080), PODRELAY_ADDRESS (default 127.0.0.1:7400), POD_NAME,
HOST (default 127.0.0.1).

The HTTP side is a deliberately small HTTP/1.1 server on asyncio streams (one request per
connection, bounded header and body sizes): http.server is thread based and would need a
bridge to the event loop the podrelay client lives on.
"""

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "clients", "python"))

from podrelay import aio  # noqa: E402

PORT = int(os.environ.get("PORT", "8080"))
HOST = os.environ.get("HOST", "127.0.0.1")
PODRELAY_ADDRESS = os.environ.get("PODRELAY_ADDRESS", "127.0.0.1:7400")
POD_NAME = os.environ.get("POD_NAME") or socket.gethostname()
CHANNEL = "chat"
MAX_TEXT = 2000
MAX_NICK = 32
MAX_BODY = 16 * 1024
MAX_HEADER = 16 * 1024
HISTORY = 50            # last messages replayed to a new browser
SSE_QUEUE = 256         # messages waiting for one browser before it is dropped
HEARTBEAT = 15.0        # seconds between SSE comments that keep proxies from timing out
PAGE_PATH = os.path.join(HERE, "..", "public", "index.html")

log = logging.getLogger("chat")


def normalise(payload: bytes) -> str:
    """Every message, also from other publishers, as one JSON line for the browser."""
    text = payload.decode("utf-8", "replace")
    try:
        m = json.loads(text)
    except ValueError:
        m = None
    if not isinstance(m, dict):
        m = {"text": text}
    ts = m.get("ts")
    return json.dumps({
        "id": str(m.get("id") or uuid.uuid4())[:64],
        "nick": str(m.get("nick") or "")[:MAX_NICK],
        "text": str(m.get("text") or "")[:MAX_TEXT],
        "pod": str(m.get("pod") or "?")[:64],
        "ts": ts if isinstance(ts, (int, float)) else int(time.time() * 1000),
    }, ensure_ascii=False)


class ChatPod:
    def __init__(self):
        with open(PAGE_PATH, "rb") as f:
            self.page = f.read()
        self.history = []
        self.browsers = set()  # one asyncio.Queue per SSE connection
        self.relay = None
        self.subscribed = False

    async def start_relay(self):
        self.relay = await aio.connect(PODRELAY_ADDRESS, client_name=f"chat-{POD_NAME}",
                                       timeout=30.0)
        self.relay.on("connect", lambda w: log.info("podrelay connected, sidecar %s",
                                                    w.node_id.decode(errors="replace")))
        self.relay.on("disconnect", lambda e: log.warning("podrelay disconnected: %s", e))
        self.relay.on("error", lambda e: log.warning("podrelay error: %s", e))
        await self.relay.subscribe(CHANNEL, self.on_message)
        self.subscribed = True

    def on_message(self, payload: bytes, channel: bytes, pattern) -> None:
        line = normalise(payload)
        self.history.append(line)
        del self.history[:-HISTORY]
        for q in list(self.browsers):
            try:
                q.put_nowait(line)
            except asyncio.QueueFull:  # slow browser: drop it, EventSource reconnects
                q.dropped = True
                self.browsers.discard(q)

    # --- HTTP ------------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    asyncio.TimeoutError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                return await self.respond(writer, 400, b"bad request\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            path = target.split("?", 1)[0]
            if method == "GET" and path in ("/", "/index.html"):
                await self.respond(writer, 200, self.page, "text/html; charset=utf-8")
            elif method == "GET" and path == "/info":
                await self.respond(writer, 200, json.dumps(
                    {"pod": POD_NAME, "transport": "sse"}).encode(), "application/json")
            elif method == "GET" and path == "/healthz":
                ok = self.relay is not None and self.relay.connected and self.subscribed
                await self.respond(writer, 200 if ok else 503,
                                   b"ok\n" if ok else b"not connected to podrelay\n")
            elif method == "GET" and path == "/events":
                await self.events(writer)
            elif method == "POST" and path == "/send":
                await self.send(reader, writer, headers)
            else:
                await self.respond(writer, 404, b"not found\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def respond(self, writer, status: int, body: bytes,
                      ctype: str = "text/plain; charset=utf-8") -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large",
                  502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Error")
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        await writer.drain()

    async def send(self, reader, writer, headers) -> None:
        try:
            length = int(headers.get("content-length", "-1"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return await self.respond(writer, 413 if length > MAX_BODY else 400,
                                      b"a JSON body up to 16 KiB is required\n")
        body = await asyncio.wait_for(reader.readexactly(length), 10.0)
        try:
            m = json.loads(body)
            text = m["text"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return await self.respond(writer, 400, b'expected {"text": "...", "nick": "..."}\n')
        msg = {"id": str(uuid.uuid4()), "nick": str(m.get("nick") or "")[:MAX_NICK],
               "text": text[:MAX_TEXT], "pod": POD_NAME, "ts": int(time.time() * 1000)}
        try:
            # not shown locally here: it comes back from the sidecar like every message
            await asyncio.wait_for(self.relay.publish(CHANNEL, json.dumps(msg)), 10.0)
        except (aio.PodrelayError, asyncio.TimeoutError) as e:
            log.warning("publish failed: %r", e)
            return await self.respond(writer, 502, f"not sent: {e}\n".encode())
        await self.respond(writer, 200, json.dumps({"id": msg["id"]}).encode(),
                           "application/json")

    async def events(self, writer) -> None:
        q = asyncio.Queue(SSE_QUEUE)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
                     b"retry: 1000\n\n")
        for line in self.history:
            writer.write(f"data: {line}\n\n".encode())
        await writer.drain()
        self.browsers.add(q)
        try:
            while True:
                try:
                    line = await asyncio.wait_for(q.get(), HEARTBEAT)
                except asyncio.TimeoutError:
                    writer.write(b": keepalive\n\n")
                else:
                    if line is None or getattr(q, "dropped", False):
                        return
                    writer.write(f"data: {line}\n\n".encode())
                await asyncio.wait_for(writer.drain(), 30.0)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            self.browsers.discard(q)


async def main() -> None:
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s [{POD_NAME}] %(levelname)s %(message)s")
    pod = ChatPod()
    await pod.start_relay()
    server = await asyncio.start_server(pod.handle, HOST, PORT, limit=MAX_HEADER)
    log.info("listening on http://%s:%d (podrelay %s)", HOST, PORT, PODRELAY_ADDRESS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    server.close()
    for q in list(pod.browsers):
        q.dropped = True
        if not q.full():
            q.put_nowait(None)
    await pod.relay.close(timeout=2.0)


if __name__ == "__main__":
    asyncio.run(main())
