"""One stream: a WebSocket's frames through its own `Tracker`, the latest frame first, each answered in JSON.

The client sends frames as binary messages (JPEG, PNG, BMP) and, when it likes, a text message
`{"timestamp": seconds, "options": {...}}` that gives the next frame's capture time and changes the tracker's
options. Two tasks serve the socket on the worker's event loop: the reader takes every message as it comes
and the runner runs one frame at a time on a thread (a model leased from the worker's pool). A frame that
arrives while another runs waits; a newer one replaces it (the older is dropped and counted in the next
answer). So at most one frame waits beside the one that runs, whatever the client sends.

What a stream may cost is bounded: it may send `MAX_MESSAGES_PER_SECOND` messages (beyond, the reader
waits and TCP holds the client back); a message that is no image is refused in the loop, without a thread,
and `MAX_UNDECODABLE` of them in a row close the stream; only frames that decode keep it from idling out;
and a client that does not read its answers is dropped after the send timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from ...answer import tracked_answer
from ...images import CheckedImage, ImageError
from ...logs import LOGGER_NAME
from ...pool import ModelPool, Overloaded
from ...predictor import Tracked
from ...tracking import Tracker
from ..errors import ApiError, image_status
from ..inference import track_image
from ..metrics import STREAM_ROUTE
from ..state import ServerState
from .channel import Binary, Channel, Closed, SendTimeout, Text

logger = logging.getLogger(LOGGER_NAME)

# How often a waiting stream looks up to see whether the worker is shutting down.
SHUTDOWN_POLL_SECONDS = 0.25
MESSAGE_FIELDS = ("timestamp", "options")
MAX_TEXT_MESSAGE_CHARS = 64 * 1024
# Twice a 60 fps camera's rate, and a burst of a second's worth: a client that sends faster waits.
MAX_MESSAGES_PER_SECOND = 120.0
MESSAGE_BURST = 120.0
# Messages in a row refused (no image, no valid control message) that close the stream (1008).
MAX_UNDECODABLE = 32
# Close codes beyond RFC 6455's: 4000 + the HTTP status, as many WebSocket APIs do.
CLOSE_IDLE = 4408
GOING_AWAY, POLICY_VIOLATION, INTERNAL_ERROR = 1001, 1008, 1011


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Frame:
    """A frame waiting to be served: its checked image, its number in the stream, and when it came."""

    image: CheckedImage
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


class MessageRate:
    """A token bucket: how long the next message must wait to keep within the stream's rate."""

    def __init__(self, per_second: float, burst: float) -> None:
        self._per_second = per_second
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def wait_seconds(self) -> float:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_second)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._per_second


