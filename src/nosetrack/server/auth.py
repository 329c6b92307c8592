"""Optional API keys: when the server has any, every route not marked `public` demands a Bearer key.

Deny by default, so a route added later is protected without anyone remembering to protect it. Health,
readiness and version stay open for load balancers; keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, request

from .errors import ApiError

View = TypeVar("View", bound=Callable)
PUBLIC_ATTRIBUTE = "nosetrack_public"
# Flask's own endpoint for the files in static/ (the dashboard's CSS and script hold no data).
ALWAYS_PUBLIC_ENDPOINTS = frozenset({"static"})


def public(view: View) -> View:
    """Mark a view as open even when the server has API keys."""
    setattr(view, PUBLIC_ATTRIBUTE, True)
    return view


def _bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _is_known_key(token: str, keys: tuple[bytes, ...]) -> bool:
    given = token.encode()
    matched = False
    for key in keys:  # every key is compared, so the time taken does not tell which one nearly matched
        matched |= hmac.compare_digest(given, key)
    return matched


def is_authorized(authorization: str, keys: tuple[bytes, ...]) -> bool:
    """Whether an Authorization value ("Bearer KEY": an HTTP header or gRPC metadata) holds one of `keys`."""
    token = _bearer_token(authorization)
    return token is not None and _is_known_key(token, keys)


def require_api_keys(app: Flask, keys: tuple[str, ...]) -> None:
    """Demand `Authorization: Bearer KEY` with one of `keys` on every non-public route (no keys: no check)."""
    if not keys:
        return
    encoded_keys = tuple(key.encode() for key in keys)

    @app.before_request
    def check_api_key() -> None:
        # Unknown paths get their 404; preflights carry no credentials by design (see cors.py).
        if request.endpoint is None or request.method == "OPTIONS":
            return
        if request.endpoint in ALWAYS_PUBLIC_ENDPOINTS:
            return
        if getattr(app.view_functions[request.endpoint], PUBLIC_ATTRIBUTE, False):
            return
        if not is_authorized(request.headers.get("Authorization", ""), encoded_keys):
            raise ApiError(
                401,
                "unauthorized",
                "This server needs an API key: send the header 'Authorization: Bearer <key>'.",
                {"WWW-Authenticate": 'Bearer realm="nosetrack"'},
            )
