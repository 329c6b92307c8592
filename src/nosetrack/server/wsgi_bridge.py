"""The Flask app under ASGI, for requests whose body is already whole in memory.

a2wsgi's `WSGIMiddleware` reads the body lazily from the request thread and sends every piece of the
answer back through the event loop, one blocking round trip each. Here the body is whole before the call
(body.py) and the answers are small JSON, so the call is one hop to a thread and one back: the environ is
built by a2wsgi's `build_environ`, the app runs on a thread, its answer is collected there and sent from
the loop. Measured side by side in bench/front_doors.py (docs/design.md has the table).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi.wsgi import build_environ

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class WholeRequestWSGI:
    """Runs a WSGI app on at most `threads` threads at once; `has_room` tells whether one is free."""

    def __init__(self, app: Callable, threads: int) -> None:
        self.app = app
        self.threads = threads
        self.running = 0  # only the event loop counts: no lock
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="nosetrack-request")

    @property
    def has_room(self) -> bool:
        return self.running < self.threads

    async def __call__(
        self,
        scope: dict,
        body: bytes,
        send: Callable[[dict], Awaitable[None]],
        environ_extra: dict[str, Any] | None = None,
    ) -> None:
        environ = build_environ(scope, io.BytesIO(body))  # type: ignore[arg-type]
        environ.update(environ_extra or {})
        self.running += 1
        try:
            status, headers, content = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._call, environ
            )
        finally:
            self.running -= 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _call(self, environ: dict) -> Answer:
        """On a request thread: the app's status, headers and whole body."""
        started: list = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = [status, headers]

        chunks = self.app(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers = started
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return int(status[:3]), encoded, content

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
