"""`AsyncClient`: `nosetrack.Client` for asyncio code, on httpx (`pip install '.[async]'` in the clone).

The same methods, answers and `ServerError`s as `Client`; the requests are built and the answers read by the
same functions (`image_request`, `answer_of`). Failures to reach the server are httpx's (`httpx.HTTPError`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from .client import (
    RESUME_ATTEMPTS,
    Outcome,
    ServerError,
    StreamFrame,
    StreamLedger,
    _closed_early,
    _frame_bytes,
    _raise_for_error,
    _refusal,
    answer_of,
    base_url,
    image_request,
    resume_pause,
    stream_answer,
    stream_settings,
    timed_frames,
    websocket_url,
)

try:
    import httpx
except ImportError as missing:  # an extra, so that the base install stays as it was
    raise ImportError("AsyncClient needs httpx: pip install '.[async]' in nosetrack's clone") from missing


class AsyncClient:
    """Talks to one server from asyncio code; one connection pool, shared by concurrent calls.

    >>> async with AsyncClient("http://127.0.0.1:5000") as client:
    ...     answer = await client.predict("face.jpg")
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:5000",
        timeout: float = 30.0,
        api_key: str | None = None,
        ca_file: str | None = None,
    ):
        self.url = base_url(url)
        self.timeout = timeout
        self._api_key, self._ca_file = api_key, ca_file
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=64),
            verify=ca_file or True,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def predict_bytes(self, data: bytes, route: str = "/v1/nose") -> dict[str, Any]:
        """The server's answer for one encoded image, sent the way `route` expects it."""
        sent = image_request(data, route)
        response = await self._client.post(
            self.url + route, json=sent.json, files=sent.files, content=sent.body, headers=sent.headers
        )
        return answer_of(response)

    async def predict(self, path: str | Path, route: str = "/v1/nose") -> dict[str, Any]:
        data = await asyncio.to_thread(Path(path).read_bytes)
        return await self.predict_bytes(data, route)

    async def predict_many(
        self, paths: Iterable[str | Path], concurrency: int = 8, route: str = "/v1/nose"
    ) -> AsyncIterator[Outcome]:
        """Answers for many files, `concurrency` requests in flight, yielded in the order given."""
        slots = asyncio.Semaphore(concurrency)

        async def one(path: Path) -> Outcome:
            async with slots:
                try:
                    return Outcome(path, result=await self.predict(path, route))
                except (OSError, httpx.HTTPError, ServerError) as error:
                    return Outcome(path, error=str(error))

        tasks = [asyncio.create_task(one(path)) for path in map(Path, paths)]
        try:
            for task in tasks:
                yield await task
        finally:  # a caller that stops early leaves nothing running
            for task in tasks:
                task.cancel()

    async def version(self) -> dict[str, Any]:
        response = await self._client.get(self.url + "/version")
        response.raise_for_status()
        return response.json()

    async def track(
        self,
        frames: AsyncIterable[StreamFrame] | Iterable[StreamFrame] | Any,
        options: dict[str, Any] | None = None,
        in_flight: int = 2,
    ) -> AsyncIterator[dict[str, Any]]:
        """`Client.track` for asyncio code: each frame's answer, in order, over WS /v1/track, resumed on a new
        connection when the server goes away or the connection is lost (as `Client.track` does).

        `frames` is an async iterable of frames, or what `Client.track` takes (an OpenCV `cv2.VideoCapture`,
        an iterable of frames or (frame, seconds) pairs), read in a thread so that the event loop never waits
        for a camera. Frames without a time are stamped with the clock when they are taken.

        >>> async for answer in client.track(cv2.VideoCapture("clip.mp4")):
        ...     print(answer["frame"], answer["x"], answer["y"])
        """
        from websockets.exceptions import ConnectionClosed

        ledger = StreamLedger()
        timed = _async_frames(frames)
        while True:
            websocket = await self._open_stream(options, RESUME_ATTEMPTS if ledger.resumes else 1)
            try:
                async with websocket:
                    async for answer in self._exchange(websocket, timed, in_flight, ledger):
                        yield answer
                return
            except ConnectionClosed as closed:
                if not ledger.may_resume(closed):
                    raise _closed_early(closed) from None

    async def _open_stream(self, options: dict[str, Any] | None, attempts: int):
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        for attempt in range(attempts):
            try:
                websocket = await connect(
                    websocket_url(self.url, "/v1/track"),
                    **stream_settings(self._api_key, self.url, self._ca_file),
                    open_timeout=self.timeout,
                )
                break
            except (InvalidHandshake, OSError) as refused:
                if isinstance(refused, ssl.SSLError):
                    raise  # a certificate not trusted: no later try will fare better
                if attempt + 1 == attempts:
                    raise _refusal(refused) from None
                await asyncio.sleep(resume_pause(attempt))
        if options:
            await websocket.send(json.dumps({"options": options}))
            try:
                _raise_for_error(json.loads(await asyncio.wait_for(websocket.recv(), self.timeout)))
            except ServerError:
                await websocket.close()
                raise
        return websocket

    async def _exchange(
        self, websocket, frames: AsyncIterator[StreamFrame], in_flight: int, ledger: StreamLedger
    ) -> AsyncIterator[dict[str, Any]]:
        """Send the frames a resumed stream still owes, then `frames`, at most `in_flight` ahead of their
        answers; yield the answers as they come."""
        resend = deque(ledger.start_connection())  # owed by the last connection, sent again in order
        while resend:
            while ledger.unanswered - len(resend) >= in_flight:
                yield await self._next_answer(websocket, ledger)
            data, timestamp = resend.popleft()
            await self._send_frame(websocket, data, timestamp)
        async for frame in frames:
            data, timestamp = await asyncio.to_thread(_frame_bytes, frame)
            ledger.sent(data, timestamp)  # owed from now on: a connection lost before it went sends it again
            while ledger.unanswered - 1 >= in_flight:
                yield await self._next_answer(websocket, ledger)
            await self._send_frame(websocket, data, timestamp)
        while ledger.unanswered:
            yield await self._next_answer(websocket, ledger)

    async def _send_frame(self, websocket, data: bytes, timestamp: float | None) -> None:
        if timestamp is not None:
            await websocket.send(json.dumps({"timestamp": timestamp}))
        await websocket.send(data)

    async def _next_answer(self, websocket, ledger: StreamLedger) -> dict[str, Any]:
        answer = json.loads(await asyncio.wait_for(websocket.recv(), self.timeout))
        return ledger.answered(stream_answer(answer))


async def _async_frames(frames: Any) -> AsyncIterator[StreamFrame]:
    """Frames with their times, from an async iterable (stamped as they come) or a sync one (read in a
    thread, stamped by `timed_frames`)."""
    if isinstance(frames, AsyncIterable):
        loop = asyncio.get_running_loop()
        started = None
        async for frame in frames:
            if not isinstance(frame, tuple):
                started = loop.time() if started is None else started
                frame = (frame, loop.time() - started)
            yield frame
        return
    timed = timed_frames(frames)
    end = object()
    while (frame := await asyncio.to_thread(next, timed, end)) is not end:
        yield frame
