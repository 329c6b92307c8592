"""Optional API keys: when the server has any, every route not marked `public` demands a Bearer key (or,
on a WebSocket, the same key as a subprotocol, since browsers cannot send the header there).

Deny by default, so a route added later is protected without anyone remembering to protect it. Health,
readiness and version stay open for load balancers; keys are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from typing import TypeVar

from flask import Flask, request

from .errors import ApiError

View = TypeVar("View", bound=Callable)
PUBLIC_ATTRIBUTE = "nosetrack_public"
# Flask's own endpoint for the files in static/ (the dashboard's CSS and script hold no data).
ALWAYS_PUBLIC_ENDPOINTS = frozenset({"static"})
WEBSOCKET_KEY_PREFIX = "nosetrack.bearer."


def public(view: View) -> View:
    """Mark a view as open even when the server has API keys."""
    setattr(view, PUBLIC_ATTRIBUTE, True)
    return view


def _bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _subprotocol_token(protocols: str) -> str | None:
    """A browser cannot set headers on a WebSocket, so it offers its key as a subprotocol
    `nosetrack.bearer.<the key in unpadded base64url>` (as Kubernetes does); the server never echoes it."""
    for protocol in protocols.split(","):
        encoded = protocol.strip().removeprefix(WEBSOCKET_KEY_PREFIX)
        if encoded != protocol.strip() and encoded:
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries in its (case-insensitive) `headers`: `Authorization: Bearer KEY`, or a
    WebSocket's key subprotocol."""
    token = _bearer_token(headers.get("Authorization", ""))
    if token is None and headers.get("Upgrade", "").lower() == "websocket":
        token = _subprotocol_token(headers.get("Sec-WebSocket-Protocol", ""))
    return token


def _is_known_key(token: str, keys: tuple[bytes, ...]) -> bool:
    given = token.encode()
    matched = False
    for key in keys:  # every key is compared, so the time taken does not tell which one nearly matched
        matched |= hmac.compare_digest(given, key)
    return matched


def has_known_key(headers: Mapping[str, str], keys: tuple[bytes, ...]) -> bool:
    """Whether a request's headers present one of `keys` (HTTP routes and WebSocket handshakes alike)."""
    token = presented_key(headers)
    return token is not None and _is_known_key(token, keys)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "This server needs an API key: send the header 'Authorization: Bearer <key>'.",
        {"WWW-Authenticate": 'Bearer realm="nosetrack"'},
    )


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
        if not has_known_key(request.headers, encoded_keys):
            raise unauthorized()
