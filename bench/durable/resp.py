"""Minimal RESP2 wire code for the direct-to-Redis baseline (no client library, so the
baseline costs what a lean app would pay: one encode per command, one streaming parse).

Not thread-safe: one RespReader per connection direction.
"""

from __future__ import annotations

from typing import List, Union


class RespError(Exception):
    """A Redis error reply (`-ERR ...`)."""


def command(*args: Union[bytes, str, int]) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a).encode()
        elif isinstance(a, str):
            a = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


class RespReader:
    """Streaming RESP2 parser. ``feed(data)`` returns every reply completed by ``data``.

    It keeps a stack of the arrays still being filled, so a large reply (XRANGE of 10,000
    entries) arriving in many reads is parsed once, not re-parsed from its start on every
    read. Error replies are returned as RespError instances, not raised: the caller decides.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stack: List[list] = []  # [items, remaining] per open array

    def feed(self, data: bytes) -> list:
        buf = self._buf
        buf += data
        out: list = []
        pos = 0
        n = len(buf)
        stack = self._stack
        while pos < n:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            t = buf[pos]
            if t == 0x24:  # '$' bulk string
                ln = int(buf[pos + 1:eol])
                if ln < 0:
                    val = None
                    pos = eol + 2
                else:
                    end = eol + 2 + ln
                    if end + 2 > n:
                        break
                    val = bytes(buf[eol + 2:end])
                    pos = end + 2
            elif t == 0x2A:  # '*' array
                ln = int(buf[pos + 1:eol])
                pos = eol + 2
                if ln > 0:
                    stack.append([[], ln])
                    continue
                val = [] if ln == 0 else None
            elif t == 0x3A:  # ':' integer
                val = int(buf[pos + 1:eol])
                pos = eol + 2
            elif t == 0x2B:  # '+' status
                val = bytes(buf[pos + 1:eol])
                pos = eol + 2
            elif t == 0x2D:  # '-' error
                val = RespError(bytes(buf[pos + 1:eol]).decode(errors="replace"))
                pos = eol + 2
            else:
                raise ValueError(f"RESP: unexpected type byte {t:#x}")
            # Attach the finished value to its array; close every array it completes.
            while stack:
                top = stack[-1]
                top[0].append(val)
                top[1] -= 1
                if top[1]:
                    break
                val = top[0]
                stack.pop()
            else:
                out.append(val)
        if pos:
            del buf[:pos]
        return out
