"""Python client for podrelay: sans-I/O codec (``protocol``), a blocking client
(``sync_client``) and an asyncio client (``aio``: ``await podrelay.connect(...)``)."""

from .protocol import (  # noqa: F401
    Decoder, ProtocolError, Frame, Hello, Pub, Sub, Unsub, Psub, Punsub, Ping,
    Welcome, Msg, Ok, Err, Pong, Goaway, encode, error_name,
)
from .sync_client import Client, ServerError, ConnectionClosed  # noqa: F401
from .aio import connect, PodrelayError, PodrelayTimeout, Client as AsyncClient  # noqa: F401

__all__ = [
    "Decoder", "ProtocolError", "Frame", "Hello", "Pub", "Sub", "Unsub", "Psub", "Punsub",
    "Ping", "Welcome", "Msg", "Ok", "Err", "Pong", "Goaway", "encode", "error_name",
    "Client", "ServerError", "ConnectionClosed",
    "connect", "PodrelayError", "PodrelayTimeout", "AsyncClient",
]
