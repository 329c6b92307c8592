"""The HTTP side of a WebSocket: check the upgrade request, and answer it with 101 and the session.

The session runs inside the WSGI call of the 101 answer, on the connected socket the WSGI server puts in
`environ["gunicorn.socket"]`: gunicorn writes the 101 answer's head on the first `write`, passes the
`Upgrade: websocket` header through, and closes the connection when the call returns (docs/streaming.md
lists what a front end must offer).
"""

from __future__ import annotations

import base64
import binascii
import socket
from collections.abc import Callable, Iterable, Mapping

from flask import Response
from wsproto.utilities import generate_accept_token

from ..errors import ApiError

# The subprotocol a server answers with; a browser that offers a key in a second one must offer this one too.
SUBPROTOCOL = "nosetrack"
WEBSOCKET_VERSION = "13"
SOCKET_ENVIRON_KEYS = ("gunicorn.socket",)
BODY_HEADERS = frozenset({"content-type", "content-length"})


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def upgrade_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The 101 answer's headers for a valid WebSocket upgrade request; ApiError (400, 426) otherwise."""
    if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in _tokens(
        headers.get("Connection", "")
    ):
        raise ApiError(
            426,
            "upgrade_required",
            "This route is a WebSocket: connect with ws:// (or wss://) and a WebSocket client.",
            {"Upgrade": "websocket"},
        )
    if headers.get("Sec-WebSocket-Version") != WEBSOCKET_VERSION:
        raise ApiError(
            426,
            "unsupported_websocket_version",
            f"Only WebSocket version {WEBSOCKET_VERSION} (RFC 6455) is spoken here.",
            {"Sec-WebSocket-Version": WEBSOCKET_VERSION},
        )
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        valid_key = False
    if not valid_key:
        raise ApiError(400, "invalid_handshake", "Sec-WebSocket-Key must be 16 bytes in base64.")
    answer = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", generate_accept_token(key.encode("ascii")).decode("ascii")),
    ]
    if SUBPROTOCOL in {token.strip() for token in headers.get("Sec-WebSocket-Protocol", "").split(",")}:
        answer.append(("Sec-WebSocket-Protocol", SUBPROTOCOL))
    return answer


def connected_socket(environ: Mapping[str, object]) -> socket.socket:
    """The client's socket, as the WSGI server shares it; ApiError 501 under a server that does not."""
    for key in SOCKET_ENVIRON_KEYS:
        sock = environ.get(key)
        if isinstance(sock, socket.socket):
            return sock
    raise ApiError(
        501, "websocket_unavailable", "This server cannot hand over its sockets: run `nosetrack serve`."
    )


class Upgrade(Response):
    """101 Switching Protocols, then `session(sock)` on the upgraded connection, within the WSGI call."""

    def __init__(
        self, headers: list[tuple[str, str]], sock: socket.socket, session: Callable[[socket.socket], None]
    ) -> None:
        super().__init__(status=101, headers=headers)
        self._sock = sock
        self._session = session

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        # Flask's body headers mean nothing on a 101; the hooks' headers (X-Request-ID, CORS) stay.
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in BODY_HEADERS]
        write = start_response("101 Switching Protocols", headers)
        write(b"")  # the head goes out now: the client speaks WebSocket from here on
        self._session(self._sock)
        return []
