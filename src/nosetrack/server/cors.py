"""CORS, off unless origins are configured: then those origins may call the API from a browser.

A preflight (OPTIONS with Access-Control-Request-Method) is answered here with 204 before any other check,
because browsers never send credentials on it; the real request that follows is checked as usual.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-ID, Inference-Header-Content-Length"
EXPOSED_HEADERS = "X-Request-ID, Retry-After, Inference-Header-Content-Length"
PREFLIGHT_MAX_AGE_SECONDS = "600"


def same_or_allowed_origin(origin: str | None, host: str, origins: tuple[str, ...]) -> bool:
    """Whether a page on `origin` may open a WebSocket to this server (reached as `host`). Browsers apply
    no CORS to WebSockets, so the server checks: its own pages always, others when listed ('*': any). A
    client that sends no Origin is no browser page, and is let through (API keys still apply)."""
    if origin is None or "*" in origins or origin in origins:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


def allow_cross_origin(app: Flask, origins: tuple[str, ...]) -> None:
    """Add CORS headers for requests from `origins` ('*' for any origin); none leaves CORS off."""
    if not origins:
        return
    any_origin = "*" in origins

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if any_origin:
            return "*"
        return origin if origin in origins else None

    @app.before_request
    def answer_preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response(status=204)
        if allowed_origin() is not None:
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_SECONDS
        return response

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        origin = allowed_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if not any_origin:
            response.vary.add("Origin")
        return response
