"""WS /v1/track: checked as an HTTP request (key, origin, room for one more stream), then upgraded."""

from __future__ import annotations

import logging
import socket
import time
from contextlib import ExitStack

from flask import Blueprint, Response, current_app, g, request
from wsproto.frame_protocol import CloseReason

from ...logs import LOGGER_NAME
from ...pool import ModelPool, Overloaded
from ..cors import same_or_allowed_origin
from ..errors import ApiError
from ..metrics import STREAM_ROUTE
from ..state import ServerState, server_state
from .handshake import Upgrade, connected_socket, upgrade_headers
from .session import StreamSession
from .websocket import Closed, WebSocket

logger = logging.getLogger(LOGGER_NAME)
MAX_TEXT_MESSAGE_CHARS = 64 * 1024

stream = Blueprint("stream", __name__)


def track() -> Response:
    state = server_state(current_app)
    headers = upgrade_headers(request.headers)
    origin = request.headers.get("Origin")
    if not same_or_allowed_origin(origin, request.host, state.settings.cors_origins):
        raise ApiError(
            403,
            "forbidden_origin",
            f"Pages from {origin} may not open streams here: start the server with --cors-origin {origin}.",
        )
    pool = state.pool_for(request.args.get("model"))  # `?model=NAME`, as on /v1/nose
    sock = connected_socket(request.environ)
    held = ExitStack()
    try:
        held.enter_context(state.streams.admit())
    except Overloaded as error:
        raise ApiError(
            503,
            "too_many_streams",
            f"{error} (--max-streams {state.settings.max_streams}). Retry shortly.",
            {"Retry-After": "1"},
        ) from None
    request_id = g.request_id
    return Upgrade(headers, sock, lambda upgraded: _run_stream(state, pool, upgraded, request_id, held))


def _run_stream(
    state: ServerState, pool: ModelPool, sock: socket.socket, request_id: str, held: ExitStack
) -> None:
    """Serve one stream to its end, log how it went, and free its place, whatever happens."""
    settings = state.settings
    websocket = WebSocket(sock, settings.max_body_bytes, MAX_TEXT_MESSAGE_CHARS, settings.body_timeout)
    session = StreamSession(state, pool, websocket, request_id)
    started = time.monotonic()
    with held, state.metrics.streams_open.track_inprogress():
        try:
            closed = session.serve()
        except Exception:
            logger.exception("WS %s failed (request_id=%s)", STREAM_ROUTE, request_id)
            websocket.close(CloseReason.INTERNAL_ERROR, "The server failed; its log holds the details.")
            closed = Closed(CloseReason.INTERNAL_ERROR, "internal error")
        finally:
            websocket.abort()  # whatever the front end's keep-alive, this connection carries nothing more
    tally = session.tally
    logger.info(
        "WS %s closed %d %s: %d frames, %d answered, %d dropped, %d errors, %.1f s request_id=%s",
        STREAM_ROUTE,
        closed.code,
        closed.reason or "-",
        tally.frames,
        tally.answered,
        tally.dropped,
        tally.errors,
        time.monotonic() - started,
        request_id,
    )


# werkzeug matches upgrade requests only to rules marked `websocket`; the plain GET gets its clear 426.
for upgrade in (True, False):
    stream.add_url_rule(STREAM_ROUTE, view_func=track, methods=["GET"], websocket=upgrade)
