"""Slow clients (slowloris) cost a socket each, never a thread: the server answers others while they trickle,
and each of them gets its 408 once the deadline passes."""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import threading

import pytest
import requests
from conftest import LiveServer

SLOW_BODIES = 48
SLOW_HEADS = 16
BODY_TIMEOUT = 6
TRICKLE_SECONDS = 1.0
BODY_HEAD = b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
PARTIAL_HEAD = b"POST /v1/nose HTTP/1.1\r\nHost: x\r\n"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def three_thread_server(tmp_path_factory):
    """One worker with 1 model and no queue: 3 request threads in all, far fewer than the slow clients."""
    server = LiveServer(
        tmp_path_factory.mktemp("slow"),
        *("--workers", "1", "--model-instances", "1", "--max-queue", "0"),
        *("--body-timeout", str(BODY_TIMEOUT)),
    )
    yield server
    server.stop()


def trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """One more byte on every socket each TRICKLE_SECONDS: slow, but never silent. (A header line that
    never ends, for the clients still sending their head.)"""
    while not stop.wait(TRICKLE_SECONDS):
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.send(b"x")


def open_slow_client(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + 30)
    sock.sendall(head)
    return sock


def has_answer(sock: socket.socket) -> bool:
    """Whether anything came back yet, without waiting (a socket with a timeout would wait in recv)."""
    return bool(select.select([sock], [], [], 0)[0])


def answer_of(sock: socket.socket) -> tuple[int, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def test_slow_clients_hold_no_thread_that_others_need(three_thread_server, face_jpeg):
    server = three_thread_server
    slow = [open_slow_client(server.port, BODY_HEAD) for _ in range(SLOW_BODIES)]
    slow += [open_slow_client(server.port, PARTIAL_HEAD + b"X-Slow: ") for _ in range(SLOW_HEADS)]
    stop = threading.Event()
    trickler = threading.Thread(target=trickle, args=(slow, stop))
    trickler.start()
    try:
        health = requests.get(server.url + "/healthz", timeout=BODY_TIMEOUT)
        prediction = requests.post(
            server.url + "/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30
        )
        answered_before_deadline = [has_answer(sock) for sock in slow]
        answers = [answer_of(sock) for sock in slow]
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()
    assert health.status_code == 200
    assert prediction.status_code == 200 and prediction.json()["detected"]
    # Both were answered while every slow client still waited: none held a thread the others needed.
    assert not any(answered_before_deadline)
    assert {(status, body["error"]["code"]) for status, body in answers} == {(408, "request_timeout")}


def test_a_client_that_sends_nothing_is_closed_without_an_answer(three_thread_server):
    with socket.create_connection(("127.0.0.1", three_thread_server.port), timeout=BODY_TIMEOUT + 30) as sock:
        assert sock.recv(100) == b""
