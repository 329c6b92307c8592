"""WS /v1/track end to end: `nosetrack serve` on 127.0.0.1 and the `websockets` client library.

One socket is one stream: frames in, tracked answers out, the newest frame first; every bad input gets an
error message in the socket (the HTTP routes' codes) or a close code, and nothing of one stream reaches
another.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from conftest import LiveServer, encode
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage

from nosetrack.server.stream.session import MAX_UNDECODABLE

MAX_BODY_BYTES = 400_000
MAX_IMAGE_PIXELS = 1_000_000
IDLE_SECONDS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("stream"),
        *("--workers", "1", "--threads", "2", "--max-streams", "4"),
        *("--max-body-bytes", str(MAX_BODY_BYTES), "--max-image-pixels", str(MAX_IMAGE_PIXELS)),
        *("--stream-idle-timeout", str(IDLE_SECONDS), "--body-timeout", "1"),
    )
    yield server
    server.stop()
    assert "Traceback" not in server.log_file.read_text()  # every bad input was an answer, not a crash


def stream_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/v1/track"


def open_stream(server: LiveServer, **options):
    return connect(stream_url(server), compression=None, max_size=None, open_timeout=10, **options)


def answer_to(websocket, message: bytes | str) -> dict:
    websocket.send(message)
    return json.loads(websocket.recv(timeout=30))


def refusal(server: LiveServer, **options) -> tuple[int, dict]:
    """The HTTP status and JSON error with which the server refuses to open a stream."""
    with pytest.raises(InvalidStatus) as refused, open_stream(server, **options):
        pass
    response = refused.value.response
    return response.status_code, json.loads(response.body)["error"]


@pytest.fixture(scope="module")
def frame_jpeg(astronaut_bgr) -> bytes:
    return encode(astronaut_bgr)


@pytest.fixture(scope="module")
def other_frame_jpeg(astronaut_bgr) -> bytes:
    """Another picture: the photograph mirrored and moved, so its nose is ~150 px away from the first's."""
    mirrored = cv2.flip(astronaut_bgr, 1)
    moved = cv2.warpAffine(mirrored, np.float32([[1, 0, 60], [0, 1, 40]]), mirrored.shape[1::-1])
    return encode(moved)


def test_each_frame_gets_the_tracked_answer_with_its_number(server, frame_jpeg):
    with open_stream(server) as websocket:
        first, second = answer_to(websocket, frame_jpeg), answer_to(websocket, frame_jpeg)
    assert first["detected"] and 0 < first["x"] < 1 and 0 < first["y"] < 1
    assert (first["frame"], second["frame"]) == (0, 1)
    assert first["dropped"] == second["dropped"] == 0
    assert first["model"]["name"] == "nosetrack-facemesh" and first["latency_ms"] > 0
    face = second["faces"][0]
    assert face["id"] == first["faces"][0]["id"]
    assert (first["faces"][0]["tracked"], face["tracked"]) == (False, True)  # the detector ran once
    assert set(face["nose_raw"]) == {"x", "y"}
    assert second["x"] * 512 == pytest.approx(face["nose"]["x"])  # the top level is the smoothed face


def test_a_timestamp_message_times_the_next_frame_and_without_one_the_server_does(server, frame_jpeg):
    with open_stream(server) as websocket:
        websocket.send(json.dumps({"timestamp": 100.0}))
        timed = answer_to(websocket, frame_jpeg)
        websocket.send(json.dumps({"timestamp": 100.5}))
        later = answer_to(websocket, frame_jpeg)
    assert (timed["timestamp"], later["timestamp"]) == (100.0, 100.5)
    with open_stream(server) as websocket:
        untimed = [answer_to(websocket, frame_jpeg)["timestamp"] for _ in range(3)]
    assert 0 <= untimed[0] < untimed[1] < untimed[2] < 60  # seconds since the stream opened


def test_a_timestamp_that_goes_back_is_refused_for_that_frame_only(server, frame_jpeg):
    with open_stream(server) as websocket:
        websocket.send(json.dumps({"timestamp": 5.0}))
        answer_to(websocket, frame_jpeg)
        websocket.send(json.dumps({"timestamp": 4.0}))
        error = answer_to(websocket, frame_jpeg)["error"]
        websocket.send(json.dumps({"timestamp": 6.0}))
        assert answer_to(websocket, frame_jpeg)["timestamp"] == 6.0
    assert (error["code"], error["status"], error["frame"]) == ("invalid_timestamp", 400, 1)


