"""WS /v1/track: the handshake checked as an HTTP request is (key, origin, model, room for one more stream),
then one stream served on the worker's event loop. A plain GET of the route is Flask's: 426."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from urllib.parse import parse_qs

from flask import Blueprint
from werkzeug.datastructures import Headers

from ...logs import LOGGER_NAME
from ...pool import Overloaded
from ..auth import has_known_key, unauthorized
from ..cors import same_or_allowed_origin
from ..errors import ApiError, nosetrack_error
from ..metrics import STREAM_ROUTE
from ..request_log import record_answer, request_id
from ..state import ServerState
from .channel import Channel
from .session import StreamSession

logger = logging.getLogger(LOGGER_NAME)

# The subprotocol a server answers with; a browser that offers a key in a second one must offer this one too.
SUBPROTOCOL = "nosetrack"
# The ASGI extension that lets a refusal be an HTTP answer; without it, a close code 4000 + the status, its
# reason the error's message cut to what a close frame holds (RFC 6455: 125 bytes with the code).
HTTP_RESPONSE = "websocket.http.response"
MAX_CLOSE_REASON_BYTES = 123

stream = Blueprint("stream", __name__)


@stream.get(STREAM_ROUTE)
def track_without_upgrade() -> None:
    raise ApiError(
        426,
        "upgrade_required",
        "This route is a WebSocket: connect with ws:// (or wss://) and a WebSocket client.",
        {"Upgrade": "websocket"},
    )


def _checked_pool(state: ServerState, scope: dict, headers: Headers):
    """The model the stream asked for, once its key and origin pass; ApiError otherwise."""
    if scope["path"] != STREAM_ROUTE:
        raise ApiError(404, "not_found", f"No WebSocket at {scope['path']}; streams open at {STREAM_ROUTE}.")
    keys = tuple(key.encode() for key in state.settings.api_keys)
    if keys and not has_known_key(headers, keys):
        raise unauthorized()
    origin = headers.get("Origin")
    if not same_or_allowed_origin(origin, headers.get("Host", ""), state.settings.cors_origins):
        raise ApiError(
            403,
            "forbidden_origin",
            f"Pages from {origin} may not open streams here: start the server with --cors-origin {origin}.",
        )
    if state.stopping.is_set():
        raise ApiError(503, "stopping", "This server is shutting down: connect again.", {"Retry-After": "1"})
    model = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("model", [None])[0]
    return state.pool_for(model or None)


async def serve_stream(
    state: ServerState,
    executor: Executor,
    scope: dict,
    receive: Callable[[], Awaitable[dict]],
    send: Callable[[dict], Awaitable[None]],
) -> None:
    """One WebSocket from its handshake to its close, its place among the worker's streams held throughout."""
    started = time.perf_counter()
    headers = Headers([(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]])
    identity = request_id(headers.get("X-Request-ID", ""))
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        pool = _checked_pool(state, scope, headers)
        with state.streams.admit():
            offered = {token.strip() for token in headers.get("Sec-WebSocket-Protocol", "").split(",")}
            await send(
                {
                    "type": "websocket.accept",
                    "subprotocol": SUBPROTOCOL if SUBPROTOCOL in offered else None,
                    "headers": [(b"x-request-id", identity.encode())],
                }
            )
            _observe(state, scope, 101, started, identity)
            channel = Channel(receive, send, state.settings.body_timeout)
            session = StreamSession(state, pool, channel, identity, executor)
            with state.metrics.streams_open.track_inprogress():
                await session.serve()
    except Overloaded as error:
        await _refuse(state, scope, send, started, identity, _too_many(state, error))
    except ApiError as error:
        await _refuse(state, scope, send, started, identity, error)


def _too_many(state: ServerState, error: Overloaded) -> ApiError:
    return ApiError(
        503,
        "too_many_streams",
        f"{error} (--max-streams {state.settings.max_streams}). Retry shortly.",
        {"Retry-After": "1"},
    )


async def _refuse(state, scope, send, started: float, identity: str, error: ApiError) -> None:
    """Answer the handshake with the error as an HTTP answer, in the routes' JSON shape; where the server
    cannot send one (no `websocket.http.response` extension), accept and close at once with 4000 + the
    status (4401, 4403, 4404, 4503) and the error's message as the reason."""
    if HTTP_RESPONSE not in (scope.get("extensions") or {}):
        # A close before the accept would be a bare 403 (ASGI): accept, then close with the meaning.
        reason = error.message.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in scope.get("subprotocols", ()) else None
        headers = [(b"x-request-id", identity.encode())]
        await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers})
        await send({"type": "websocket.close", "code": 4000 + error.status, "reason": reason})
        _observe(state, scope, error.status, started, identity, error.code)
        return
    body = nosetrack_error(error.code, error.message, identity)
    headers = [(b"content-type", b"application/json"), (b"x-request-id", identity.encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "websocket.http.response.start", "status": error.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": json.dumps(body).encode()})
    _observe(state, scope, error.status, started, identity, error.code)


def _observe(state, scope, status: int, started: float, identity: str, code: str | None = None) -> None:
    call = ("GET", scope["path"], STREAM_ROUTE)
    record_answer(state, call, status, time.perf_counter() - started, identity, code)
