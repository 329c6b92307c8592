"""A Python client for a nosetrack server: the engine of `nosetrack predict` and `nosetrack track --url`."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from .images import IMAGE_SUFFIXES, sniff_image_type

# A frame for `Client.track`: encoded bytes or BGR pixels, alone or with its capture time in seconds.
StreamFrame = bytes | np.ndarray | tuple[bytes | np.ndarray, float]
STREAM_JPEG_QUALITY = 90


class ServerError(RuntimeError):
    """The server answered with an error; `status` and `code` come from its JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass
class Outcome:
    """The answer for one file: `result` on success, `error` otherwise."""

    path: Path
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ImageRequest:
    """One encoded image as a route wants it: a JSON document, a multipart file, or the raw body."""

    json: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes]] | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None


def image_request(data: bytes, route: str) -> ImageRequest:
    """How `route` takes an image: /image-64 base64 in JSON, /image-bin a form, /v1/nose the bytes."""
    if route == "/image-64":
        return ImageRequest(json={"image": base64.b64encode(data).decode("ascii")})
    if route == "/image-bin":
        return ImageRequest(files={"image": ("image", data)})
    content_type = sniff_image_type(data) or "application/octet-stream"
    return ImageRequest(body=data, headers={"Content-Type": content_type})


def base_url(url: str) -> str:
    """The server's address without a trailing slash; http:// is added when no scheme is given."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def answer_of(response: Any) -> dict[str, Any]:
    """The JSON answer of a requests or httpx response; ServerError when it is an error."""
    try:
        body = response.json()
    except ValueError:
        raise ServerError(response.status_code, "not_json", response.text[:200]) from None
    if response.status_code != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise ServerError(response.status_code, error.get("code", "error"), error.get("message", str(body)))
    return body


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files given directly, plus every image file under the folders given, sorted per folder."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            found.append(path)
    return found


class Client:
    """Talks to one server. Thread-safe: one connection pool, shared by `predict_many`'s threads.

    >>> client = Client("http://127.0.0.1:5000")
    >>> client.predict("face.jpg")["x"]
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:5000",
        timeout: float = 30.0,
        api_key: str | None = None,
        ca_file: str | Path | None = None,
    ):
        """`ca_file`: the certificate authority (PEM) that signed an https:// server's certificate, when it
        is not one the system trusts (a self-signed certificate is its own authority)."""
        self.url = base_url(url)
        self.timeout = timeout
        self._api_key = api_key
        self._ca_file = str(ca_file) if ca_file else None
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    def predict_bytes(self, data: bytes, route: str = "/v1/nose") -> dict[str, Any]:
        """The server's answer for one encoded image, sent the way `route` expects it."""
        sent = image_request(data, route)
        response = self._session.post(
            self.url + route,
            json=sent.json,
            files=sent.files,
            data=sent.body,
            headers=sent.headers,
            **self._request_options(),
        )
        return answer_of(response)

    def _request_options(self) -> dict[str, Any]:
        # Per request: a session's own `verify` loses to REQUESTS_CA_BUNDLE when that is set.
        return {"timeout": self.timeout, "verify": self._ca_file or True}

    def predict(self, path: str | Path, route: str = "/v1/nose") -> dict[str, Any]:
        return self.predict_bytes(Path(path).read_bytes(), route)

    def predict_many(
        self, paths: Iterable[str | Path], concurrency: int = 8, route: str = "/v1/nose"
    ) -> Iterator[Outcome]:
        """Answers for many files, `concurrency` requests in flight, yielded in the order given."""

        def one(path: Path) -> Outcome:
            try:
                return Outcome(path, result=self.predict(path, route))
            except (OSError, requests.RequestException, ServerError) as error:
                return Outcome(path, error=str(error))

        executor = ThreadPoolExecutor(max_workers=concurrency)
        try:
            yield from executor.map(one, map(Path, paths))
        finally:  # a reader that stops early (`predict ... | head`) must not wait for every other file
            executor.shutdown(cancel_futures=True)

    def version(self) -> dict[str, Any]:
        response = self._session.get(self.url + "/version", **self._request_options())
        response.raise_for_status()
        return response.json()

    def track(
        self, frames: Iterable[StreamFrame] | Any, options: dict[str, Any] | None = None, in_flight: int = 2
    ) -> Iterator[dict[str, Any]]:
        """Track a stream of frames over a WebSocket (WS /v1/track): each frame's answer, in order.

        `frames` is an OpenCV `cv2.VideoCapture` (a file's frames carry the file's own timestamps, a camera's
        the clock's when each is read), or an iterable of frames: encoded image bytes or BGR pixels (sent as
        JPEG), or (frame, timestamp) pairs with their capture time in seconds; a frame without one is stamped
        with this client's clock when it is taken from `frames`. `options`
        changes the tracker's (see `nosetrack.TrackerOptions`). At most `in_flight` frames are sent ahead of
        their answers: two keep the server busy without ever making it drop a frame for a newer one, so
        every frame is answered; a frame the server could not use is answered with {"error": ..., "frame"}.

        When the server goes away (a worker or replica stopping: 1001, 1012) or the connection is lost (1006),
        the stream resumes on a new connection: the frames still unanswered are sent again, answers keep their
        numbers, and from then on each carries `"resumed"` (how many times the stream resumed; the tracker
        starts afresh, so face ids may restart). `ServerError` when the server refuses the stream or its
        options, ends it for a cause (4xx statuses for its close codes 4xxx: 408 when the stream went idle),
        or cannot be reached again within `RESUME_ATTEMPTS` tries.
        """
        from websockets.exceptions import ConnectionClosed

        ledger = StreamLedger()
        frames = timed_frames(frames)
        while True:
            websocket = self._open_stream(options, attempts=RESUME_ATTEMPTS if ledger.resumes else 1)
            try:
                with websocket:
                    yield from self._exchange(websocket, frames, in_flight, ledger)
                return
            except ConnectionClosed as closed:
                if not ledger.may_resume(closed):
                    raise _closed_early(closed) from None

    def _open_stream(self, options: dict[str, Any] | None, attempts: int = 1):
        """A WebSocket to WS /v1/track with `options` set; `ServerError` when either is refused (after
        `attempts` tries a short while apart, when resuming)."""
        from websockets.exceptions import InvalidHandshake
        from websockets.sync.client import connect

        for attempt in range(attempts):
            try:
                websocket = connect(
                    websocket_url(self.url, "/v1/track"),
                    **stream_settings(self._api_key, self.url, self._ca_file),
                    open_timeout=self.timeout,
                    legacy=True,  # the connection itself, closed by its caller (websockets 17.1 warns else)
                )
                break
            except (InvalidHandshake, OSError) as refused:
                if isinstance(refused, ssl.SSLError):
                    raise  # a certificate not trusted: no later try will fare better
                if attempt + 1 == attempts:
                    raise _refusal(refused) from None
                time.sleep(resume_pause(attempt))
        if options:
            websocket.send(json.dumps({"options": options}))
            try:
                _raise_for_error(json.loads(websocket.recv(timeout=self.timeout)))
            except ServerError:
                websocket.close()
                raise
        return websocket

    def _exchange(
        self, websocket, frames: Iterator[StreamFrame], in_flight: int, ledger: StreamLedger
    ) -> Iterator[dict[str, Any]]:
        """Send the frames a resumed stream still owes, then `frames`, at most `in_flight` ahead of their
        answers; yield the answers as they come."""
        resend = deque(ledger.start_connection())  # owed by the last connection, sent again in order
        while resend:
            while ledger.unanswered - len(resend) >= in_flight:
                yield self._next_answer(websocket, ledger)
            data, timestamp = resend.popleft()
            self._send_frame(websocket, data, timestamp)
        for frame in frames:
            data, timestamp = _frame_bytes(frame)
            ledger.sent(data, timestamp)  # owed from now on: a connection lost before it went sends it again
            while ledger.unanswered - 1 >= in_flight:
                yield self._next_answer(websocket, ledger)
            self._send_frame(websocket, data, timestamp)
        while ledger.unanswered:
            yield self._next_answer(websocket, ledger)

    def _send_frame(self, websocket, data: bytes, timestamp: float | None) -> None:
        if timestamp is not None:
            websocket.send(json.dumps({"timestamp": timestamp}))
        websocket.send(data)

    def _next_answer(self, websocket, ledger: StreamLedger) -> dict[str, Any]:
        """The next frame's answer (or its error); a message about anything else than a frame raises."""
        return ledger.answered(stream_answer(json.loads(websocket.recv(timeout=self.timeout))))


