"""Sans-I/O codec for the podrelay wire protocol, versions 1 and 2 (proto/PROTOCOL.md).

Nothing here touches a socket: ``encode_*`` functions turn fields into bytes, and
``Decoder`` turns bytes (fed in any split) into frame objects. The blocking client
(``sync_client``) and any future asyncio client are thin shells around these.

Decoded frames are small dataclasses whose field names are those of PROTOCOL.md section 2
(and of ``proto/vectors/frames.json``). ``str``/``rest`` fields are ``bytes``, ``list``
fields are lists of ``bytes``, integers are ``int``. ``frame.type`` is the frame name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields as dc_fields
from typing import ClassVar, Dict, Iterable, List, Optional, Tuple, Union

PROTOCOL_VERSION = 1
MAX_PROTOCOL_VERSION = 2  # version 2 adds durable channels: RSUB, SMSG, PUBOK, RSUBOK
# Version 3 adds PUBX (publish, not back to me). This client says version 2 in HELLO (every
# sidecar since durable channels speaks it); PUBX is here for tools and tests that speak 3.
PUBX_VERSION = 3
DEFAULT_MAX_FRAME_BYTES = 1048576
MAX_STR_BYTES = 65535
MAX_LIST_ITEMS = 65535

# --- frame types (section 2) ---------------------------------------------------------
HELLO = 0x01
PUB = 0x02
SUB = 0x03
UNSUB = 0x04
PSUB = 0x05
PUNSUB = 0x06
PING = 0x07
RSUB = 0x08  # version 2
PUBX = 0x09  # version 3
WELCOME = 0x81
MSG = 0x82
OK = 0x83
ERR = 0x84
PONG = 0x85
GOAWAY = 0x86
SMSG = 0x87    # version 2
PUBOK = 0x88   # version 2
RSUBOK = 0x89  # version 2
V2_TYPES = frozenset((RSUB, SMSG, PUBOK, RSUBOK))
V3_TYPES = frozenset((PUBX,))

TYPE_NAMES: Dict[int, str] = {
    HELLO: "HELLO", PUB: "PUB", SUB: "SUB", UNSUB: "UNSUB", PSUB: "PSUB",
    PUNSUB: "PUNSUB", PING: "PING", WELCOME: "WELCOME", MSG: "MSG", OK: "OK",
    ERR: "ERR", PONG: "PONG", GOAWAY: "GOAWAY", RSUB: "RSUB", SMSG: "SMSG", PUBOK: "PUBOK",
    RSUBOK: "RSUBOK", PUBX: "PUBX",
}
TYPE_CODES: Dict[str, int] = {v: k for k, v in TYPE_NAMES.items()}

# --- error codes (section 4) ---------------------------------------------------------
MALFORMED_FRAME = 100
FRAME_TOO_LARGE = 101
UNKNOWN_TYPE = 102
HANDSHAKE_REQUIRED = 103
UNSUPPORTED_VERSION = 104
AUTH_FAILED = 105
UNEXPECTED_FRAME = 106
INVALID_ARGUMENT = 200
TOO_MANY_SUBSCRIPTIONS = 201
NOT_SUPPORTED = 202
DRAINING = 203
SUBSCRIBE_REFUSED = 204
PUBLISH_BUFFER_FULL = 300
PUBLISH_TIMEOUT = 301
OUTCOME_UNKNOWN = 302
REDIS_ERROR = 303
NOT_REPLICATED = 304
SLOW_CONSUMER = 400
SHUTTING_DOWN = 401
TOO_MANY_CONNECTIONS = 402
STREAM_LOST = 403

ERROR_NAMES: Dict[int, str] = {
    100: "MALFORMED_FRAME", 101: "FRAME_TOO_LARGE", 102: "UNKNOWN_TYPE",
    103: "HANDSHAKE_REQUIRED", 104: "UNSUPPORTED_VERSION", 105: "AUTH_FAILED",
    106: "UNEXPECTED_FRAME", 200: "INVALID_ARGUMENT", 201: "TOO_MANY_SUBSCRIPTIONS",
    202: "NOT_SUPPORTED", 203: "DRAINING", 204: "SUBSCRIBE_REFUSED",
    300: "PUBLISH_BUFFER_FULL",
    301: "PUBLISH_TIMEOUT", 302: "OUTCOME_UNKNOWN", 303: "REDIS_ERROR", 304: "NOT_REPLICATED",
    400: "SLOW_CONSUMER", 401: "SHUTTING_DOWN", 402: "TOO_MANY_CONNECTIONS",
    403: "STREAM_LOST",
}
ERROR_CODES: Dict[str, int] = {v: k for k, v in ERROR_NAMES.items()}


def error_name(code: int) -> str:
    """Name of an error code; unknown codes are named by their range (section 4)."""
    if code in ERROR_NAMES:
        return ERROR_NAMES[code]
    return {1: "UNKNOWN_CONNECTION_ERROR", 2: "UNKNOWN_REQUEST_ERROR",
            3: "UNKNOWN_PUBLISH_NACK", 4: "UNKNOWN_GOAWAY"}.get(code // 100, "UNKNOWN_ERROR")


def closes_connection(code: int) -> bool:
    """1xx errors and 4xx GOAWAY reasons end the connection."""
    return code // 100 in (1, 4)


class ProtocolError(Exception):
    """Malformed input. ``code``/``name`` are from section 4, ``text`` says what was wrong."""

    def __init__(self, code: int, name: str, text: str):
        super().__init__(f"{name} ({code}): {text}")
        self.code = code
        self.name = name
        self.text = text


def _perr(code: int, text: str) -> ProtocolError:
    return ProtocolError(code, ERROR_NAMES[code], text)


# --- frame objects -------------------------------------------------------------------
Bytesish = Union[bytes, bytearray, memoryview, str]


def _b(v: Bytesish) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v)


@dataclass
class Hello:
    version: int = PROTOCOL_VERSION
    client_name: bytes = b""
    auth_token: bytes = b""
    type: ClassVar[str] = "HELLO"


@dataclass
class Pub:
    request_id: int
    channel: bytes
    payload: bytes = b""
    type: ClassVar[str] = "PUB"


@dataclass
class Pubx(Pub):
    """Version 3: a PUB whose message the sidecar does not deliver back to this connection."""
    type: ClassVar[str] = "PUBX"


@dataclass
class Sub:
    request_id: int
    channels: List[bytes] = field(default_factory=list)
    type: ClassVar[str] = "SUB"


@dataclass
class Unsub:
    request_id: int
    channels: List[bytes] = field(default_factory=list)
    type: ClassVar[str] = "UNSUB"


@dataclass
class Psub:
    request_id: int
    patterns: List[bytes] = field(default_factory=list)
    type: ClassVar[str] = "PSUB"


@dataclass
class Punsub:
    request_id: int
    patterns: List[bytes] = field(default_factory=list)
    type: ClassVar[str] = "PUNSUB"


@dataclass
class Ping:
    request_id: int
    type: ClassVar[str] = "PING"


@dataclass
class Welcome:
    version: int
    server_version: bytes
    node_id: bytes
    max_frame_bytes: int
    max_queue_bytes: int
    type: ClassVar[str] = "WELCOME"


@dataclass
class Msg:
    channel: bytes
    pattern: bytes
    payload: bytes
    type: ClassVar[str] = "MSG"


@dataclass
class Ok:
    request_id: int
    type: ClassVar[str] = "OK"


@dataclass
class Err:
    request_id: int
    code: int
    message: bytes
    type: ClassVar[str] = "ERR"

    @property
    def name(self) -> str:
        return error_name(self.code)


@dataclass
class Pong:
    request_id: int
    type: ClassVar[str] = "PONG"


@dataclass
class Goaway:
    code: int
    message: bytes
    type: ClassVar[str] = "GOAWAY"

    @property
    def name(self) -> str:
        return error_name(self.code)


@dataclass
class Rsub:
    """Version 2: subscribe to a durable channel, resuming after ``since_id`` (empty: now)."""
    request_id: int
    channel: bytes
    since_id: bytes = b""
    epoch: bytes = b""
    type: ClassVar[str] = "RSUB"


@dataclass
class Smsg:
    """Version 2: a message of a durable channel with its stream id."""
    channel: bytes
    id: bytes
    payload: bytes
    type: ClassVar[str] = "SMSG"


@dataclass
class PubOk:
    """Version 2: the answer to an acked PUB on a durable channel, with its stream id."""
    request_id: int
    id: bytes
    type: ClassVar[str] = "PUBOK"


@dataclass
class RsubOk:
    """Version 2: the answer to RSUB, after the replayed messages."""
    request_id: int
    recovered: int
    epoch: bytes
    last_id: bytes
    type: ClassVar[str] = "RSUBOK"


Frame = Union[Hello, Pub, Pubx, Sub, Unsub, Psub, Punsub, Ping, Welcome, Msg, Ok, Err, Pong, Goaway,
              Rsub, Smsg, PubOk, RsubOk]

# Layout of each frame body: (field name, kind). Kinds: u16, u32, str, list, rest.
SCHEMA: Dict[int, Tuple[type, Tuple[Tuple[str, str], ...]]] = {
    HELLO: (Hello, (("version", "u16"), ("client_name", "str"), ("auth_token", "str"))),
    PUB: (Pub, (("request_id", "u32"), ("channel", "str"), ("payload", "rest"))),
    PUBX: (Pubx, (("request_id", "u32"), ("channel", "str"), ("payload", "rest"))),
    SUB: (Sub, (("request_id", "u32"), ("channels", "list"))),
    UNSUB: (Unsub, (("request_id", "u32"), ("channels", "list"))),
    PSUB: (Psub, (("request_id", "u32"), ("patterns", "list"))),
    PUNSUB: (Punsub, (("request_id", "u32"), ("patterns", "list"))),
    PING: (Ping, (("request_id", "u32"),)),
    WELCOME: (Welcome, (("version", "u16"), ("server_version", "str"), ("node_id", "str"),
                        ("max_frame_bytes", "u32"), ("max_queue_bytes", "u32"))),
    MSG: (Msg, (("channel", "str"), ("pattern", "str"), ("payload", "rest"))),
    OK: (Ok, (("request_id", "u32"),)),
    ERR: (Err, (("request_id", "u32"), ("code", "u16"), ("message", "str"))),
    PONG: (Pong, (("request_id", "u32"),)),
    GOAWAY: (Goaway, (("code", "u16"), ("message", "str"))),
    RSUB: (Rsub, (("request_id", "u32"), ("channel", "str"), ("since_id", "str"),
                  ("epoch", "str"))),
    SMSG: (Smsg, (("channel", "str"), ("id", "str"), ("payload", "rest"))),
    PUBOK: (PubOk, (("request_id", "u32"), ("id", "str"))),
    RSUBOK: (RsubOk, (("request_id", "u32"), ("recovered", "u16"), ("epoch", "str"),
                      ("last_id", "str"))),
}
_CLASS_TO_CODE = {cls: code for code, (cls, _) in SCHEMA.items()}

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">IB")


# --- encoding ------------------------------------------------------------------------
def _enc_str(v: Bytesish) -> bytes:
    b = _b(v)
    if len(b) > MAX_STR_BYTES:
        raise ValueError(f"str field of {len(b)} bytes exceeds {MAX_STR_BYTES}")
    return _U16.pack(len(b)) + b


def _enc_list(items: Iterable[Bytesish]) -> bytes:
    items = list(items)
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError(f"list of {len(items)} items exceeds {MAX_LIST_ITEMS}")
    return _U16.pack(len(items)) + b"".join(_enc_str(i) for i in items)


def _enc_u16(v: int) -> bytes:
    if not 0 <= v <= 0xFFFF:
        raise ValueError(f"u16 out of range: {v}")
    return _U16.pack(v)


def _enc_u32(v: int) -> bytes:
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError(f"u32 out of range: {v}")
    return _U32.pack(v)


_ENCODERS = {"u16": _enc_u16, "u32": _enc_u32, "str": _enc_str, "list": _enc_list, "rest": _b}


def encode_frame_raw(type_code: int, body: bytes) -> bytes:
    """Wrap an already encoded body (no checks: also usable to build bad frames in tests)."""
    return _HEADER.pack(len(body) + 1, type_code) + body


def encode(frame: Frame) -> bytes:
    """Encode any frame object."""
    code = _CLASS_TO_CODE[type(frame)]
    _, layout = SCHEMA[code]
    body = b"".join(_ENCODERS[kind](getattr(frame, name)) for name, kind in layout)
    return encode_frame_raw(code, body)


def encode_hello(client_name: Bytesish = b"", auth_token: Bytesish = b"",
                 version: int = PROTOCOL_VERSION) -> bytes:
    return encode(Hello(version, _b(client_name), _b(auth_token)))


def encode_pub(request_id: int, channel: Bytesish, payload: Bytesish = b"") -> bytes:
    return encode(Pub(request_id, _b(channel), _b(payload)))


def encode_pubx(request_id: int, channel: Bytesish, payload: Bytesish = b"") -> bytes:
    return encode(Pubx(request_id, _b(channel), _b(payload)))


def encode_sub(request_id: int, channels: Iterable[Bytesish]) -> bytes:
    return encode(Sub(request_id, [_b(c) for c in channels]))


def encode_unsub(request_id: int, channels: Iterable[Bytesish] = ()) -> bytes:
    return encode(Unsub(request_id, [_b(c) for c in channels]))


def encode_psub(request_id: int, patterns: Iterable[Bytesish]) -> bytes:
    return encode(Psub(request_id, [_b(p) for p in patterns]))


def encode_punsub(request_id: int, patterns: Iterable[Bytesish] = ()) -> bytes:
    return encode(Punsub(request_id, [_b(p) for p in patterns]))


def encode_ping(request_id: int) -> bytes:
    return encode(Ping(request_id))


def encode_welcome(server_version: Bytesish, node_id: Bytesish,
                   max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                   max_queue_bytes: int = 8 * 1024 * 1024,
                   version: int = PROTOCOL_VERSION) -> bytes:
    return encode(Welcome(version, _b(server_version), _b(node_id), max_frame_bytes,
                          max_queue_bytes))


def encode_msg(channel: Bytesish, payload: Bytesish = b"", pattern: Bytesish = b"") -> bytes:
    return encode(Msg(_b(channel), _b(pattern), _b(payload)))


def encode_ok(request_id: int) -> bytes:
    return encode(Ok(request_id))


def encode_err(request_id: int, code: int, message: Bytesish = b"") -> bytes:
    return encode(Err(request_id, code, _b(message)))


def encode_pong(request_id: int) -> bytes:
    return encode(Pong(request_id))


def encode_goaway(code: int, message: Bytesish = b"") -> bytes:
    return encode(Goaway(code, _b(message)))


def encode_rsub(request_id: int, channel: Bytesish, since_id: Bytesish = b"",
                epoch: Bytesish = b"") -> bytes:
    return encode(Rsub(request_id, _b(channel), _b(since_id), _b(epoch)))


def encode_smsg(channel: Bytesish, id: Bytesish, payload: Bytesish = b"") -> bytes:
    return encode(Smsg(_b(channel), _b(id), _b(payload)))


def encode_pubok(request_id: int, id: Bytesish) -> bytes:
    return encode(PubOk(request_id, _b(id)))


def encode_rsubok(request_id: int, recovered: int, epoch: Bytesish, last_id: Bytesish) -> bytes:
    return encode(RsubOk(request_id, recovered, _b(epoch), _b(last_id)))


def known_type(type_code: int, version: int = MAX_PROTOCOL_VERSION) -> bool:
    """Whether ``type_code`` exists in protocol ``version`` (v2 types are unknown to v1, v3
    types to v1 and v2)."""
    if type_code in V3_TYPES:
        return version >= 3
    return type_code in SCHEMA and (version >= 2 or type_code not in V2_TYPES)


# --- decoding ------------------------------------------------------------------------
def decode_body(type_code: int, body: Union[bytes, memoryview],
                version: int = MAX_PROTOCOL_VERSION) -> Frame:
    """Decode the body of one frame whose type byte is ``type_code``."""
    if not known_type(type_code, version):
        raise _perr(UNKNOWN_TYPE, f"unknown frame type 0x{type_code:02x}")
    cls, layout = SCHEMA[type_code]
    name_of = TYPE_NAMES[type_code]
    body = memoryview(body)
    n = len(body)
    pos = 0
    values = {}

    def need(k: int, what: str) -> None:
        if pos + k > n:
            raise _perr(MALFORMED_FRAME, f"{name_of}: body too short for {what}")

    for fname, kind in layout:
        if kind == "u16":
            need(2, fname)
            values[fname] = _U16.unpack_from(body, pos)[0]
            pos += 2
        elif kind == "u32":
            need(4, fname)
            values[fname] = _U32.unpack_from(body, pos)[0]
            pos += 4
        elif kind == "str":
            need(2, fname + " length")
            k = _U16.unpack_from(body, pos)[0]
            pos += 2
            need(k, fname)
            values[fname] = bytes(body[pos:pos + k])
            pos += k
        elif kind == "list":
            need(2, fname + " count")
            count = _U16.unpack_from(body, pos)[0]
            pos += 2
            items = []
            for i in range(count):
                need(2, f"{fname}[{i}] length")
                k = _U16.unpack_from(body, pos)[0]
                pos += 2
                need(k, f"{fname}[{i}]")
                items.append(bytes(body[pos:pos + k]))
                pos += k
            values[fname] = items
        elif kind == "rest":
            values[fname] = bytes(body[pos:])
            pos = n
    if pos != n:
        raise _perr(MALFORMED_FRAME, f"{name_of}: {n - pos} trailing byte(s)")
    return cls(**values)


class Decoder:
    """Incremental frame decoder.

    ``feed(data)`` appends bytes and returns every frame completed by them (possibly none).
    Malformed input raises ``ProtocolError``; the stream is unusable after that and every
    further ``feed`` raises the same error. A length above ``max_frame_bytes`` is rejected
    as soon as the 4 length bytes are in, without waiting for the body.
    Not thread-safe; one decoder per connection direction.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 version: int = MAX_PROTOCOL_VERSION):
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be >= 1")
        self.max_frame_bytes = max_frame_bytes
        self.version = version
        self._buf = bytearray()
        self._error: Optional[ProtocolError] = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> List[Frame]:
        if self._error is not None:
            raise self._error
        self._buf += data
        out: List[Frame] = []
        buf = self._buf
        pos = 0
        try:
            while len(buf) - pos >= 4:
                length = _U32.unpack_from(buf, pos)[0]
                if length == 0:
                    raise _perr(MALFORMED_FRAME, "frame length 0")
                if length > self.max_frame_bytes:
                    raise _perr(FRAME_TOO_LARGE,
                                f"frame length {length} above limit {self.max_frame_bytes}")
                if len(buf) - pos >= 5 and not known_type(buf[pos + 4], self.version):
                    raise _perr(UNKNOWN_TYPE, f"unknown frame type 0x{buf[pos + 4]:02x}")
                if len(buf) - pos - 4 < length:
                    break
                type_code = buf[pos + 4]
                out.append(decode_body(type_code, bytes(buf[pos + 5:pos + 4 + length]),
                                       self.version))
                pos += 4 + length
        except ProtocolError as e:
            self._error = e
            raise
        finally:
            if pos:
                del buf[:pos]
        return out


def decode_all(data: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> List[Frame]:
    """Decode a complete byte string; raises if it ends inside a frame."""
    d = Decoder(max_frame_bytes)
    frames = d.feed(data)
    if d.buffered:
        raise _perr(MALFORMED_FRAME, f"{d.buffered} byte(s) of an incomplete frame at end")
    return frames


# --- vector-style dicts (proto/vectors/frames.json) ----------------------------------
def frame_to_dict(frame: Frame) -> dict:
    """Frame as in the test vectors: bytes as lowercase hex, lists as arrays of hex."""
    d = {"type": frame.type}
    for f in dc_fields(frame):
        v = getattr(frame, f.name)
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).hex()
        elif isinstance(v, list):
            v = [bytes(i).hex() for i in v]
        d[f.name] = v
    return d


def frame_from_dict(d: dict) -> Frame:
    """Inverse of ``frame_to_dict``."""
    code = TYPE_CODES[d["type"]]
    cls, layout = SCHEMA[code]
    values = {}
    for fname, kind in layout:
        v = d[fname]
        if kind in ("str", "rest"):
            v = bytes.fromhex(v)
        elif kind == "list":
            v = [bytes.fromhex(i) for i in v]
        values[fname] = v
    return cls(**values)