def test_options_are_acknowledged_and_bad_ones_refused(server, frame_jpeg):
    with open_stream(server) as websocket:
        changed = answer_to(websocket, json.dumps({"options": {"beta": 0.25, "redetect_frames": 5}}))
        unknown = answer_to(websocket, json.dumps({"options": {"speed": 3}}))["error"]
        negative = answer_to(websocket, json.dumps({"options": {"min_cutoff": -1}}))["error"]
        assert answer_to(websocket, frame_jpeg)["detected"]
    assert changed["options"]["beta"] == 0.25 and changed["options"]["redetect_frames"] == 5
    assert (unknown["code"], unknown["status"]) == ("invalid_options", 400) and "speed" in unknown["message"]
    assert negative["code"] == "invalid_options" and "min_cutoff" in negative["message"]


@pytest.mark.parametrize(
    ("message", "code"),
    [("garbage {", "invalid_json"), ("[1, 2]", "invalid_json"), ('{"frame": 3}', "invalid_message")],
)
def test_a_bad_text_message_gets_a_400_error_and_the_stream_goes_on(server, frame_jpeg, message, code):
    with open_stream(server) as websocket:
        error = answer_to(websocket, message)["error"]
        assert answer_to(websocket, frame_jpeg)["detected"]
    assert (error["code"], error["status"]) == (code, 400)
    assert "frame" not in error


