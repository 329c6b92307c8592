"""Fuzzing the framing, bounded: whatever bytes a client sends, in whatever pieces, the front door (uvicorn's
protocol with nosetrack's rules, and the ASGI app behind it) answers with well-formed HTTP and a status
below 500, or closes; it never raises, and never answers twice for one request.

The protocol runs in process on a fake transport that records what it writes, so thousands of cases take
seconds and need no sockets.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading

import pytest
from conftest import make_test_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uvicorn import Config
from uvicorn.server import ServerState as UvicornState

from nosetrack.server.door_rules import DOOR_RULES, DoorRules
from nosetrack.server.front_door import FrontDoor
from nosetrack.server.http_protocol import DeadlineProtocol

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")


class RecordingTransport(asyncio.Transport):
    """What a protocol wrote, and whether it closed; reads are always 'paused or resumed' without effect."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.fixture(scope="module")
def front_door(pool):
    return FrontDoor(make_test_app(pool, max_body_bytes=4096, max_buffered_bytes=16_384))


def serve(front_door: FrontDoor, pieces: list[bytes]) -> RecordingTransport:
    """Feed `pieces` to a fresh connection and let the app answer what it took."""

    async def run() -> RecordingTransport:
        config = Config(app=front_door, http=DeadlineProtocol, lifespan="off", log_config=None)
        config.load()
        rules = DoorRules(request_seconds=30.0, stopping=threading.Event())
        protocol = DeadlineProtocol(config=config, server_state=UvicornState(), app_state={DOOR_RULES: rules})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        for piece in pieces:
            if transport.closed:
                break
            protocol.data_received(piece)
            await asyncio.sleep(0)
        for _ in range(200):  # the app's tasks end: answered, or waiting for more of the body
            if not protocol.tasks or transport.closed:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        await asyncio.sleep(0)
        return transport

    return asyncio.run(run())


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABC0123456789", min_size=1, max_size=12)
header = st.tuples(token, st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
chunk_size = st.one_of(
    st.integers(min_value=0, max_value=5000).map(lambda n: f"{n:x}"),
    st.sampled_from(["zz", "-5", "0x5", "1" * 21, "", " 5", "5;ext=1", "FFFFFFFF"]),
)


@st.composite
def requests(draw) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "OPTIONS", "G\x00T", ""]))
    path = draw(st.sampled_from(["/v1/nose", "/image-64", "/image-bin", "/healthz", "/v2/models/x/infer"]))
    line_end = draw(st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"]))
    headers = draw(st.lists(header, max_size=6))
    framing = draw(st.sampled_from(["length", "chunked", "none", "both"]))
    body = draw(st.binary(max_size=6000))
    head = f"{method} {path} HTTP/1.1{line_end}Host: x{line_end}"
    head += "".join(f"{name}: {value}{line_end}" for name, value in headers)
    if framing in ("length", "both"):
        declared = draw(st.one_of(st.just(str(len(body))), st.sampled_from(["abc", "-1", "99999999999"])))
        head += f"Content-Length: {declared}{line_end}"
    if framing in ("chunked", "both"):
        head += f"Transfer-Encoding: chunked{line_end}"
        chunks = "".join(f"{draw(chunk_size)}\r\n{'a' * 10}\r\n" for _ in range(draw(st.integers(0, 3))))
        return (head + line_end + chunks + "0\r\n\r\n").encode("latin-1")
    return (head + line_end).encode("latin-1") + body


@FUZZ
@given(raw=st.one_of(requests(), st.binary(max_size=3000)), cuts=st.lists(st.integers(0, 7000), max_size=4))
def test_the_front_door_answers_any_bytes_without_a_crash(front_door, raw, cuts):
    edges = sorted({0, len(raw), *(cut for cut in cuts if cut < len(raw))})
    pieces = [raw[start:end] for start, end in itertools.pairwise(edges)]
    transport = serve(front_door, pieces)
    statuses = [int(status) for status in STATUS_LINE.findall(bytes(transport.written))]
    assert all(status < 500 for status in statuses), bytes(transport.written)[:300]
    if transport.written:
        assert transport.written.startswith(b"HTTP/1.1 ")
    if any(status >= 400 for status in statuses):  # every refusal in JSON (nosetrack's shape, or /v2's)
        assert b'{"error":' in transport.written or b'{"error": ' in transport.written
