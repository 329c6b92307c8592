"""Graceful shutdown as load balancers expect it: on SIGTERM /readyz turns 503 at once while the server keeps
serving for the drain delay; then the listener closes; then every connection already accepted is answered.

Each client records what became of each request: an answer, a refused connection (never accepted), or a
connection that was accepted and then closed without an answer, which must never happen. The server logs
each request's arrival (at DEBUG), so every request that reached the app is known, and each must have its
answer.
"""

from __future__ import annotations

import http.client
import itertools
import re
import signal
import ssl
import threading
import uuid

import pytest
import requests
from certificates import make_certificate
from conftest import LiveServer

CLIENTS = 16
MAX_REQUESTS_PER_CLIENT = 300
REFUSED, DROPPED = "refused", "dropped"

pytestmark = pytest.mark.slow


class Outcomes:
    """What became of each request, and in which order things happened (a counter, not a clock): when each
    request was sent, and when its outcome came."""

    def __init__(self) -> None:
        self.by_id: dict[str, int | str] = {}
        self.sent: dict[str, int] = {}
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            return next(self._ticks)

    def send(self, request_id: str) -> None:
        with self._lock:
            self.sent[request_id] = next(self._ticks)

    def record(self, request_id: str, outcome: int | str) -> None:
        with self._lock:
            self.by_id[request_id] = outcome


def post_once(port: int, body: bytes, outcomes: Outcomes, tls: ssl.SSLContext | None) -> int | str:
    """One request on its own connection; its status, REFUSED before a connection, DROPPED after one."""
    request_id = uuid.uuid4().hex
    if tls:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=tls)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.connect()
    except ConnectionRefusedError:
        return REFUSED
    except OSError:  # accepted by the kernel, and closed in the TLS handshake: never reached a request
        return REFUSED
    outcomes.send(request_id)
    try:
        headers = {"Content-Type": "image/jpeg", "X-Request-ID": request_id}
        connection.request("POST", "/v1/nose", body=body, headers=headers)
        outcome: int | str = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        outcome = DROPPED
    finally:
        connection.close()
    outcomes.record(request_id, outcome)
    return outcome


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sigterm_drains_readiness_first_and_answers_every_accepted_connection(scheme, tmp_path, face_jpeg):
    flags = ["--workers", "2", "--drain-delay", "2", "--log-level", "DEBUG", "--body-timeout", "30"]
    tls, ca_file = None, None
    if scheme == "https":
        ca_file, key = make_certificate(tmp_path)
        flags += ["--certfile", str(ca_file), "--keyfile", str(key)]
        tls = ssl.create_default_context(cafile=str(ca_file))
    server = LiveServer(tmp_path, *flags, ca_file=ca_file)
    verify = str(ca_file) if ca_file else True
    outcomes = Outcomes()
    load_running = threading.Barrier(CLIENTS + 1)

    def client() -> None:
        load_running.wait()
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if post_once(server.port, face_jpeg, outcomes, tls) == REFUSED:
                return

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    load_running.wait()
    while len(outcomes.by_id) < 2 * CLIENTS:  # the load is under way
        threading.Event().wait(0.05)
    server.process.send_signal(signal.SIGTERM)
    readiness = 200
    while readiness == 200:
        readiness = requests.get(server.url + "/readyz", timeout=10, verify=verify).status_code
    not_ready_at = outcomes.tick()
    exit_code = server.process.wait(timeout=60)
    for thread in threads:
        thread.join(timeout=60)
    server.stop()

    arrived = set(re.findall(r"POST /v1/nose arrived request_id=(\w+)", server.log_file.read_text()))
    # Sent after readiness had turned, and still answered: the drain kept serving.
    answered_after_not_ready = [
        request_id
        for request_id, outcome in outcomes.by_id.items()
        if outcome == 200 and outcomes.sent[request_id] > not_ready_at
    ]
    assert exit_code == 0
    assert readiness == 503
    assert answered_after_not_ready, "the server stopped serving as soon as it turned not ready"
    # Every client gave up on a refused connection: the listener did close while they were still sending.
    assert all(not thread.is_alive() for thread in threads)
    assert DROPPED not in outcomes.by_id.values(), "an accepted connection was closed without an answer"
    assert arrived <= set(outcomes.by_id)
    assert {request_id: outcomes.by_id[request_id] for request_id in arrived} == dict.fromkeys(arrived, 200)


def test_sigterm_closes_busy_streams_with_1001_and_exits_without_waiting_for_them(tmp_path, face_jpeg):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    server = LiveServer(tmp_path, "--workers", "1", "--threads", "1", "--timeout", "30")
    url = server.url.replace("http://", "ws://") + "/v1/track"
    with connect(url, compression=None, max_size=None) as websocket:
        for _ in range(4):  # more in flight than run and wait: the stream always has a frame waiting
            websocket.send(face_jpeg)
        stop = threading.Timer(1.0, server.process.terminate)
        stop.start()
        try:
            for _ in range(5000):
                websocket.recv(timeout=10)
                websocket.send(face_jpeg)
            raise AssertionError("the stream stayed open after SIGTERM")
        except ConnectionClosed as closed:
            assert (closed.rcvd.code, closed.rcvd.reason) == (1001, "The server is shutting down.")
    exit_code = server.process.wait(timeout=60)
    server.stop()
    assert exit_code == 0
    # The worker closed the stream itself (1001), not uvicorn at the end of its grace period (1012).
    assert re.search(r"WS /v1/track closed 1001 ", server.log_file.read_text())
