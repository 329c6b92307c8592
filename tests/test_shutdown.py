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
import threading
import time
import uuid

import pytest
import requests
from conftest import LiveServer

CLIENTS = 16
MAX_REQUESTS_PER_CLIENT = 300
REFUSED, DROPPED = "refused", "dropped"

pytestmark = pytest.mark.slow


class Outcomes:
    """What became of each request, and in which order things happened (a counter, not a clock)."""

    def __init__(self) -> None:
        self.by_id: dict[str, int | str] = {}
        self.order: dict[str, int] = {}
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            return next(self._ticks)

    def record(self, request_id: str, outcome: int | str) -> None:
        with self._lock:
            self.by_id[request_id] = outcome
            self.order[request_id] = next(self._ticks)


def post_once(port: int, body: bytes, outcomes: Outcomes) -> int | str:
    """One request on its own connection; its status, REFUSED before a connection, DROPPED after one."""
    request_id = uuid.uuid4().hex
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.connect()
    except ConnectionRefusedError:
        return REFUSED
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


def test_sigterm_drains_readiness_first_and_answers_every_accepted_connection(tmp_path, face_jpeg):
    server = LiveServer(
        tmp_path, *("--workers", "2", "--drain-delay", "2", "--log-level", "DEBUG", "--body-timeout", "30")
    )
    outcomes = Outcomes()
    load_running = threading.Barrier(CLIENTS + 1)

    def client() -> None:
        load_running.wait()
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if post_once(server.port, face_jpeg, outcomes) == REFUSED:
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
        readiness = requests.get(server.url + "/readyz", timeout=10).status_code
    not_ready_at = outcomes.tick()
    exit_code = server.process.wait(timeout=60)
    for thread in threads:
        thread.join(timeout=60)
    server.stop()

    arrived = set(re.findall(r"POST /v1/nose arrived request_id=(\w+)", server.log_file.read_text()))
    answered_after_not_ready = [
        request_id
        for request_id, outcome in outcomes.by_id.items()
        if outcome == 200 and outcomes.order[request_id] > not_ready_at
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
    signalled = []
    with connect(url, compression=None, max_size=None) as websocket:
        for _ in range(4):  # more in flight than run and wait: the stream always has a frame waiting
            websocket.send(face_jpeg)
        stop = threading.Timer(1.0, lambda: (signalled.append(time.monotonic()), server.process.terminate()))
        stop.start()
        try:
            for _ in range(5000):
                websocket.recv(timeout=10)
                websocket.send(face_jpeg)
            raise AssertionError("the stream stayed open after SIGTERM")
        except ConnectionClosed as closed:
            assert (closed.rcvd.code, closed.rcvd.reason) == (1001, "The server is shutting down.")
    exit_code = server.process.wait(timeout=30)
    server.stop()
    assert exit_code == 0
    assert time.monotonic() - signalled[0] < 10, "the worker waited for the stream instead of closing it"
