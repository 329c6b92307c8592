"""A request's body, read whole before any thread sees it, within the body limit and the worker's budget.

The server (uvicorn) reads the socket and hands the body over in pieces; it stops reading a connection while
its piece waits, so a slow client costs a socket and the bytes it sent. Those bytes add up across
connections: the worker's `BodyBudget` caps what all bodies being received may hold at once, and a body that
does not fit is refused with 503 at once (its declared length is reserved before a byte is read). The
deadline is the protocol's (http_protocol.py): a request not whole in time is answered 408 there, and its
reader here gets `ClientGone`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from .errors import ApiError, body_over_limit

RETRY_AFTER_SECONDS = "1"


class ClientGone(Exception):
    """The client left (or its request timed out) before its body was whole: nobody to answer."""


class BodyBudget:
    """Bytes that the bodies being received in one worker may hold together. One event loop reads every
    body, so no lock is needed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @contextmanager
    def reserve(self) -> Iterator[Callable[[int], None]]:
        """A reservation that grows to what the body needs (`grow(total)`), released when the block ends."""
        reserved = 0

        def grow(total: int) -> None:
            nonlocal reserved
            if total <= reserved:
                return
            if self.held + total - reserved > self.limit:
                raise ApiError(
                    503,
                    "overloaded",
                    f"This worker is receiving {self.held} bytes of other requests' bodies, and this one's "
                    f"{total} would pass its budget of {self.limit} (--max-buffered-bytes). Retry shortly.",
                    {"Retry-After": RETRY_AFTER_SECONDS},
                )
            self.held += total - reserved
            reserved = total

        try:
            yield grow
        finally:
            self.held -= reserved


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length the client declared (the HTTP parser has already refused a malformed one)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


def too_large(size: int | None, limit: int) -> ApiError:
    """`size`: the declared length, None for a chunked body found over the limit as it came."""
    return ApiError(413, "request_entity_too_large", body_over_limit(size, limit))


async def read_body(
    headers: list[tuple[bytes, bytes]], receive: Callable[[], Awaitable[dict]], limit: int, grow
) -> bytes:
    """The whole body: 413 as soon as it is known to pass `limit` (from its Content-Length, or as chunks
    arrive), 503 when the worker's budget cannot hold it (`grow` from `BodyBudget.reserve`)."""
    length = declared_length(headers)
    if length is not None:
        if length > limit:
            raise too_large(length, limit)
        grow(length)
    pieces: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        piece = message.get("body", b"")
        if piece:
            size += len(piece)
            if size > limit:
                raise too_large(None, limit)
            grow(size)
            pieces.append(piece)
        if not message.get("more_body", False):
            break
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
