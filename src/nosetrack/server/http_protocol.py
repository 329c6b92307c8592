"""What nosetrack adds to uvicorn's HTTP/1.1 protocol: deadlines and head limits, and its own error shape.

uvicorn (httptools' parser) reads every connection in the event loop, keeps connections alive, answers
pipelined requests in order, and refuses malformed HTTP with a 400. It puts no deadline on a request that
trickles in and no limit on the size of its head. Here a request must be whole within `--body-timeout` of its
first byte (408 otherwise, or the connection closes when its answer has already gone), a head may not pass
`MAX_HEAD_BYTES` (431), and every refusal is nosetrack's JSON.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ..logs import LOGGER_NAME
from .door_rules import DOOR_RULES, DoorRules
from .errors import error_json

logger = logging.getLogger(LOGGER_NAME)

MAX_HEAD_BYTES = 64 * 1024
# After a refusal, how long what the client still sends is read and dropped before the connection closes:
# closing with unread bytes makes the kernel send a reset, which can destroy the answer before it is read.
LINGER_SECONDS = 2.0
# At shutdown, a connection that has sent nothing yet is closed once it has been silent this long.
SILENT_SECONDS = 2.0
# How long a stream that is closing waits for the client's own close frame.
WEBSOCKET_CLOSE_WAIT_SECONDS = 1.0
# Close codes for what a client sent (policy, size): the connection stops being read at once.
CLIENT_AT_FAULT = frozenset({1008, 1009})
# The kernel's send buffer of a stream's socket (Linux doubles it for its bookkeeping), fixed rather than
# grown by autotuning to megabytes: answers a client has not read are bounded by it, and a client that stops
# reading reaches the send timeout within seconds.
STREAM_SEND_BUFFER_BYTES = 128 * 1024


class HeadTooLarge(Exception):
    """Raised from a parser callback; httptools reports it as a parser error, answered 431."""


def canned_answer(status: int, code: str, message: str) -> bytes:
    """A whole answer in nosetrack's error shape, for what no app sees (a head that never came whole)."""
    body = error_json(code, message)
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("latin-1") + body


HEAD_TOO_LARGE = canned_answer(
    431, "request_header_fields_too_large", f"The request's head is over {MAX_HEAD_BYTES} bytes."
)
MALFORMED = canned_answer(400, "bad_request", "The request is not valid HTTP/1.1.")
TIMED_OUT = canned_answer(
    408, "request_timeout", "The request did not arrive whole in time (--body-timeout)."
)


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline per request and a bound on its head."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._rules: DoorRules = self.app_state[DOOR_RULES]
        self.request_seconds = self._rules.request_seconds
        self._in_head = True
        self._head_fed = 0  # bytes fed while the head was incomplete (all of them head)
        self._head_parsed = 0  # the parsed head's size (request line and headers)
        self._head_too_large = False
        self._stopping = False
        self._lingering = False
        self._made_at = self.loop.time()
        # A connection that never sends a whole request is closed (answered 408) at its deadline.
        self._deadline = self.loop.call_later(self.request_seconds, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # refused already: what still comes is dropped
        counted = self._in_head
        super().data_received(data)
        if counted and self._in_head and not self.transport.is_closing():
            self._head_fed += len(data)
            if self._head_fed > MAX_HEAD_BYTES:  # a head still incomplete, already too large
                self._answer_and_close(HEAD_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(HEAD_TOO_LARGE if self._head_too_large else MALFORMED)

    def _answer_and_close(self, answer: bytes | None) -> None:
        """Send `answer` (if any), then end the connection without a reset: half-close, drop what the client
        still sends for LINGER_SECONDS, close. (TLS cannot half-close: it closes at once.)"""
        if answer is not None:
            self.transport.write(answer)
            logger.info("- - %s from %s", answer.split(b"\r\n", 1)[0][9:].decode(), self.client)
        self._deadline.cancel()
        if self._lingering or not self.transport.can_write_eof():
            self.transport.close()
            return
        self._lingering = True
        self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # Parser callbacks: the head's size, and the deadline armed from a request's first byte to its last.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_fed = self._head_parsed = 0
        if self._deadline.cancelled():
            self._deadline = self.loop.call_later(self.request_seconds, self._expire)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        if self._stopping or self._rules.stopping.is_set():  # so clients take their next request elsewhere
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._deadline.cancel()
        super().on_message_complete()

    def _expire(self) -> None:
        """The request is not whole in time: 408 if nothing was answered yet; close the connection."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answer = None
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # its app stops reading (body.ClientGone) and its answer is dropped
            cycle.message_event.set()
            if not cycle.response_started:
                answer = TIMED_OUT
        elif self._in_head and (self._head_fed or self._head_parsed):
            answer = TIMED_OUT
        self._answer_and_close(answer)

    def shutdown(self) -> None:
        """A stopping worker answers what it accepted: a connection in the middle of sending its request
        keeps it, and closes after its answer; an idle one closes now."""
        if self._in_head and (self._head_fed or self._head_parsed):
            self._stopping = True  # its head is on its way: answered, then closed (on_headers_complete)
            return
        if self.cycle is None and self.loop.time() - self._made_at < SILENT_SECONDS:
            # Accepted a moment ago (over TLS, its handshake just done): its request may be on its way.
            self._stopping = True
            self.loop.call_at(self._made_at + SILENT_SECONDS, self._close_if_silent)
            return
        super().shutdown()

    def _close_if_silent(self) -> None:
        if (
            self.cycle is None
            and not (self._head_fed or self._head_parsed)
            and not self.transport.is_closing()
        ):
            self.transport.close()


class StreamProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, with a short wait for the client's close frame, and a connection that
    is dropped (not left to flush forever) when its client stopped reading."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = WEBSOCKET_CLOSE_WAIT_SECONDS

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        # RFC 6455's 1006 for a connection lost without a close frame (uvicorn reports 1005, "no code").
        if self.handshake_complete and not self.disconnected and self.conn.close_rcvd is None:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
        super().connection_lost(exc)

    async def send(self, message) -> None:  # type: ignore[override]
        await super().send(message)
        if message["type"] == "websocket.close" and message.get("code") in CLIENT_AT_FAULT:
            # Closed for what the client sent: stop reading it now, not after the close-frame wait (a
            # flooding client's messages would be read and dropped until then).
            self.transport.close()

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if self.transport.get_write_buffer_size():  # what the stream wrote last is still unread
            self.transport.abort()
