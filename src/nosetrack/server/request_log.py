"""Every request gets an id and a clock when it arrives, and a log line and metrics when it is answered.

Hooked around the routes (as a Flask extension's `init_app` would), so no route measures itself.
"""

from __future__ import annotations

import logging
import secrets
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..logs import LOGGER_NAME
from .state import ServerState, server_state

logger = logging.getLogger(LOGGER_NAME)


def request_id(given: str) -> str:
    """The id a client sent (HTTP's X-Request-ID, gRPC's x-request-id) when it is a sane token, else a fresh
    one."""
    if 0 < len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        return given
    return secrets.token_hex(16)  # as uuid4().hex: 32 random hex digits, without building a UUID


def start_request() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id(request.headers.get("X-Request-ID", ""))
    if logger.isEnabledFor(logging.DEBUG):  # a request's arrival, for telling it apart from its answer
        logger.debug("%s %s arrived request_id=%s", request.method, request.path, g.request_id)


def record_answer(
    state: ServerState,
    call: tuple[str, str, str],
    status: int,
    seconds: float,
    identity: str,
    error_code: str | None = None,
) -> None:
    """One answered request, whatever carried it (an HTTP route, a gRPC call, a WebSocket handshake): its
    metrics and its log line. `call`: (method, path, the route it is counted under)."""
    method, path, route = call
    state.metrics.observe_request(route, status, seconds, error_code)
    logger.info("%s %s %d %.2f ms request_id=%s", method, path, status, seconds * 1000.0, identity)


def route_label(app: Flask) -> str:
    """The route a request is counted under: its rule; for a 405, the rule its path has for other methods."""
    if request.url_rule is not None:
        return request.url_rule.rule
    refused = request.routing_exception
    if isinstance(refused, MethodNotAllowed) and refused.valid_methods:
        adapter = app.url_map.bind_to_environ(request.environ)
        try:
            rule, _ = adapter.match(method=refused.valid_methods[0], return_rule=True)
        except HTTPException:
            return "unmatched"
        return rule.rule
    return "unmatched"


def init_app(app: Flask) -> None:
    """Start the clock before every other hook, so a refused or preflight request is timed and logged too."""
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)

    @app.after_request
    def finish_request(response: Response) -> Response:
        seconds = time.perf_counter() - g.started
        call = (request.method, request.path, route_label(app))
        record_answer(
            server_state(app), call, response.status_code, seconds, g.request_id, g.get("error_code")
        )
        response.headers["X-Request-ID"] = g.request_id
        return response
