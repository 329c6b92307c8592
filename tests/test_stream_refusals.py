"""A refused stream handshake, where the server cannot answer it with HTTP (no `websocket.http.response`
ASGI extension): accepted and closed at once, the close code 4000 + the status the HTTP answer would carry,
the error's message as the reason. Driven through the front door's ASGI interface, in process."""

from __future__ import annotations

import asyncio

import pytest

from nosetrack.config import Settings
from nosetrack.server.app import create_front_door
from nosetrack.server.stream.routes import MAX_CLOSE_REASON_BYTES

KEY = "refusal-test-key"


@pytest.fixture(scope="module")
def door(pool):
    return create_front_door(Settings(log_file="", model_instances=pool.size, api_keys=(KEY,)), pools=[pool])


def handshake(door, headers: dict[str, str], extensions: dict | None, subprotocols=()) -> list[dict]:
    """What the front door sends for one WebSocket handshake (the client closes after the first answer)."""
    scope = {
        "type": "websocket",
        "path": "/v1/track",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "subprotocols": list(subprotocols),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(door(scope, receive, send))
    return sent


def test_without_the_extension_a_missing_key_is_a_4401_close_with_the_message(door):
    accepted, closed = handshake(door, {"Host": "h"}, extensions={})
    assert accepted["type"] == "websocket.accept"
    assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
    assert closed["reason"].startswith("This server needs an API key")


def test_without_the_extension_a_foreign_origin_is_a_4403_close_cut_to_what_a_close_frame_holds(door):
    headers = {"Host": "h", "Authorization": f"Bearer {KEY}", "Origin": "https://" + "x" * 200 + ".example"}
    accepted, closed = handshake(door, headers, extensions=None, subprotocols=["nosetrack"])
    assert accepted["subprotocol"] == "nosetrack", "a browser that offered one needs it back"
    assert closed["code"] == 4403
    assert len(closed["reason"].encode()) == MAX_CLOSE_REASON_BYTES
    assert closed["reason"].startswith("Pages from https://xxx")


def test_with_the_extension_the_refusal_stays_an_http_answer(door):
    start, body = handshake(door, {"Host": "h"}, extensions={"websocket.http.response": {}})
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 401)
    assert b'"unauthorized"' in body["body"]
