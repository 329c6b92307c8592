"""One WebSocket on the connection the WSGI server hands over after the 101 answer: messages in and out.

wsproto (python-hyper's sans-I/O RFC 6455 framing, the engine under simple-websocket and hypercorn) parses and
frames; this module owns the socket, so that every read and write is bounded in time and every message in
size, and one thread serves one socket (no reader thread, no unbounded inbox). Why not a ready-made server
library: docs/streaming.md.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

READ_CHUNK_BYTES = 256 * 1024
# How long a closing server waits for the client's own close frame before it drops the connection.
CLOSE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class Text:
    """A whole text message."""

    data: str


@dataclass(frozen=True)
class Binary:
    """A whole binary message, and when its last byte arrived (time.monotonic())."""

    data: bytes
    received_at: float


@dataclass(frozen=True)
class TooLarge:
    """A message that grew past its limit; its bytes were dropped, and the rest of it will be."""

    kind: str  # "text" or "binary"
    limit: int


@dataclass(frozen=True)
class Closed:
    """The connection ended: the client's close frame, a protocol error, or the TCP connection lost (1006)."""

    code: int
    reason: str


Incoming = Text | Binary | TooLarge | Closed


class SendTimeout(ConnectionError):
    """The client stopped reading: an answer could not be written within the send timeout."""


class _Assembly:
    """The pieces of the message being received, or only its size once it is over its limit."""

    def __init__(self, kind: str, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        self.pieces: list[bytes] | list[str] | None = []
        self.size = 0

    def add(self, data: bytes | str) -> TooLarge | None:
        """Keep `data`; the message's one TooLarge the moment it passes its limit."""
        self.size += len(data)
        if self.pieces is None:
            return None
        if self.size > self.limit:
            self.pieces = None
            return TooLarge(self.kind, self.limit)
        self.pieces.append(data)  # type: ignore[arg-type]
        return None

    def message(self, received_at: float) -> Incoming | None:
        if self.pieces is None:
            return None
        if self.kind == "text":
            return Text("".join(self.pieces))  # type: ignore[arg-type]
        return Binary(b"".join(self.pieces), received_at)  # type: ignore[arg-type]


class WebSocket:
    """The server's side of an open WebSocket on `sock` (plain or TLS), for one thread.

    Binary messages over `max_binary_bytes` and text messages over `max_text_bytes` arrive as `TooLarge`
    and are not kept. A write that the client does not take within `send_timeout` seconds raises
    `SendTimeout`, so a client that never reads costs a bounded wait and the kernel's buffers, no more.
    No extension is negotiated: JPEG frames do not compress, and permessage-deflate would only spend CPU.
    """

    def __init__(
        self, sock: socket.socket, max_binary_bytes: int, max_text_bytes: int, send_timeout: float
    ) -> None:
        self._sock = sock
        self._connection = Connection(ConnectionType.SERVER)
        self._limits = {"binary": max_binary_bytes, "text": max_text_bytes}
        self._send_timeout = send_timeout
        self._assembly: _Assembly | None = None
        self.closed: Closed | None = None

    @property
    def open(self) -> bool:
        return self.closed is None

    def read(self, timeout: float) -> list[Incoming] | None:
        """The messages completed by the next bytes the client sent, waiting at most `timeout` seconds
        (0: only bytes already here). None when no bytes came; [] when some came but ended no message."""
        if self.closed:
            return [self.closed]
        try:
            data = self._receive(timeout)
        except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
            return None
        except OSError:
            data = b""
        received_at = time.monotonic()
        self._connection.receive_data(data or None)  # None: the TCP connection ended without a close frame
        events = self._connection.events()
        return [message for event in events for message in self._handle(event, received_at)]

    def _receive(self, timeout: float) -> bytes:
        self._sock.settimeout(timeout)
        return self._sock.recv(READ_CHUNK_BYTES)

    def _handle(self, event: object, received_at: float) -> list[Incoming]:
        if isinstance(event, Message):
            return self._assemble(event, received_at)
        if isinstance(event, Ping):
            self._send(self._connection.send(event.response()))
            return []
        if isinstance(event, CloseConnection):
            if self._connection.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                # The client's close frame is answered with its own code; a protocol error is closed with
                # the error's code (wsproto reports both as a CloseConnection).
                self._send_quietly(self._connection.send(CloseConnection(event.code, event.reason)))
            self.closed = Closed(int(event.code), event.reason or "")
            return [self.closed]
        return []  # Pong: we send no pings

    def _assemble(self, event: Message, received_at: float) -> list[Incoming]:
        if self._assembly is None:
            kind = "text" if isinstance(event, TextMessage) else "binary"
            self._assembly = _Assembly(kind, self._limits[kind])
        arrived: list[Incoming] = []
        too_large = self._assembly.add(event.data)
        if too_large:
            arrived.append(too_large)
        if event.message_finished:
            message = self._assembly.message(received_at)
            self._assembly = None
            if message is not None:
                arrived.append(message)
        return arrived

    def send_text(self, text: str) -> None:
        """Send one text message; `SendTimeout` when the client does not take it in time."""
        self._send(self._connection.send(TextMessage(text)))

    def _send(self, data: bytes) -> None:
        self._sock.settimeout(self._send_timeout)
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise SendTimeout(f"The client took no data for {self._send_timeout:g} s.") from None

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the client is gone or not reading: nothing more to tell it
            self._send(data)

    def close(self, code: int = CloseReason.NORMAL_CLOSURE, reason: str = "") -> None:
        """Send a close frame, give the client a moment to answer with its own, then end the connection."""
        if self._connection.state is ConnectionState.OPEN:
            self._send_quietly(self._connection.send(CloseConnection(code, reason)))
            deadline = time.monotonic() + CLOSE_WAIT_SECONDS
            while self._connection.state is ConnectionState.LOCAL_CLOSING and time.monotonic() < deadline:
                if self.read(deadline - time.monotonic()) is None:
                    break
        self.closed = self.closed or Closed(int(code), reason)
        self.abort()

    def abort(self) -> None:
        """End the TCP connection now, so the WSGI server can never take it for a new request."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
