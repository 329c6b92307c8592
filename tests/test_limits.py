"""Bounded work: a full worker refuses at once with 503, a slow body gets 408, and both leave it serving."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import cv2
import pytest
import requests
from conftest import LiveServer, encode

from nosetrack.config import Settings
from nosetrack.images import CheckedImage
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app

SLOW_SECONDS = 0.4


class SlowModel:
    """The real model behind a fixed delay, so a test can hold every model busy for a known time."""

    def __init__(self, model) -> None:
        self._model = model
        self.info = model.info

    def predict(self, image):
        time.sleep(SLOW_SECONDS)
        return self._model.predict(image)


@pytest.fixture(scope="module")
def slow_pool(model):
    return ModelPool(lambda: SlowModel(model), size=1)


def slow_app(slow_pool, **settings):
    return create_app(Settings(log_file="", model_instances=1, **settings), pools=[slow_pool])


def post_together(app, body: bytes, count: int) -> list[tuple[int, float, dict]]:
    """`count` requests released at the same instant; each gives (status, finish time, headers)."""
    barrier = threading.Barrier(count)
    results: list[tuple[int, float, dict]] = []

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/v1/nose", data=body, content_type="image/jpeg")
        results.append((response.status_code, time.monotonic(), dict(response.headers)))

    threads = [threading.Thread(target=post) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def post_in_background(app, body: bytes) -> threading.Thread:
    """One request posted from a started thread, for a test that looks at the app meanwhile."""
    thread = threading.Thread(
        target=lambda: app.test_client().post("/v1/nose", data=body, content_type="image/jpeg")
    )
    thread.start()
    return thread


def test_a_full_worker_refuses_the_excess_with_503_before_serving_the_rest(slow_pool, face_jpeg):
    results = post_together(slow_app(slow_pool, max_queue=1), face_jpeg, count=5)
    served = [finished for status, finished, _ in results if status == 200]
    refused = [(finished, headers) for status, finished, headers in results if status == 503]
    # One runs, one waits for the model; the other three are refused without waiting for either.
    assert len(served) == 2 and len(refused) == 3
    assert all(finished < min(served) for finished, _ in refused)
    assert all(headers["Retry-After"] == "1" for _, headers in refused)


def test_a_bad_upload_is_refused_at_once_while_every_model_is_busy(slow_pool, face_jpeg):
    app = slow_app(slow_pool)
    busy = post_in_background(app, face_jpeg)
    time.sleep(SLOW_SECONDS / 4)  # the model is now taken
    started = time.monotonic()
    response = app.test_client().post("/v1/nose", data=face_jpeg[:-100], content_type="image/jpeg")
    waited = time.monotonic() - started
    busy.join(timeout=10)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_image"
    assert waited < SLOW_SECONDS / 2


def test_a_waiting_request_is_decoded_only_when_its_model_is_free(slow_pool, face_jpeg, monkeypatch):
    decodes = []
    decode = CheckedImage.decode
    monkeypatch.setattr(CheckedImage, "decode", lambda self, *args: decodes.append(1) or decode(self, *args))
    app = slow_app(slow_pool)
    posts = [post_in_background(app, face_jpeg) for _ in range(2)]
    time.sleep(SLOW_SECONDS / 2)  # one runs, the other waits for the model
    decoded_meanwhile = len(decodes)
    for post in posts:
        post.join(timeout=10)
    assert decoded_meanwhile == 1
    assert len(decodes) == 2


def test_a_request_waits_at_most_the_queue_timeout_for_a_model(slow_pool, face_jpeg):
    app = slow_app(slow_pool, max_queue=4, queue_timeout=0.05)
    results = post_together(app, face_jpeg, count=3)
    assert sorted(status for status, _, _ in results) == [200, 503, 503]
    response = app.test_client().get("/metrics")
    assert b'nosetrack_errors_total{code="overloaded",route="/v1/nose"}' in response.data


@pytest.fixture(scope="module")
def one_model_server(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("limits"),
        *("--workers", "1", "--threads", "1", "--max-queue", "0", "--body-timeout", "1"),
    )
    yield server
    server.stop()


def test_overload_over_http_is_answered_503_not_queued(one_model_server, astronaut_bgr):
    big = encode(cv2.resize(astronaut_bgr, (2048, 2048)))
    barrier = threading.Barrier(12)
    statuses: list[int] = []

    def post() -> None:
        barrier.wait()
        response = requests.post(
            one_model_server.url + "/v1/nose", data=big, headers={"Content-Type": "image/jpeg"}, timeout=30
        )
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "overloaded"

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == 12
    assert set(statuses) == {200, 503}


def test_a_stalled_body_gets_408_and_frees_the_thread(one_model_server, face_jpeg):
    with socket.create_connection(("127.0.0.1", one_model_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            + f"Content-Length: {len(face_jpeg)}\r\n\r\n".encode()
            + face_jpeg[:100]
        )
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 408
        assert json.loads(answer.read())["error"]["code"] == "request_timeout"
    response = requests.post(
        one_model_server.url + "/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=10
    )
    assert response.status_code == 200


def test_the_in_flight_gauge_counts_a_running_prediction(slow_pool, face_jpeg):
    app = slow_app(slow_pool)
    worker = post_in_background(app, face_jpeg)
    deadline = time.monotonic() + 10
    seen = b""
    while worker.is_alive() and time.monotonic() < deadline and b"in_flight 1.0" not in seen:
        seen = app.test_client().get("/metrics").data
    worker.join(timeout=10)
    assert b"nosetrack_predictions_in_flight 1.0" in seen
    assert b"nosetrack_predictions_in_flight 0.0" in app.test_client().get("/metrics").data