# A stream that the server ends this way resumes on a new connection: going away (a stopping worker or a
# drained replica), restarting, or the connection lost.
RESUMABLE_CLOSE_CODES = frozenset({1001, 1006, 1012})
RESUME_ATTEMPTS = 8


def resume_pause(attempt: int) -> float:
    """Seconds between tries to reach the server again: 0.2, 0.4, 0.8... (3 s at most; 15 s in all)."""
    return min(3.0, 0.2 * 2**attempt)


class StreamLedger:
    """A tracking client's account of one stream across its connections: the frames sent and not yet
    answered (to send again on a new connection), and the numbers that make the answers read as one stream
    (the server numbers each connection's frames from 0). Shared by `Client` and `AsyncClient`."""

    def __init__(self) -> None:
        self._pending: deque[tuple[int, bytes, float | None]] = deque()
        self._next_number = 0
        self._first_on_connection = 0
        self._answered_on_connection = False
        self.resumes = 0

    @property
    def unanswered(self) -> int:
        return len(self._pending)

    def start_connection(self) -> list[tuple[bytes, float | None]]:
        """A new connection begins: the frames it must carry first (those the last one left unanswered)."""
        self._first_on_connection = self._pending[0][0] if self._pending else self._next_number
        self._answered_on_connection = False
        return [(data, timestamp) for _, data, timestamp in self._pending]

    def sent(self, data: bytes, timestamp: float | None) -> None:
        self._pending.append((self._next_number, data, timestamp))
        self._next_number += 1

    def answered(self, answer: dict[str, Any]) -> dict[str, Any]:
        """`answer` with the stream's own frame number; it and every frame before it (dropped for a newer
        one) are no longer owed."""
        answer["frame"] += self._first_on_connection
        while self._pending and self._pending[0][0] <= answer["frame"]:
            self._pending.popleft()
        if self.resumes:
            answer["resumed"] = self.resumes
        self._answered_on_connection = True
        return answer

    def may_resume(self, closed: Any) -> bool:
        """Whether a stream ended with `closed` (websockets' ConnectionClosed) goes on over a new connection:
        the server went away or the connection was lost, and the last connection carried at least one answer
        (a server that closes every connection at once is not retried for ever)."""
        code = closed.rcvd.code if closed.rcvd else 1006
        if code not in RESUMABLE_CLOSE_CODES or not (self._answered_on_connection or self.resumes == 0):
            return False
        self.resumes += 1
        return True


