"""One accepted WebSocket as the stream sees it: whole messages in, JSON out, every send bounded in time.

The server (uvicorn, with the `websockets` library's framing) stops reading a connection while the message it
read waits for `receive`, so a stream that does not read costs one message, not a queue; and a send waits
while the client's buffers are full, so `send_json` gives up after `send_timeout` instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    """A whole text message."""

    data: str


@dataclass(frozen=True)
class Binary:
    """A whole binary message, and when it arrived (time.monotonic())."""

    data: bytes
    received_at: float


@dataclass(frozen=True)
class Closed:
    """The connection ended: the client's close (its code), or ours."""

    code: int
    reason: str


Incoming = Text | Binary | Closed


class SendTimeout(ConnectionError):
    """The client stopped reading: an answer could not be written within the send timeout."""


class Channel:
    def __init__(
        self,
        receive: Callable[[], Awaitable[dict]],
        send: Callable[[dict], Awaitable[None]],
        send_timeout: float,
    ) -> None:
        self._receive = receive
        self._send = send
        self._send_timeout = send_timeout
        self.closed: Closed | None = None

    @property
    def open(self) -> bool:
        return self.closed is None

    async def receive(self) -> Incoming:
        if self.closed:
            return self.closed
        message = await self._receive()
        if message["type"] == "websocket.receive":
            if message.get("bytes") is not None:
                return Binary(message["bytes"], time.monotonic())
            return Text(message.get("text") or "")
        self.closed = Closed(int(message.get("code", 1005)), message.get("reason") or "")
        return self.closed

    async def send_json(self, document: dict) -> None:
        """Send one text message; `SendTimeout` when the client does not take it in time."""
        if self.closed:
            return
        try:
            await asyncio.wait_for(
                self._send({"type": "websocket.send", "text": json.dumps(document)}), self._send_timeout
            )
        except TimeoutError:
            self.closed = Closed(1006, "send timeout")
            raise SendTimeout(f"The client took no data for {self._send_timeout:g} s.") from None
        except (OSError, RuntimeError):  # uvicorn's ClientDisconnected is an OSError
            self.closed = self.closed or Closed(1006, "")

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = Closed(code, reason)
        message = {"type": "websocket.close", "code": code, "reason": reason}
        # The client gone or not reading: nothing more to tell it.
        with contextlib.suppress(TimeoutError, OSError, RuntimeError):
            await asyncio.wait_for(self._send(message), self._send_timeout)
