"""The one application every server runs: `nosetrack serve`'s workers (uvicorn under gunicorn) and Ray
Serve's replicas alike, plain or TLS, HTTP or WebSocket.

An HTTP request's body is read whole in the event loop (body.py: the body limit, the worker's memory
budget) before a request thread sees it; then the Flask app answers it on one of the worker's request
threads (wsgi_bridge.py). A WebSocket at /v1/track is a stream, served on the loop, its frames on threads
of their own (stream/). Deadlines, keep-alive and framing are the server's (http_protocol.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, request

from ..logs import LOGGER_NAME
from .body import BodyBudget, ClientGone, read_body
from .capacity import capacity
from .door_rules import DOOR_RULES, DoorRules
from .errors import ApiError, error_json
from .state import ServerState, server_state
from .stream.routes import serve_stream
from .wsgi_bridge import WholeRequestWSGI

logger = logging.getLogger(LOGGER_NAME)

# The environ key of a refusal found before the app ran (a body over its limit, or over the budget): the
# app answers it as its own error, so it is logged, counted and shaped like any other.
REFUSAL = "nosetrack.refusal"

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class FrontDoor:
    """ASGI: HTTP to the Flask app with whole bodies, WebSockets to streams, lifespan acknowledged."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.state: ServerState = server_state(app)
        settings = self.state.settings
        limits = capacity(settings)
        self.requests = WholeRequestWSGI(app, limits.requests)
        self.frames = ThreadPoolExecutor(limits.streams, thread_name_prefix="nosetrack-stream")
        self.budget = BodyBudget(settings.max_buffered_bytes)

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await serve_stream(self.state, self.frames, scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(scope, receive, send)

    async def http(self, scope: dict, receive: Receive, send: Send) -> None:
        if not self.requests.has_room:  # every request thread is busy: refuse at once, from the loop
            threads = self.requests.threads
            message = f"This worker's {threads} request threads are all busy. Retry shortly."
            await send_canned(send, 503, "overloaded", message, {"retry-after": "1"})
            return
        with self.budget.reserve() as grow:
            try:
                body = await read_body(scope["headers"], receive, self.state.settings.max_body_bytes, grow)
                refusal = None
            except ClientGone:
                return
            except ApiError as error:
                body, refusal = b"", error
            await self.requests(scope, body, send, {REFUSAL: refusal} if refusal else None)

    async def lifespan(self, scope: dict, receive: Receive, send: Send) -> None:
        """Startup tells the server's protocols the rules (when the server keeps a lifespan state)."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if "state" in scope:
                    rules = DoorRules(self.state.settings.body_timeout, self.state.stopping)
                    scope["state"][DOOR_RULES] = rules
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.requests.shutdown()
                self.frames.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def send_canned(send: Send, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    """An answer no app wrote (every request thread busy), in nosetrack's error shape."""
    logger.info("- - %d (%s)", status, code)
    encoded = [(b"content-type", b"application/json")]
    encoded += [(name.encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": error_json(code, message)})


def raise_refusal() -> None:
    """A Flask before_request hook: answer the refusal the front door found, as the app's own error."""
    refusal = request.environ.get(REFUSAL)
    if refusal is not None:
        raise refusal
