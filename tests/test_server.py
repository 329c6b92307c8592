"""End to end: `nosetrack serve` under gunicorn on 127.0.0.1, called over HTTP as the seed's client does."""

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import requests
from conftest import encode, wait_for

from nosetrack.answer import prediction_answer
from nosetrack.predictor import predict_bytes


def varied_images(astronaut_bgr) -> list[bytes]:
    """Different photographs with different answers: shifted and mirrored faces, and no face."""
    images = []
    for shift in range(0, 120, 15):
        canvas = np.full((640, 700, 3), 60, np.uint8)
        canvas[shift : shift + 512, shift : shift + 512] = astronaut_bgr
        images.append(encode(canvas))
        images.append(encode(cv2.flip(canvas, 1)))
    images.append(encode(np.full((300, 300, 3), 200, np.uint8)))
    return images


def test_seed_client_gets_x_and_y(live_server, face_jpeg):
    # The seed's own calls, unchanged.
    b64 = requests.post(live_server.url + "/image-64", json={"image": base64.b64encode(face_jpeg).decode()})
    binary = requests.post(live_server.url + "/image-bin", files={"image": face_jpeg})
    assert b64.status_code == binary.status_code == 200
    assert b64.json()["x"] == binary.json()["x"]
    assert 0 < b64.json()["y"] < 1


def send_image_bin(url: str, image: bytes) -> dict:
    return requests.post(url + "/image-bin", files={"image": image}, timeout=30).json()


def send_image_64(url: str, image: bytes) -> dict:
    body = {"image": base64.b64encode(image).decode()}
    return requests.post(url + "/image-64", json=body, timeout=30).json()


def send_raw(url: str, image: bytes) -> dict:
    headers = {"Content-Type": "image/jpeg"}
    return requests.post(url + "/v1/nose", data=image, headers=headers, timeout=30).json()


def send_v2(url: str, image: bytes) -> dict:
    """The Open Inference Protocol's answer, as the part of the seed's answer it carries: x, y, detected."""
    tensor = {"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(image).decode()]}
    answer = requests.post(url + "/v2/models/nosetrack-facemesh/infer", json={"inputs": [tensor]}, timeout=30)
    values = {output["name"]: output["data"] for output in answer.json()["outputs"]}
    detected = values["DETECTED"][0]
    x, y = values["NOSE"] if detected else (None, None)
    return {"x": x, "y": y, "detected": detected}


def same_answer(got: dict, expected: dict) -> bool:
    """/v2 sends float32: equal to that precision; the JSON routes send the very same numbers."""
    if got["detected"] != expected["detected"]:
        return False
    if not got["detected"]:
        return got["x"] is None and got["y"] is None
    return abs(got["x"] - expected["x"]) < 1e-6 and abs(got["y"] - expected["y"]) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("send", [send_image_bin, send_image_64, send_raw, send_v2], ids=lambda f: f.__name__)
def test_concurrent_requests_never_mix_answers(live_server, astronaut_bgr, model, send):
    images = varied_images(astronaut_bgr)
    expected = [prediction_answer(predict_bytes(model, data)) for data in images]
    jobs = [i % len(images) for i in range(4 * len(images))]
    with ThreadPoolExecutor(max_workers=16) as executor:
        answers = list(executor.map(lambda index: (index, send(live_server.url, images[index])), jobs))
    mixed = [index for index, answer in answers if not same_answer(answer, expected[index])]
    assert len(answers) == len(jobs)
    assert mixed == []
    assert len({(e["x"], e["y"]) for e in expected}) > len(images) // 2


def test_counters_add_up_across_workers(live_server, face_jpeg):
    before = requests.get(live_server.url + "/api/stats").json()["requests"].get("/v1/nose", {}).get("200", 0)
    with requests.Session() as session:
        for _ in range(20):
            # A fresh connection each time, so gunicorn spreads the requests over its workers.
            response = requests.post(
                live_server.url + "/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}
            )
            assert response.status_code == 200
        stats = session.get(live_server.url + "/api/stats").json()
    assert stats["requests"]["/v1/nose"]["200"] == before + 20
    assert stats["workers"] == 2


def test_bad_input_leaves_the_worker_serving(live_server, face_jpeg):
    bad_bodies = [b"", b"garbage", face_jpeg[:500], b"\xff\xd8\xff" + bytes(1000)]
    for body in bad_bodies:
        response = requests.post(live_server.url + "/image-bin", files={"image": body})
        assert 400 <= response.status_code < 500
        assert "error" in response.json()
    assert requests.post(live_server.url + "/image-bin", files={"image": face_jpeg}).json()["detected"]


def test_log_file_has_a_line_per_request_with_id_and_latency(live_server):
    request_id = "find-me-123"
    requests.get(live_server.url + "/healthz", headers={"X-Request-ID": request_id})
    wait_for(lambda: request_id in live_server.log_file.read_text(), "the log line")
    lines = [line for line in live_server.log_file.read_text().splitlines() if request_id in line]
    assert len(lines) == 1
    assert " - nosetrack - INFO - GET /healthz 200 " in lines[0]
    assert " ms request_id=find-me-123" in lines[0]


def test_a_log_file_moved_away_by_logrotate_is_started_anew_by_every_worker(live_server):
    requests.get(live_server.url + "/healthz", headers={"X-Request-ID": "before-the-move"})
    wait_for(lambda: "before-the-move" in live_server.log_file.read_text(), "the log line")
    moved = live_server.log_file.with_name("webserver.log.1")
    live_server.log_file.rename(moved)
    for number in range(10):  # enough to reach both workers
        requests.get(live_server.url + "/healthz", headers={"X-Request-ID": f"after-the-move-{number}"})
    lines = [f"request_id=after-the-move-{number}\n" for number in range(10)]
    wait_for(lambda: all(line in live_server.log_file.read_text() for line in lines), "ten log lines")
    assert "before-the-move" in moved.read_text() and "after-the-move" not in moved.read_text()


def test_big_body_is_413_over_http(live_server):
    response = requests.post(
        live_server.url + "/v1/nose",
        data=b"\xff\xd8\xff" + bytes(21 * 1024 * 1024),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_entity_too_large"


def test_timeline_adds_up_across_workers(live_server, face_jpeg):
    def totals() -> tuple[int, int]:
        series = requests.get(live_server.url + "/api/stats").json()["timeline"]["series"]
        return sum(series["requests"]), sum(series["errors"])

    time.sleep(1.1)  # the timeline shows complete seconds only: let earlier requests' second complete
    before = totals()
    for _ in range(20):
        response = requests.post(
            live_server.url + "/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}
        )
        assert response.status_code == 200
    for _ in range(3):
        requests.post(live_server.url + "/v1/nose", data=b"?", headers={"Content-Type": "text/plain"})
    wait_for(lambda: totals()[0] >= before[0] + 23, "the timeline's seconds to complete")
    after = totals()
    assert (after[0] - before[0], after[1] - before[1]) == (23, 3)
