"""What nosetrack's worker promises a socket handler (a WebSocket route): a thread of its own, the connection
blocking and without a deadline for as long as the session lasts, and request threads left free meanwhile."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path
from typing import BinaryIO

import pytest
import requests

from nosetrack.launcher import ServerProcess

SOCKET_APP = Path(__file__).parent / "fixtures" / "socket_app.py"
SESSIONS = 6  # more than the app's 2 request threads
UPGRADE = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

pytestmark = pytest.mark.slow


def answers(url: str) -> bool:
    return requests.get(url + "/", timeout=2).status_code == 200


@pytest.fixture
def socket_app(tmp_path):
    command = [sys.executable, str(SOCKET_APP)]
    server = ServerProcess(lambda port: [*command, str(port)], tmp_path / "out", answers)
    yield server
    server.stop()


def open_session(port: int) -> tuple[socket.socket, BinaryIO]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(UPGRADE)
    lines = sock.makefile("rb")
    assert lines.readline() == b"HTTP/1.1 101 Switching Protocols\r\n"
    while lines.readline() != b"\r\n":
        pass
    return sock, lines


def test_socket_sessions_run_on_their_own_threads_past_the_body_deadline(socket_app):
    sessions = [open_session(socket_app.port) for _ in range(SESSIONS)]
    try:
        reports = [lines.readline() for _, lines in sessions]
        # The app's request threads are all still free for plain requests.
        plain = requests.get(socket_app.url + "/", timeout=10).text
        time.sleep(1.5)  # past the app's 1 s body deadline: a session has none
        for index, (sock, lines) in enumerate(sessions):
            sock.sendall(f"hello {index}\n".encode())
            assert lines.readline() == f"hello {index}\n".encode()
        for sock, lines in sessions:
            sock.sendall(b"bye\n")
            assert lines.read() == b""  # the worker closed the socket once the handler was done
    finally:
        for sock, lines in sessions:
            lines.close()
            sock.close()
    assert set(reports) == {b"nosetrack-socket timeout=None\n"}
    assert plain.startswith("nosetrack-request") and plain.endswith("stopping=False")


def test_sigterm_sets_the_stopping_event_while_requests_are_still_served(socket_app):
    socket_app.process.send_signal(signal.SIGTERM)
    # The app's drain delay is 1 s: requests are still answered meanwhile, and soon see the event set.
    seen = ""
    while not seen.endswith("stopping=True"):
        seen = requests.get(socket_app.url + "/", timeout=10).text  # a ConnectionError once it closed
    assert socket_app.process.wait(timeout=30) == 0
