"""Where an HTTP/1.1 request ends, found from the bytes received so far (RFC 9112, section 6).

The worker's event loop reads requests without a thread, so it must know when one is whole, and nothing
more: gunicorn's parser, run afterwards on the whole bytes, still validates them and answers a malformed
request with 400. Whatever this module cannot frame for sure (two different lengths, a transfer coding other
than chunked, a bad chunk size) therefore counts as whole at once, and is left to that parser to refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_END = b"\r\n\r\n"
# Request line and headers; nginx allows 32 KiB by default. A longer head is answered 431 by the worker.
MAX_HEAD_BYTES = 64 * 1024
# A chunk-size line (hex digits and extensions) longer than this is not one gunicorn would accept.
MAX_CHUNK_LINE = 4096


@dataclass(frozen=True)
class Head:
    """What the request line and headers say about the rest of the request."""

    end: int  # bytes up to and including the blank line
    content_length: int | None
    chunked: bool
    expects_continue: bool
    websocket: bool
    unframed: bool  # the length cannot be known for sure: whole at once, for the parser to refuse


def parse_head(data: bytes, end: int) -> Head:
    """The framing facts of the head that ends at `end` (just past its blank line)."""
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    expects_continue = upgrade_websocket = connection_upgrade = False
    for line in data[: end - 4].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.lower(), value.strip().lower()
        if name == b"content-length":
            lengths.add(value)
        elif name == b"transfer-encoding":
            codings += [coding.strip() for coding in value.split(b",")]
        elif name == b"expect":
            expects_continue = value == b"100-continue"
        elif name == b"upgrade":
            upgrade_websocket = b"websocket" in value
        elif name == b"connection":
            connection_upgrade = b"upgrade" in [token.strip() for token in value.split(b",")]
    chunked = bool(codings) and codings[-1] == b"chunked"
    length = next(iter(lengths)) if len(lengths) == 1 else None
    unframed = (
        len(lengths) > 1
        or (length is not None and not length.isdigit())
        or (bool(codings) and (not chunked or bool(lengths)))  # RFC 9112 6.3: never both
    )
    return Head(
        end=end,
        content_length=None if unframed or length is None else int(length),
        chunked=chunked and not unframed,
        expects_continue=expects_continue,
        websocket=upgrade_websocket and connection_upgrade,
        unframed=unframed,
    )


class IncomingRequest:
    """The bytes of one request as they arrive, and whether they are whole yet.

    A body longer than `max_body_bytes` counts as whole once that much has come (or at once, when its
    Content-Length says so): the app then refuses it with 413 without the server holding the rest.
    """

    def __init__(self, max_body_bytes: int) -> None:
        self.data = bytearray()
        self.head: Head | None = None
        self.whole = False
        self.head_too_large = False
        self._max_body_bytes = max_body_bytes
        self._scan_from = 0  # where to look for the head's end, or the next chunk-size line
        self._end: int | None = None  # the request's length, once the head gives it
        self._chunked_bytes = 0
        self._leading = 0  # empty lines before the request line

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if self.head is None and not self._read_head():
            return
        if self._end is not None:
            self.whole = len(self.data) >= self._end
        else:
            self._scan_chunks()

    def _read_head(self) -> bool:
        data = self.data
        start = self._scan_from
        if start <= self._leading:  # empty lines before the request line are allowed
            while data.startswith(b"\r\n", start):
                start += 2
            self._leading = start
        end = data.find(HEADER_END, start)
        if end < 0:
            self._scan_from = max(start, len(data) - 3)
            self.head_too_large = len(data) > MAX_HEAD_BYTES
            return False
        head = self.head = parse_head(bytes(data[: end + 4]), end + 4)
        self._scan_from = head.end
        if head.unframed or (head.content_length is None and not head.chunked):
            self._end = head.end  # no body (or the parser's to refuse)
        elif head.content_length is not None:
            too_long = head.content_length > self._max_body_bytes  # refused from its Content-Length alone
            self._end = head.end + (0 if too_long else head.content_length)
        return True

    def _scan_chunks(self) -> None:
        """Walk the chunk-size lines; whole after the last chunk and its trailers."""
        data, position = self.data, self._scan_from
        while True:
            line_end = data.find(b"\r\n", position)
            if line_end < 0:
                self.whole = len(data) - position > MAX_CHUNK_LINE
                break
            size_text = bytes(data[position:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16) if size_text.isalnum() else -1
            except ValueError:
                size = -1
            if size < 0:
                self.whole = True  # a bad chunk size: the parser answers it
                break
            if size == 0:
                self.whole = data.startswith(b"\r\n", line_end + 2) or data.find(HEADER_END, line_end) >= 0
                break
            next_position = line_end + 2 + size + 2
            if len(data) < next_position:
                self.whole = self._chunked_bytes + len(data) - line_end > self._max_body_bytes
                break  # (when over the body limit: enough to refuse it)
            self._chunked_bytes += size
            position = next_position
            if self._chunked_bytes > self._max_body_bytes:
                self.whole = True
                break
        self._scan_from = position