def websocket_url(url: str, route: str) -> str:
    scheme, _, rest = url.partition("://")
    return {"http": "ws", "https": "wss"}.get(scheme, scheme) + "://" + rest + route


def ssl_context(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    if not url.startswith("https://"):
        return None
    return ssl.create_default_context(cafile=ca_file)


def stream_settings(api_key: str | None, url: str, ca_file: str | None) -> dict[str, Any]:
    """How both clients open WS /v1/track (websockets' sync and asyncio `connect` take the same)."""
    return {
        "additional_headers": {"Authorization": f"Bearer {api_key}"} if api_key else {},
        "subprotocols": ["nosetrack"],
        "compression": None,  # JPEG does not compress: deflate would only cost CPU
        "max_size": None,
        "ssl": ssl_context(url, ca_file),
    }


def stream_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A frame's answer as `track` yields it: an error about a frame carries that frame's number beside it;
    an error about anything else raises `ServerError`."""
    if "error" in answer and "frame" not in answer["error"]:
        _raise_for_error(answer)
    if "error" in answer:
        answer["frame"] = answer["error"]["frame"]
    return answer


def timed_frames(frames: Iterable[StreamFrame] | Any) -> Iterator[StreamFrame]:
    """Each frame with its capture time: an OpenCV capture's own (`video.capture_frames`), a pair's own, or
    for a bare frame this client's clock when it is taken (seconds from the first frame)."""
    import cv2

    if isinstance(frames, cv2.VideoCapture):
        from .video import capture_frames

        yield from capture_frames(frames)
        return
    started = None
    for frame in frames:
        if isinstance(frame, tuple):
            yield frame
            continue
        now = time.monotonic()
        started = now if started is None else started
        yield frame, now - started


def _frame_bytes(frame: StreamFrame) -> tuple[bytes, float | None]:
    """The bytes to send for one frame of `Client.track`, and its timestamp if it came with one."""
    image, timestamp = frame if isinstance(frame, tuple) else (frame, None)
    if isinstance(image, np.ndarray):
        import cv2

        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, STREAM_JPEG_QUALITY])
        if not ok:
            raise ValueError(f"Frames must be BGR images; this one has shape {image.shape}.")
        image = encoded.tobytes()
    return image, timestamp


def _raise_for_error(message: dict[str, Any]) -> None:
    if "error" in message:
        error = message["error"]
        raise ServerError(error.get("status", 400), error.get("code", "error"), error.get("message", ""))


def _closed_early(closed: Any) -> ServerError:
    """The server closed the stream before every frame was answered: 4xxx codes carry an HTTP status
    (4408: idle), 1001 and 1013 are the server going away or busy."""
    code = closed.rcvd.code if closed.rcvd else 1006
    status = code - 4000 if 4000 <= code < 5000 else 503 if code in (1001, 1013) else 502
    reason = closed.rcvd.reason if closed.rcvd else "the connection was lost"
    return ServerError(status, "stream_closed", f"The server closed the stream ({code}): {reason}")


def _refusal(refused: Any) -> ServerError:
    """The server's JSON error from a refused WebSocket handshake (401, 403, 503...), or the reason none
    came."""
    response = getattr(refused, "response", None)
    if response is None:
        return ServerError(503, "unreachable", f"The server could not be reached: {refused}")
    try:
        error = json.loads(response.body or b"{}").get("error", {})
    except ValueError:
        error = {}
    return ServerError(response.status_code, error.get("code", "error"), error.get("message", str(refused)))