class StreamSession:
    """Serves one open WebSocket until the client leaves, idles, stops reading, or the worker stops."""

    def __init__(
        self, state: ServerState, pool: ModelPool, channel: Channel, request_id: str, executor: Executor
    ) -> None:
        """`pool`: the model the stream chose (`?model=`); `executor`: the threads frames run on."""
        self._state = state
        self._pool = pool
        self._settings = state.settings
        self._channel = channel
        self._request_id = request_id
        self._executor = executor
        self._tracker = Tracker()
        self._opened_at = time.monotonic()
        self._last_frame_at = self._opened_at
        self._waiting: Frame | None = None
        self._frame_came = asyncio.Event()
        # Set while the runner has a frame: an idle runner takes the first frame before the reader reads on.
        self._running = asyncio.Event()
        self._next_timestamp: float | None = None
        self._last_timestamp = -math.inf
        self._dropped_since_answer = 0
        self._refused_in_a_row = 0
        self._rate = MessageRate(MAX_MESSAGES_PER_SECOND, MESSAGE_BURST)
        self.tally = Tally()

    async def serve(self) -> Closed:
        """Run the stream until either task ends it; log how it ended."""
        reader = asyncio.create_task(self._read())
        runner = asyncio.create_task(self._run())
        try:
            done, _ = await asyncio.wait({reader, runner}, return_when=asyncio.FIRST_COMPLETED)
            if runner not in done and reader.exception() is None:
                await runner  # the client closed: the runner sees it and ends
            for task in done:
                task.result()  # what either task raised
            await self._close_for_cause()
        except SendTimeout as error:
            logger.warning("WS %s: %s Closing. request_id=%s", STREAM_ROUTE, error, self._request_id)
        except Exception:
            logger.exception("WS %s failed (request_id=%s)", STREAM_ROUTE, self._request_id)
            await self._channel.close(INTERNAL_ERROR, "The server failed; its log holds the details.")
        finally:
            self._running.set()  # a reader waiting for the runner goes on, to its cancellation
            reader.cancel()
            runner.cancel()
        closed = self._channel.closed or Closed(1006, "")
        self._log(closed)
        return closed

    # The runner ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        frame = await self._next_frame()
        while frame is not None and not self._state.stopping.is_set():
            timestamp = (
                frame.timestamp if frame.timestamp is not None else frame.received_at - self._opened_at
            )
            if timestamp < self._last_timestamp:
                outcome: Tracked | ApiError = ApiError(
                    400,
                    "invalid_timestamp",
                    f"The timestamp {timestamp:g} s is before the previous frame's "
                    f"({self._last_timestamp:g} s). Send a timestamp with every frame, or with none (the "
                    "server then uses its receive time).",
                )
            else:
                outcome = await loop.run_in_executor(self._executor, self._track, frame.image, timestamp)
                self._last_timestamp = timestamp
            answer = self._answer(frame, outcome)
            # What came while it ran is taken before the answer goes: a client that sends its next frame
            # on each answer (two in flight) then never has one replaced.
            frame = self._take_waiting()
            await self._channel.send_json(answer)
            if frame is None:
                frame = await self._next_frame()

    def _take_waiting(self) -> Frame | None:
        frame, self._waiting = self._waiting, None
        self._frame_came.clear()
        if frame is None:
            self._running.clear()
        return frame

    async def _next_frame(self) -> Frame | None:
        """The next frame to run, once one comes; None when the stream closed, idled out, or the worker is
        stopping."""
        while self._waiting is None:
            if not self._channel.open or self._state.stopping.is_set():
                return None
            left = self._last_frame_at + self._settings.stream_idle_timeout - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._frame_came.wait(), min(left, SHUTDOWN_POLL_SECONDS))
        if not self._channel.open or self._state.stopping.is_set():
            return None
        frame = self._take_waiting()
        self._running.set()
        return frame

    def _track(self, image: CheckedImage, timestamp: float) -> Tracked | ApiError:
        """On a thread: the tracked frame, or the error the client is told of."""
        try:
            return track_image(self._state, self._pool, self._tracker, image, timestamp)
        except ImageError as error:
            return ApiError(image_status(error), error.code, str(error))
        except Overloaded as error:
            return ApiError(503, "overloaded", f"{error} The next frame may fare better.")

    def _answer(self, frame: Frame, outcome: Tracked | ApiError) -> dict[str, Any]:
        """A frame's answer, or its error; either way with the frames dropped since the last answer."""
        dropped, self._dropped_since_answer = self._dropped_since_answer, 0
        latency = time.monotonic() - frame.received_at
        if isinstance(outcome, ApiError):
            self._state.metrics.observe_frame(latency, outcome.code)
            error = self._error(outcome.status, outcome.code, outcome.message, frame.number)
            error["dropped"] = dropped
            return error
        self._state.metrics.observe_frame(latency)
        self.tally.answered += 1
        return {
            **tracked_answer(outcome.frame),
            "frame": frame.number,
            "dropped": dropped,
            "model": {"name": self._pool.info.name, "version": self._pool.info.version},
            "latency_ms": latency * 1000.0,
        }

    async def _close_for_cause(self) -> None:
        if not self._channel.open:
            return
        if self._state.stopping.is_set():
            await self._channel.close(GOING_AWAY, "The server is shutting down.")
            return
        idle = self._settings.stream_idle_timeout
        await self._channel.send_json(
            self._error(408, "idle_timeout", f"No frame came for {idle:g} s; closing the stream.")
        )
        await self._channel.close(CLOSE_IDLE, f"idle for {idle:g} s")

    # The reader ------------------------------------------------------------------------------------

    async def _read(self) -> None:
        while self._channel.open:
            pause = self._rate.wait_seconds()
            if pause:
                await asyncio.sleep(pause)
            message = await self._channel.receive()
            if isinstance(message, Binary):
                await self._take_frame(message)
            elif isinstance(message, Text):
                await self._take_text(message.data)
            else:
                self._frame_came.set()  # closed: wake the runner
            if self._refused_in_a_row >= MAX_UNDECODABLE:
                await self._channel.close(
                    POLICY_VIOLATION, f"{MAX_UNDECODABLE} messages in a row were refused"
                )
                self._frame_came.set()

    def _count_frame(self) -> int:
        self.tally.frames += 1
        return self.tally.frames - 1

    async def _take_frame(self, message: Binary) -> None:
        number = self._count_frame()
        if len(message.data) > self._settings.max_body_bytes:
            limit = self._settings.max_body_bytes
            await self._refuse_frame(
                413, "request_entity_too_large", f"The frame is over {limit} bytes.", number
            )
            return
        try:
            image = CheckedImage.check(message.data, self._settings.max_image_pixels)
        except ImageError as error:
            await self._refuse_frame(image_status(error), error.code, str(error), number)
            return
        self._refused_in_a_row = 0
        self._last_frame_at = time.monotonic()
        if self._waiting is not None:  # latest frame wins: the one that waited is never served
            self._dropped_since_answer += 1
            self.tally.dropped += 1
            self._state.metrics.stream_frames_dropped.inc()
        self._waiting = Frame(image, number, message.received_at, self._next_timestamp)
        self._next_timestamp = None
        self._frame_came.set()
        if not self._running.is_set():  # an idle stream serves the first frame that completes
            await self._running.wait()

    async def _refuse_frame(self, status: int, code: str, message: str, number: int) -> None:
        self._refused_in_a_row += 1
        self._state.metrics.observe_frame(0.0, code)
        await self._channel.send_json(self._error(status, code, message, number))

    async def _take_text(self, text: str) -> None:
        """A control message: the next frame's timestamp and the tracker's options, or an error back."""
        if len(text) > MAX_TEXT_MESSAGE_CHARS:
            limit = MAX_TEXT_MESSAGE_CHARS
            await self._send_error(
                413, "request_entity_too_large", f"The text message is over {limit} characters."
            )
            return
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            await self._send_error(
                400, "invalid_json", 'A text message is a JSON object: {"timestamp": 1.5}.'
            )
            return
        unknown = sorted(set(document) - set(MESSAGE_FIELDS))
        if unknown:
            fields = " and ".join(MESSAGE_FIELDS)
            await self._send_error(
                400, "invalid_message", f"Unknown field {unknown[0]!r}: a text message may carry {fields}."
            )
            return
        if "options" in document:
            await self._take_options(document["options"])
        if "timestamp" in document:
            timestamp = document["timestamp"]
            if not _is_number(timestamp):
                await self._send_error(400, "invalid_timestamp", '"timestamp" must be a number of seconds.')
                return
            self._next_timestamp = float(timestamp)
        self._refused_in_a_row = 0

    async def _take_options(self, changes: Any) -> None:
        if not isinstance(changes, dict):
            await self._send_error(400, "invalid_options", '"options" must be an object: {"beta": 0.1}.')
            return
        try:
            self._tracker.options = self._tracker.options.with_changes(changes)
        except ValueError as error:
            await self._send_error(400, "invalid_options", str(error))
            return
        await self._channel.send_json({"options": dataclasses.asdict(self._tracker.options)})

    # Answers ---------------------------------------------------------------------------------------

    async def _send_error(self, status: int, code: str, message: str) -> None:
        """Refuse a control message; refusals in a row count toward closing the stream."""
        self._refused_in_a_row += 1
        await self._channel.send_json(self._error(status, code, message))

    def _error(self, status: int, code: str, message: str, number: int | None = None) -> dict[str, Any]:
        """The HTTP routes' error shape, with the status an HTTP answer would have had, and the frame's
        number when the error is about a frame."""
        self.tally.errors += 1
        error: dict[str, Any] = {"code": code, "message": message, "status": status}
        error["request_id"] = self._request_id
        if number is not None:
            error["frame"] = number
        return {"error": error}

    def _log(self, closed: Closed) -> None:
        tally = self.tally
        logger.info(
            "WS %s closed %d %s: %d frames, %d answered, %d dropped, %d errors, %.1f s request_id=%s",
            STREAM_ROUTE,
            closed.code,
            closed.reason or "-",
            tally.frames,
            tally.answered,
            tally.dropped,
            tally.errors,
            time.monotonic() - self._opened_at,
            self._request_id,
        )
