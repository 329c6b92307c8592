"""Bounded work: a full worker refuses at once with 503, a slow body gets 408, and both leave it serving."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading

import cv2
import pytest
import requests
from conftest import WAIT_SECONDS, LiveServer, encode, wait_for

from nosetrack.config import Settings
from nosetrack.images import CheckedImage
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app


class HeldModel:
    """The real model, held inside `predict` (once `hold` is called) until the test lets it go: the test
    decides when it is busy."""

    def __init__(self, model) -> None:
        self._model = model
        self.info = model.info
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()
        self.go.set()  # the app's warm-up passes through

    def hold(self) -> None:
        self.go.clear()

    def predict(self, image):
        if not self.go.is_set():
            self.entered.release()
            assert self.go.wait(WAIT_SECONDS)
        return self._model.predict(image)

    def wait_until_busy(self) -> None:
        assert self.entered.acquire(timeout=WAIT_SECONDS), "no request reached the model"


@pytest.fixture
def held(model):
    held = HeldModel(model)
    yield held
    held.go.set()  # never leave a request thread waiting


def held_app(held, **settings):
    app = create_app(Settings(log_file="", model_instances=1, **settings), pools=[ModelPool(lambda: held, 1)])
    held.hold()
    return app


class Posts:
    """Requests posted from their own threads; their answers collected for the test's thread to check."""

    def __init__(self, app, body: bytes, count: int) -> None:
        self.answers: list[tuple[int, dict, dict]] = []  # status, headers, JSON body
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._post, args=(app, body)) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _post(self, app, body: bytes) -> None:
        response = app.test_client().post("/v1/nose", data=body, content_type="image/jpeg")
        with self._lock:
            self.answers.append((response.status_code, dict(response.headers), response.get_json()))

    def join(self) -> list[int]:
        for thread in self.threads:
            thread.join(timeout=WAIT_SECONDS)
        return sorted(status for status, _, _ in self.answers)


def in_flight(app) -> str:
    metrics = app.test_client().get("/metrics").data.decode()
    return re.search(r"^nosetrack_predictions_in_flight (\S+)$", metrics, re.MULTILINE).group(1)


def test_a_full_worker_refuses_the_excess_with_503_while_its_model_is_busy(held, face_jpeg):
    posts = Posts(held_app(held, max_queue=1), face_jpeg, count=5)
    held.wait_until_busy()
    # One runs, one waits for the model; the other three are refused without waiting for either.
    wait_for(lambda: len(posts.answers) == 3, "three answers")
    refused = list(posts.answers)
    held.go.set()
    assert posts.join() == [200, 200, 503, 503, 503]
    assert [status for status, _, _ in refused] == [503, 503, 503]
    assert all(headers["Retry-After"] == "1" for _, headers, _ in refused)
    assert all(body["error"]["code"] == "overloaded" for _, _, body in refused)


def test_a_bad_upload_is_refused_at_once_while_every_model_is_busy(held, face_jpeg):
    app = held_app(held)
    busy = Posts(app, face_jpeg, count=1)
    held.wait_until_busy()
    response = app.test_client().post("/v1/nose", data=face_jpeg[:-100], content_type="image/jpeg")
    answered_while_busy = not busy.answers
    held.go.set()
    assert busy.join() == [200]
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_image"
    assert answered_while_busy


def test_a_waiting_request_is_decoded_only_when_its_model_is_free(held, face_jpeg, monkeypatch):
    decodes = []
    decode = CheckedImage.decode
    monkeypatch.setattr(CheckedImage, "decode", lambda self, *args: decodes.append(1) or decode(self, *args))
    app = held_app(held)
    posts = Posts(app, face_jpeg, count=2)
    held.wait_until_busy()
    wait_for(lambda: in_flight(app) == "2.0", "the second request to wait for the model")
    decoded_while_waiting = len(decodes)
    held.go.set()
    assert posts.join() == [200, 200]
    assert decoded_while_waiting == 1
    assert len(decodes) == 2


def test_a_request_waits_at_most_the_queue_timeout_for_a_model(held, face_jpeg):
    app = held_app(held, max_queue=4, queue_timeout=0.05)
    posts = Posts(app, face_jpeg, count=3)
    held.wait_until_busy()
    wait_for(lambda: len(posts.answers) == 2, "the two waiting requests to give up")
    held.go.set()
    assert posts.join() == [200, 503, 503]
    response = app.test_client().get("/metrics")
    assert b'nosetrack_errors_total{code="overloaded",route="/v1/nose"}' in response.data


def test_the_in_flight_gauge_counts_a_running_prediction(held, face_jpeg):
    app = held_app(held)
    running = Posts(app, face_jpeg, count=1)
    held.wait_until_busy()
    while_running = in_flight(app)
    held.go.set()
    assert running.join() == [200]
    assert while_running == "1.0"
    assert in_flight(app) == "0.0"


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
    answers: list[requests.Response] = []

    def post() -> None:
        barrier.wait()
        answers.append(
            requests.post(
                one_model_server.url + "/v1/nose",
                data=big,
                headers={"Content-Type": "image/jpeg"},
                timeout=30,
            )
        )

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 12
    assert {answer.status_code for answer in answers} == {200, 503}
    refused = [answer for answer in answers if answer.status_code == 503]
    assert all(answer.json()["error"]["code"] == "overloaded" for answer in refused)
    assert all(answer.headers["Retry-After"] == "1" for answer in refused)


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
