"""Graceful shutdown: on SIGTERM the server stops accepting, answers every request it accepted, and exits."""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from datetime import datetime

import requests
from conftest import LiveServer

CLIENTS = 8
MAX_REQUESTS_PER_CLIENT = 200


def test_sigterm_under_load_answers_every_accepted_request(tmp_path, face_jpeg):
    server = LiveServer(tmp_path, "--workers", "2", "--threads", "2")
    outcomes: dict[str, int | str] = {}  # request id -> status, or the exception's name
    lock = threading.Lock()

    def client() -> None:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            request_id = uuid.uuid4().hex
            try:
                response = requests.post(
                    server.url + "/v1/nose",
                    data=face_jpeg,
                    headers={"Content-Type": "image/jpeg", "X-Request-ID": request_id, "Connection": "close"},
                    timeout=30,
                )
                outcome: int | str = response.status_code
            except requests.RequestException as error:
                outcome = type(error).__name__
            with lock:
                outcomes[request_id] = outcome
            if server.process.poll() is not None:
                return

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    signalled_at = datetime.now()
    server.process.send_signal(signal.SIGTERM)
    exit_code = server.process.wait(timeout=45)
    for thread in threads:
        thread.join(timeout=60)

    log = server.log_file.read_text()
    handled = set(re.findall(r"POST /v1/nose \d+ [\d.]+ ms request_id=(\w+)", log))
    answered_at = [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        for stamp in re.findall(r"^(\S+ \S+) - .* POST /v1/nose 200 ", log, flags=re.MULTILINE)
    ]
    assert exit_code == 0
    assert sum(outcome == 200 for outcome in outcomes.values()) >= CLIENTS
    # Every request the app took reached its client as a 200; the others were refused before being taken.
    assert handled <= set(outcomes)
    assert {request_id: outcomes[request_id] for request_id in handled if outcomes[request_id] != 200} == {}
    assert all(outcome == 200 or isinstance(outcome, str) for outcome in outcomes.values())
    assert any(isinstance(outcome, str) for outcome in outcomes.values()), "no request came after SIGTERM"
    assert max(answered_at) > signalled_at, "no request was in flight at SIGTERM"


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
