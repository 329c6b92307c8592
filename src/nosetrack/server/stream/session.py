"""One stream: a WebSocket's frames through its own `Tracker`, the latest frame first, each answered in JSON.

The client sends frames as binary messages (JPEG, PNG, BMP) and, when it likes, a text message
`{"timestamp": seconds, "options": {...}}` that gives the next frame's capture time and changes the tracker's
options. One thread serves the socket: it runs a frame on a model leased from the worker's pool, then takes
everything the client sent meanwhile (a newer frame replaces the one that waits, which is dropped and counted
in the next answer), and only then answers; an idle stream serves the first frame that completes. While a
frame runs, the kernel's buffers and TCP flow control hold the client back, so nothing queues in memory: at
most one frame waits, beside the one that runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from wsproto.frame_protocol import CloseReason

from ...answer import tracked_answer
from ...images import ImageError
from ...logs import LOGGER_NAME
from ...pool import ModelPool, Overloaded
from ...tracking import Tracker
from ..errors import image_status
from ..inference import track_encoded
from ..state import ServerState
from .websocket import Binary, Closed, Incoming, SendTimeout, Text, TooLarge, WebSocket

logger = logging.getLogger(LOGGER_NAME)

# How often a waiting session looks up from its socket to see whether the worker is shutting down.
SHUTDOWN_POLL_SECONDS = 0.25
# A drain stops after this many reads (256 kB each at most) though the client keeps sending: a frame runs.
MAX_DRAIN_READS = 32
MESSAGE_FIELDS = ("timestamp", "options")
# Close codes beyond RFC 6455's: 4000 + the HTTP status, as many WebSocket APIs do.
CLOSE_IDLE = 4408


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Frame:
    """A frame waiting to be served: its bytes, its number in the stream, and when it was taken."""

    data: bytes
    number: int
    received_at: float
    timestamp: float | None


@dataclass
class Tally:
    """What the session did, for its log line."""

    frames: int = 0
    answered: int = 0
    dropped: int = 0
    errors: int = 0


class StreamSession:
    """Serves one open WebSocket until the client leaves, idles, stops reading, or the worker stops."""

    def __init__(self, state: ServerState, pool: ModelPool, websocket: WebSocket, request_id: str) -> None:
        """`pool`: the model the stream chose (`?model=`), whose instances its frames lease."""
        self._state = state
        self._pool = pool
        self._settings = state.settings
        self._socket = websocket
        self._request_id = request_id
        self._tracker = Tracker()
        self._opened_at = time.monotonic()
        self._last_frame_at = self._opened_at
        self._waiting: Frame | None = None
        self._next_timestamp: float | None = None
        self._last_timestamp = -math.inf
        self._dropped_since_answer = 0
        self._unread: list[Incoming] = []
        self.tally = Tally()

    def serve(self) -> Closed:
        """Run the stream; the close code and reason it ended with."""
        try:
            while self._socket.open and not self._state.closing.is_set():
                if self._waiting is None and not self._wait_for_frame():
                    break
                frame, self._waiting = self._waiting, None
                reply = self._reply(frame)
                self._drain()  # before answering: the client cannot yet have sent what the answer frees
                self._send(reply)
            if self._socket.open:
                self._close_for_cause()
        except SendTimeout as error:
            logger.warning("WS /v1/track: %s Closing. request_id=%s", error, self._request_id)
            self._socket.abort()
            return Closed(CloseReason.ABNORMAL_CLOSURE, str(error))
        return self._socket.closed or Closed(CloseReason.ABNORMAL_CLOSURE, "")

    def _close_for_cause(self) -> None:
        if self._state.closing.is_set():
            self._socket.close(CloseReason.GOING_AWAY, "The server is shutting down.")
            return
        idle = self._settings.stream_idle_timeout
        self._send(self._error(408, "idle_timeout", f"No frame came for {idle:g} s; closing the stream."))
        self._socket.close(CLOSE_IDLE, f"idle for {idle:g} s")

    def _wait_for_frame(self) -> bool:
        """Read until a frame completes; False when the stream idled out, closed, or the worker is stopping.

        An idle server serves the first frame that completes: what came behind it in the same read waits
        for the next drain, as if it had come while that frame ran. So a client with two frames in flight
        (one running, one waiting) never has one dropped.
        """
        while self._socket.open and not self._state.closing.is_set():
            left = self._last_frame_at + self._settings.stream_idle_timeout - time.monotonic()
            if left <= 0:
                return False
            messages = self._socket.read(min(left, SHUTDOWN_POLL_SECONDS)) or []
            for position, message in enumerate(messages):
                self._take(message)
                if self._waiting is not None:
                    self._unread = messages[position + 1 :]
                    return True
        return False

    def _drain(self) -> None:
        """Take everything the client has sent meanwhile, without waiting (a newer frame replaces the one
        that waits)."""
        unread, self._unread = self._unread, []
        for message in unread:
            self._take(message)
        for _ in range(MAX_DRAIN_READS):
            messages = self._socket.read(0) if self._socket.open else None
            if messages is None:
                return
            for message in messages:
                self._take(message)

    def _take(self, message: Incoming) -> None:
        if isinstance(message, Binary):
            self._take_frame(message)
        elif isinstance(message, Text):
            self._take_text(message.data)
        elif isinstance(message, TooLarge):
            number = self._count_frame() if message.kind == "binary" else None
            what = "frame" if message.kind == "binary" else "text message"
            self._send(
                self._error(
                    413,
                    "request_entity_too_large",
                    f"The {what} is over the server's limit of {message.limit} bytes.",
                    number,
                )
            )

    def _count_frame(self) -> int:
        self.tally.frames += 1
        self._last_frame_at = time.monotonic()
        return self.tally.frames - 1

    def _take_frame(self, message: Binary) -> None:
        number = self._count_frame()
        if self._waiting is not None:  # latest frame wins: the one that waited is never served
            self._dropped_since_answer += 1
            self.tally.dropped += 1
            self._state.metrics.stream_frames_dropped.inc()
        self._waiting = Frame(message.data, number, message.received_at, self._next_timestamp)
        self._next_timestamp = None

    def _take_text(self, text: str) -> None:
        """A control message: the next frame's timestamp and the tracker's options, or an error back."""
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            self._send(
                self._error(400, "invalid_json", 'A text message is a JSON object: {"timestamp": 1.5}.')
            )
            return
        unknown = sorted(set(document) - set(MESSAGE_FIELDS))
        if unknown:
            self._send(
                self._error(
                    400,
                    "invalid_message",
                    f"Unknown field {unknown[0]!r}: a text message may carry {' and '.join(MESSAGE_FIELDS)}.",
                )
            )
            return
        if "options" in document:
            self._take_options(document["options"])
        if "timestamp" in document:
            timestamp = document["timestamp"]
            if not _is_number(timestamp):
                self._send(self._error(400, "invalid_timestamp", '"timestamp" must be a number of seconds.'))
            else:
                self._next_timestamp = float(timestamp)

    def _take_options(self, changes: Any) -> None:
        if not isinstance(changes, dict):
            self._send(self._error(400, "invalid_options", '"options" must be an object: {"beta": 0.1}.'))
            return
        try:
            self._tracker.options = self._tracker.options.with_changes(changes)
        except ValueError as error:
            self._send(self._error(400, "invalid_options", str(error)))
            return
        self._send({"options": dataclasses.asdict(self._tracker.options)})

    def _reply(self, frame: Frame) -> dict[str, Any]:
        """The frame's answer, or its error; either way counted as answered."""
        timestamp = frame.timestamp if frame.timestamp is not None else frame.received_at - self._opened_at
        if timestamp < self._last_timestamp:
            return self._frame_error(
                frame,
                400,
                "invalid_timestamp",
                f"The timestamp {timestamp:g} s is before the previous frame's ({self._last_timestamp:g} s). "
                "Send a timestamp with every frame, or with none (the server then uses its receive time).",
            )
        try:
            tracked = track_encoded(self._state, self._pool, self._tracker, frame.data, timestamp)
        except ImageError as error:
            return self._frame_error(frame, image_status(error), error.code, str(error))
        except Overloaded as error:
            return self._frame_error(frame, 503, "overloaded", f"{error} The next frame may fare better.")
        self._last_timestamp = timestamp
        latency = time.monotonic() - frame.received_at
        self._state.metrics.observe_frame(latency)
        self.tally.answered += 1
        answer = {
            **tracked_answer(tracked.frame),
            "frame": frame.number,
            "dropped": self._dropped_since_answer,
            "model": {"name": self._pool.info.name, "version": self._pool.info.version},
            "latency_ms": latency * 1000.0,
        }
        self._dropped_since_answer = 0
        return answer

    def _frame_error(self, frame: Frame, status: int, code: str, message: str) -> dict[str, Any]:
        self._state.metrics.observe_frame(time.monotonic() - frame.received_at, code)
        error = self._error(status, code, message, frame.number)
        error["dropped"] = self._dropped_since_answer
        self._dropped_since_answer = 0
        return error

    def _error(self, status: int, code: str, message: str, number: int | None = None) -> dict[str, Any]:
        """The HTTP routes' error shape, with the status an HTTP answer would have had, and the frame's
        number when the error is about a frame."""
        self.tally.errors += 1
        error: dict[str, Any] = {"code": code, "message": message, "status": status}
        error["request_id"] = self._request_id
        if number is not None:
            error["frame"] = number
        return {"error": error}

    def _send(self, body: dict[str, Any]) -> None:
        if self._socket.open:
            self._socket.send_text(json.dumps(body))
