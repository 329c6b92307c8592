"""The front door as a client meets it: framing that never disagrees with itself, kept-alive and pipelined
connections, the request deadline, and the worker's memory budget for bodies being received.

Each test speaks raw HTTP/1.1 on a socket, since well-behaved client libraries cannot send these requests.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time

import pytest
from conftest import LiveServer

from nosetrack.server.http_protocol import MAX_HEAD_BYTES

MAX_BODY_BYTES = 100_000
BUDGET_BYTES = 150_000
BODY_TIMEOUT = 2
KEEP_ALIVE = 1
REFUSED_WITHIN = 2.0  # a bound on waiting for a refusal, never a speed to assert
CHUNKED = (
    b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("front-door"),
        *("--workers", "1", "--max-body-bytes", str(MAX_BODY_BYTES)),
        *("--max-buffered-bytes", str(BUDGET_BYTES), "--body-timeout", str(BODY_TIMEOUT)),
        *("--keep-alive", str(KEEP_ALIVE)),
    )
    yield server
    server.stop()
    assert "Traceback" not in server.log_file.read_text()  # nothing a client sent was a crash


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def read_answer(sock: socket.socket) -> tuple[int, http.client.HTTPMessage, bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.headers, response.read()


def refusal(server: LiveServer, raw: bytes) -> tuple[int, str, float]:
    """The status and error code the server answers `raw` with, and how long the answer took."""
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(raw)
        status, _, body = read_answer(sock)
        return status, json.loads(body)["error"]["code"], time.monotonic() - started


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (CHUNKED + b"zz\r\nabcde\r\n0\r\n\r\n", 400, "bad_request"),
        (CHUNKED + b"-5\r\nabcde\r\n0\r\n\r\n", 400, "bad_request"),
        (CHUNKED + b"0x5\r\nabcde\r\n0\r\n\r\n", 400, "bad_request"),
        (CHUNKED + b"1" * 21 + b"\r\nabcde\r\n0\r\n\r\n", 400, "bad_request"),
        (b"POST /v1/nose HTTP/1.1\nHost: x\nContent-Length: 1\n\nx", 400, "bad_request"),
        (b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 72_000 + b"\r\n\r\n", 431, None),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: a\r\n" * 8_000 + b"\r\n", 431, None),
        (b"GET /" + b"a" * (MAX_HEAD_BYTES + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, None),
        (
            CHUNKED + (b"%x\r\n" % 60_000 + b"a" * 60_000 + b"\r\n") * 2 + b"0\r\n\r\n",
            413,
            "request_entity_too_large",
        ),
        (
            b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1),
            413,
            "request_entity_too_large",
        ),
    ],
    ids=[
        "chunk-size-zz",
        "chunk-size-negative",
        "chunk-size-0x",
        "chunk-size-21-digits",
        "bare-lf-head",
        "content-length-not-a-number",
        "72kb-header-one-write",
        "many-headers",
        "long-url",
        "chunked-over-limit",
        "content-length-over-limit",
    ],
)
def test_malformed_or_oversized_requests_are_refused_at_once_in_json(server, raw, status, code):
    answered, error_code, seconds = refusal(server, raw)
    assert answered == status
    assert error_code == (code or "request_header_fields_too_large")
    assert seconds < REFUSED_WITHIN


def test_a_head_trickled_past_its_limit_is_refused_431(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(MAX_HEAD_BYTES // 4096 + 8):
            sock.sendall(b"a" * 4096)
            time.sleep(0.01)
        status, _, body = read_answer(sock)
    assert (status, json.loads(body)["error"]["code"]) == (431, "request_header_fields_too_large")


def test_a_request_not_whole_in_time_is_answered_408_and_a_silent_one_closed(server):
    with connect(server) as sock:
        sock.sendall(b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
        status, _, body = read_answer(sock)
    assert (status, json.loads(body)["error"]["code"]) == (408, "request_timeout")
    with connect(server) as sock:
        assert sock.recv(100) == b""  # asked nothing: closed at the deadline, nothing to answer


def test_predictions_on_one_kept_alive_connection(server, face_jpeg):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.connect()
    first_socket = connection.sock
    answers = []
    for _ in range(200):
        connection.request("POST", "/v1/nose", body=face_jpeg, headers={"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())["detected"]))
        assert connection.sock is first_socket, "the server closed a connection it could have kept"
    connection.close()
    assert answers == [(200, True)] * 200


def test_pipelined_requests_are_answered_in_order(server, face_jpeg):
    requests_in_one_write = (
        b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
        % len(face_jpeg)
        + face_jpeg
        + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(requests_in_one_write)
        statuses = [read_answer(sock)[0] for _ in range(3)]
    assert statuses == [200, 404, 200]


def test_an_idle_kept_alive_connection_is_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(sock)[0] == 200
        sock.settimeout(KEEP_ALIVE + 10)
        assert sock.recv(100) == b""


def test_bodies_past_the_workers_budget_are_refused_503_and_their_memory_released(server, face_jpeg):
    """Two bodies being received may not hold more than the budget together; once one is done, its bytes are
    free for the next."""
    declared = BUDGET_BYTES // 2 + 10_000  # two of them pass the budget
    head = b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
    with connect(server) as holding:
        holding.sendall(head % declared + b"\xff\xd8")
        time.sleep(0.2)  # the server has read the head and reserved the body
        with connect(server) as refused:
            refused.sendall(head % declared)
            status, headers, body = read_answer(refused)
        assert (status, json.loads(body)["error"]["code"]) == (503, "overloaded")
        assert headers["Retry-After"] == "1"
        holding.sendall(b"\x00" * (declared - 2))
        assert read_answer(holding)[0] == 415  # whole, and no image: the body was taken
    with connect(server) as retried:
        retried.sendall(head % len(face_jpeg) + face_jpeg)
        assert read_answer(retried)[0] == 200


def test_the_app_imports_and_answers_without_gunicorn_or_uvicorn(tmp_path):
    """The Flask app and the ASGI front door are the server's, not gunicorn's: they import and answer with
    neither server importable (as Ray's replicas and the test client run them)."""
    script = """
import sys
sys.modules["gunicorn"] = sys.modules["uvicorn"] = sys.modules["uvicorn_worker"] = None
from nosetrack.config import Settings
from nosetrack.server.app import create_app
from nosetrack.server.front_door import FrontDoor
app = create_app(Settings(log_file=""))
assert FrontDoor(app).state is not None
assert app.test_client().get("/healthz").status_code == 200
"""
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]


def test_the_server_module_leaves_prometheus_client_to_the_workers():
    """`nosetrack serve` sets PROMETHEUS_MULTIPROC_DIR after importing its server module and before the
    workers import prometheus_client; imported earlier, every worker's metrics would stay its own (and
    /metrics would count nothing across workers)."""
    script = "import sys, nosetrack.server.gunicorn; print('prometheus_client' in sys.modules)"
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert finished.stdout.strip() == "False", finished.stderr[-2000:]


def test_a_large_head_under_the_limit_is_served_however_it_is_cut(server):
    """A 50 kB head (under the 64 kB limit) sent in two pieces is a request like any other, not a 431."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 50_000 + b"\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(head[:30_000])
        time.sleep(0.2)
        sock.sendall(head[30_000:])
        assert read_answer(sock)[0] == 200
