"""Slow clients (slowloris) cost a socket each, never a thread: the server answers others while they trickle,
and each of them gets its 408 once the deadline passes. The same over TLS, where a client may also stall in
its handshake."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from certificates import make_certificate
from conftest import LiveServer

SLOW_BODIES = 48
SLOW_HEADS = 16
STALLED_HANDSHAKES = 32
BODY_TIMEOUT = 6
TRICKLE_SECONDS = 1.0
BODY_HEAD = b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
PARTIAL_HEAD = b"POST /v1/nose HTTP/1.1\r\nHost: x\r\n"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["http", "https"])
def three_thread_server(request, tmp_path_factory):
    """One worker with 1 model and no queue: 3 request threads in all, far fewer than the slow clients."""
    folder = tmp_path_factory.mktemp("slow")
    tls: tuple[str, ...] = ()
    certificate = None
    if request.param == "https":
        certificate, key = make_certificate(folder)
        tls = ("--certfile", str(certificate), "--keyfile", str(key))
    server = LiveServer(
        folder,
        *("--workers", "1", "--model-instances", "1", "--max-queue", "0"),
        *("--body-timeout", str(BODY_TIMEOUT), *tls),
        ca_file=certificate,
    )
    server.tls = ssl.create_default_context(cafile=certificate) if certificate else None
    yield server
    server.stop()


def trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """One more byte on every socket each TRICKLE_SECONDS: slow, but never silent. (A header line that
    never ends, for the clients still sending their head.)"""
    while not stop.wait(TRICKLE_SECONDS):
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.send(b"x")


def open_slow_client(server: LiveServer, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT + 30)
    if server.tls:
        sock = server.tls.wrap_socket(sock, server_hostname="127.0.0.1")
    sock.sendall(head)
    return sock


def stall_in_handshake(server: LiveServer) -> socket.socket:
    """A TCP connection that sends the first bytes of a TLS handshake, then nothing."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT + 30)
    sock.sendall(b"\x16\x03\x01\x02\x00\x01")
    return sock


def answer_of(sock: socket.socket) -> tuple[float, int, dict]:
    """When the answer's head came (time.monotonic()), its status and its JSON."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return time.monotonic(), response.status, json.loads(response.read())


def test_slow_clients_hold_no_thread_that_others_need(three_thread_server, face_jpeg):
    server = three_thread_server
    slow = [open_slow_client(server, BODY_HEAD) for _ in range(SLOW_BODIES)]
    slow += [open_slow_client(server, PARTIAL_HEAD + b"X-Slow: ") for _ in range(SLOW_HEADS)]
    stalled = [stall_in_handshake(server) for _ in range(STALLED_HANDSHAKES if server.tls else 0)]
    stop = threading.Event()
    trickler = threading.Thread(target=trickle, args=(slow, stop))
    trickler.start()
    waiting = ThreadPoolExecutor(len(slow))
    answers = [waiting.submit(answer_of, sock) for sock in slow]
    try:
        verify = str(server.ca_file) if server.ca_file else True
        health = requests.get(server.url + "/healthz", timeout=BODY_TIMEOUT, verify=verify)
        prediction = requests.post(
            server.url + "/v1/nose",
            data=face_jpeg,
            headers={"Content-Type": "image/jpeg"},
            timeout=30,
            verify=verify,
        )
        others_answered_at = time.monotonic()
        slow_answers = [answer.result() for answer in answers]
    finally:
        stop.set()
        trickler.join()
        waiting.shutdown(wait=False, cancel_futures=True)
        for sock in slow + stalled:
            sock.close()
    assert health.status_code == 200
    assert prediction.status_code == 200 and prediction.json()["detected"]
    # Both were answered while every slow client still waited: none held a thread the others needed.
    assert all(answered_at > others_answered_at for answered_at, _, _ in slow_answers)
    assert {(status, body["error"]["code"]) for _, status, body in slow_answers} == {(408, "request_timeout")}


def test_a_client_that_sends_nothing_is_closed_without_an_answer(three_thread_server):
    with socket.create_connection(("127.0.0.1", three_thread_server.port), timeout=BODY_TIMEOUT + 30) as sock:
        assert sock.recv(100) == b""