@pytest.mark.parametrize(
    ("make_frame", "status", "code"),
    [
        (lambda jpeg: b"these bytes are no image", 415, "unsupported_image_type"),
        (lambda jpeg: jpeg[: len(jpeg) // 2], 422, "invalid_image"),
        (lambda jpeg: encode(np.zeros((1200, 1000, 3), np.uint8)), 413, "image_too_large"),
        (lambda jpeg: b"\xff\xd8\xff" + bytes(MAX_BODY_BYTES), 413, "request_entity_too_large"),
    ],
    ids=["not-an-image", "truncated", "too-many-pixels", "too-many-bytes"],
)
def test_a_bad_frame_gets_the_http_routes_error_and_the_stream_goes_on(
    server, frame_jpeg, make_frame, status, code
):
    with open_stream(server) as websocket:
        error = answer_to(websocket, make_frame(frame_jpeg))["error"]
        after = answer_to(websocket, frame_jpeg)
    assert (error["status"], error["code"], error["frame"]) == (status, code, 0)
    assert after["detected"] and after["frame"] == 1


def test_the_latest_frame_wins_and_the_answer_counts_the_dropped(server, frame_jpeg):
    burst = 12
    with open_stream(server) as websocket:
        for _ in range(burst):
            websocket.send(frame_jpeg)
        answers = [json.loads(websocket.recv(timeout=30))]
        while answers[-1]["frame"] < burst - 1:
            answers.append(json.loads(websocket.recv(timeout=30)))
    numbers = [answer["frame"] for answer in answers]
    assert numbers == sorted(numbers) and numbers[0] == 0
    assert len(answers) + sum(answer["dropped"] for answer in answers) == burst
    assert len(answers) < burst, "a burst sent while a frame runs leaves only its newest frame"


def test_two_in_flight_are_never_dropped(server, frame_jpeg):
    from nosetrack import Client

    answers = list(Client(server.url).track([frame_jpeg] * 20, in_flight=2))
    assert [answer["frame"] for answer in answers] == list(range(20))
    assert all(answer["dropped"] == 0 and answer["detected"] for answer in answers)


def test_two_streams_at_once_each_get_only_their_own_faces(server, frame_jpeg, other_frame_jpeg):
    expected = {}
    for name, jpeg in (("one", frame_jpeg), ("other", other_frame_jpeg)):
        with open_stream(server) as websocket:
            expected[name] = answer_to(websocket, jpeg)["nose"]["x"]
    assert abs(expected["one"] - expected["other"]) > 100
    seen: dict[str, list[float]] = {}

    def stream(name: str, jpeg: bytes) -> None:
        with open_stream(server) as websocket:
            seen[name] = [answer_to(websocket, jpeg)["faces"][0]["nose_raw"]["x"] for _ in range(25)]

    threads = [
        threading.Thread(target=stream, args=item)
        for item in (("one", frame_jpeg), ("other", other_frame_jpeg))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for name in ("one", "other"):
        assert len(seen[name]) == 25
        assert max(abs(x - expected[name]) for x in seen[name]) < 20


def test_a_stream_may_name_its_model_and_an_unknown_one_is_refused_before_the_upgrade(server, frame_jpeg):
    with connect(stream_url(server) + "?model=nosetrack-facemesh", compression=None) as websocket:
        assert answer_to(websocket, frame_jpeg)["model"]["name"] == "nosetrack-facemesh"
    with pytest.raises(InvalidStatus) as refused, connect(stream_url(server) + "?model=nope"):
        pass
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["error"]["code"] == "unknown_model"


def test_plain_get_is_told_to_upgrade(server):
    response = requests.get(server.url + "/v1/track", timeout=10)
    assert response.status_code == 426
    assert response.headers["Upgrade"] == "websocket"
    assert response.json()["error"]["code"] == "upgrade_required"


@pytest.mark.slow
def test_an_idle_stream_is_told_and_closed(server, frame_jpeg):
    with open_stream(server) as websocket:
        answer_to(websocket, frame_jpeg)
        started = time.monotonic()
        error = json.loads(websocket.recv(timeout=IDLE_SECONDS + 10))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=10)
    assert (error["code"], error["status"]) == ("idle_timeout", 408)
    assert IDLE_SECONDS - 0.5 < time.monotonic() - started < IDLE_SECONDS + 5
    assert closed.value.rcvd.code == 4408


@pytest.mark.slow
def test_the_client_reports_a_stream_the_server_ended(server, frame_jpeg):
    from nosetrack import Client
    from nosetrack.client import ServerError

    def frames_with_a_pause():
        yield frame_jpeg
        time.sleep(IDLE_SECONDS + 1)
        yield frame_jpeg

    with pytest.raises(ServerError) as ended:
        list(Client(server.url).track(frames_with_a_pause()))
    assert ended.value.status == 408


def raw_stream(server: LiveServer, receive_buffer: int | None = None) -> socket.socket:
    """A bare TCP connection upgraded by hand, for clients no library would imitate."""
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            f"GET /v1/track HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def open_streams(server: LiveServer) -> int:
    return requests.get(server.url + "/api/stats", timeout=10).json()["streams"]["open"]


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_client_gone_mid_frame_leaves_the_worker_serving(server, frame_jpeg):
    sock = raw_stream(server)
    whole = Connection(ConnectionType.CLIENT).send(BytesMessage(frame_jpeg))
    sock.sendall(whole[: len(whole) // 2])
    sock.close()
    with open_stream(server) as websocket:
        assert answer_to(websocket, frame_jpeg)["detected"]
    assert wait_until(lambda: open_streams(server) == 0, 10)
    assert re.search(r"WS /v1/track closed 1006 .*: 0 frames", server.log_file.read_text())


@pytest.mark.slow
def test_a_client_that_never_reads_is_cut_off_its_reading_stops_and_others_carry_on(server, frame_jpeg):
    sock = raw_stream(server, receive_buffer=4096)
    sock.settimeout(0.5)
    message = Connection(ConnectionType.CLIENT).send(BytesMessage(frame_jpeg))
    sent, deadline = 0, time.monotonic() + 30
    while time.monotonic() < deadline and sent < 100_000:
        try:
            sock.sendall(message)
        except TimeoutError:
            continue  # the server reads no faster than the stream's message rate
        except OSError:
            break  # cut off
        sent += 1
        if sent % 20 == 0 and "took no data" in server.log_file.read_text():
            break
    with open_stream(server) as websocket:  # meanwhile, another stream is served
        assert answer_to(websocket, frame_jpeg)["detected"]
    assert wait_until(lambda: "took no data" in server.log_file.read_text(), 15)
    with pytest.raises(OSError):  # reading stopped: the connection is gone
        for _ in range(100):
            sock.sendall(message)
            time.sleep(0.01)
    sock.close()
    assert wait_until(lambda: open_streams(server) == 0, 10)


def test_messages_that_are_no_image_are_refused_cheaply_and_close_the_stream(server):
    with open_stream(server) as websocket:
        for number in range(MAX_UNDECODABLE):
            websocket.send(b"\x00" if number % 2 else "?")
        codes = set()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                codes.add(json.loads(websocket.recv(timeout=30))["error"]["code"])
    assert codes == {"unsupported_image_type", "invalid_json"}
    assert closed.value.rcvd.code == 1008


def test_only_frames_that_decode_keep_a_stream_open(server):
    """A squatter that sends a byte that is no image now and then still idles out."""
    with open_stream(server) as websocket:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(int(IDLE_SECONDS * 10)):
                websocket.send(b"\x00")
                time.sleep(0.4)
                while True:
                    try:
                        websocket.recv(timeout=0)
                    except TimeoutError:
                        break
        assert closed.value.rcvd.code == 4408
        assert time.monotonic() - started < IDLE_SECONDS * 8


def test_stats_and_metrics_count_streams_frames_and_drops(server, frame_jpeg):
    with open_stream(server) as websocket:
        answer_to(websocket, frame_jpeg)
        assert open_streams(server) == 1
        for _ in range(6):
            websocket.send(frame_jpeg)
        while json.loads(websocket.recv(timeout=30)).get("frame") != 6:
            pass
    streams = requests.get(server.url + "/api/stats", timeout=10).json()["streams"]
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert streams["frames_total"] >= 2 and streams["frames_per_s"] > 0
    assert streams["dropped_total"] >= 1 and streams["limit_per_worker"] == 4
    assert re.search(r"^nosetrack_streams_open 0\.0$", metrics, re.MULTILINE)
    assert re.search(r'^nosetrack_stream_frames_total\{outcome="ok"\} [1-9]', metrics, re.MULTILINE)
    assert re.search(r"^nosetrack_stream_frames_dropped_total [1-9]", metrics, re.MULTILINE)


KEY = "stream-key/with+symbols=0123"
ALLOWED_ORIGIN = "https://app.example"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    """One stream per worker, an API key and one foreign origin allowed."""
    server = LiveServer(
        tmp_path_factory.mktemp("guarded"),
        *("--workers", "1", "--threads", "1", "--max-streams", "1"),
        *("--api-key", KEY, "--cors-origin", ALLOWED_ORIGIN),
    )
    yield server
    server.stop()


def key_subprotocol(key: str) -> str:
    return "nosetrack.bearer." + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def test_a_stream_needs_the_key_in_a_header_or_a_subprotocol(guarded_server, frame_jpeg):
    status, error = refusal(guarded_server)
    assert (status, error["code"]) == (401, "unauthorized")
    assert refusal(guarded_server, additional_headers={"Authorization": "Bearer wrong"})[0] == 401
    with open_stream(guarded_server, additional_headers=BEARER) as websocket:
        assert answer_to(websocket, frame_jpeg)["detected"]
    # A browser cannot set headers on a WebSocket: it offers the key as a subprotocol, and "nosetrack".
    with open_stream(guarded_server, subprotocols=["nosetrack", key_subprotocol(KEY)]) as websocket:
        assert websocket.subprotocol == "nosetrack"  # the key is never echoed
        assert answer_to(websocket, frame_jpeg)["detected"]
    assert refusal(guarded_server, subprotocols=["nosetrack", key_subprotocol("wrong")])[0] == 401
    assert KEY not in guarded_server.log_file.read_text()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(ALLOWED_ORIGIN, True), ("https://evil.example", False), ("null", False), (None, True)],
)
def test_pages_of_other_origins_open_streams_only_when_allowed(guarded_server, frame_jpeg, origin, allowed):
    options = {"additional_headers": BEARER, "origin": origin}
    if not allowed:
        status, error = refusal(guarded_server, **options)
        assert (status, error["code"]) == (403, "forbidden_origin")
        return
    with open_stream(guarded_server, **options) as websocket:
        assert answer_to(websocket, frame_jpeg)["detected"]


def test_the_servers_own_pages_may_always_open_streams(guarded_server, frame_jpeg):
    own = f"http://127.0.0.1:{guarded_server.port}"
    with open_stream(guarded_server, additional_headers=BEARER, origin=own) as websocket:
        assert answer_to(websocket, frame_jpeg)["detected"]


def test_streams_past_the_workers_limit_are_refused_before_the_upgrade(guarded_server, frame_jpeg):
    with open_stream(guarded_server, additional_headers=BEARER) as websocket:
        answer_to(websocket, frame_jpeg)
        status, error = refusal(guarded_server, additional_headers=BEARER)
        assert (status, error["code"]) == (503, "too_many_streams")
        assert answer_to(websocket, frame_jpeg)["detected"]  # the open stream goes on
    assert wait_until(lambda: _can_open(guarded_server), 10)


def _can_open(server: LiveServer) -> bool:
    try:
        with open_stream(server, additional_headers=BEARER):
            pass
    except InvalidStatus:
        return False
    return True


def worker_pids(server: LiveServer) -> list[int]:
    pid = server.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_stream_resumes_when_its_worker_stops(tmp_path, frame_jpeg, client):
    """A worker that stops closes its streams with 1001; the clients open the stream again (gunicorn starts
    a new worker) and go on: every frame answered once, in order, the later ones marked resumed."""
    import asyncio

    from nosetrack import AsyncClient, Client

    server = LiveServer(tmp_path, "--workers", "1")
    frames_total, stop_at = 30, 10
    stopped = []

    def frames():
        for number in range(frames_total):
            if number == stop_at:
                stopped.extend(worker_pids(server))
                for pid in stopped:
                    os.kill(pid, signal.SIGTERM)
            yield frame_jpeg, number / 30

    async def tracked_async() -> list[dict]:
        async with AsyncClient(server.url) as streaming:
            return [answer async for answer in streaming.track(frames())]

    try:
        if client == "sync":
            answers = list(Client(server.url).track(frames()))
        else:
            answers = asyncio.run(tracked_async())
    finally:
        server.stop()
    summary = [(a["frame"], a.get("resumed"), a.get("dropped"), "error" in a) for a in answers]
    assert [answer["frame"] for answer in answers] == list(range(frames_total)), str(summary)
    assert all(answer["detected"] for answer in answers)
    assert "resumed" not in answers[0] and answers[-1]["resumed"] == 1
    assert stopped and re.search(r"WS /v1/track closed 1001 ", server.log_file.read_text())
