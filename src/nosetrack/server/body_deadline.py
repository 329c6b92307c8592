"""A deadline for the request body: a client that sends its body too slowly gets 408, and the thread is free.

gunicorn's gthread worker reads the body on a blocking socket with no time limit of its own (its `timeout`
only restarts a worker whose main loop hangs), so one slow client could hold a thread for ever. This WSGI
middleware gives the whole body `seconds` from the start of the request: before each read, the socket's
timeout is set to the time left. gunicorn then drains what is left of the body (for at most 5 s) before it
reuses the connection, and closes it if the body never completes, so a late rest is never read as a request.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import RequestTimeout


class DeadlineStream:
    """A wsgi.input whose reads raise RequestTimeout once the deadline has passed."""

    def __init__(self, stream: Any, sock: socket.socket, deadline: float) -> None:
        self._stream = stream
        self._sock = sock
        self._deadline = deadline

    def _read(self, method: Callable[..., Any], *args: Any) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout("The request body did not arrive in time.")
        self._sock.settimeout(remaining)
        try:
            return method(*args)
        except TimeoutError:
            raise RequestTimeout("The request body did not arrive in time.") from None

    def read(self, size: int | None = -1) -> bytes:
        return self._read(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._read(self._stream.readline, size)

    def __iter__(self) -> Iterable[bytes]:
        return iter(self.readline, b"")


class BodyDeadline:
    """Wraps a WSGI app; only acts under gunicorn, which puts its socket in `environ["gunicorn.socket"]`."""

    def __init__(self, app: Callable, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return self.app(environ, start_response)
        deadline = time.monotonic() + self.seconds
        environ["wsgi.input"] = DeadlineStream(environ["wsgi.input"], sock, deadline)
        try:
            return self.app(environ, start_response)
        finally:
            # gunicorn writes the answer after we return: writing must not inherit the body's deadline.
            sock.settimeout(None)
