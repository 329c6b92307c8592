"""nosetrack on a real two-node Ray cluster on this machine: a head and a second node, each a separate set of
Ray processes with one CPU (`ray.cluster_utils.Cluster`, as Ray's own tests do), 2 replicas of 1 CPU.

Slow (about a minute: the cluster, two replicas loading their models); skipped without the `ray` extra.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import threading

import pytest
import requests
from conftest import encode, free_port

pytest.importorskip("ray.serve")
pytest.importorskip("a2wsgi")

import ray
from ray import serve
from ray.cluster_utils import Cluster
from ray.serve.context import _get_global_client

from nosetrack.answer import prediction_answer
from nosetrack.cluster.deployment import application
from nosetrack.config import Settings
from nosetrack.models import load_model
from nosetrack.pool import ModelPool
from nosetrack.predictor import predict_bytes
from nosetrack.server.app import create_app

pytestmark = pytest.mark.slow

KEY = "cluster-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# One model and one waiting place per replica, so that a short burst overflows them; a body limit that the
# test photos pass and a padded body does not.
SETTINGS = Settings(
    log_file="",
    model_instances=1,
    max_queue=1,
    min_replicas=2,
    max_replicas=2,
    api_keys=(KEY,),
    max_body_bytes=2_000_000,
)
# Answers that differ between any two requests, whoever serves them.
PER_REQUEST = ("latency_ms", "request_id")
PHOTOS = 6
TIMEOUT = 60


@pytest.fixture(scope="module")
def cluster_url():
    """The application on a head node and a second node, each with 1 CPU; Serve's proxy on the head."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
        serve.run(application(SETTINGS), name="nosetrack", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def one_machine():
    """The single-machine app with the same settings, in process: what every answer must equal."""
    return create_app(SETTINGS, pool=ModelPool(load_model, 1)).test_client()


def replica_nodes() -> list[str]:
    """The node of each running nosetrack replica, as Serve's controller (and its dashboard) reports it."""
    details = ray.get(_get_global_client()._controller.get_serve_instance_details.remote())
    replicas = details["applications"]["nosetrack"]["deployments"]["nosetrack"]["replicas"]
    return [replica["node_id"] for replica in replicas if replica["state"] == "RUNNING"]


def without_per_request(answer: dict) -> dict:
    return {key: value for key, value in answer.items() if key not in PER_REQUEST}


def test_the_two_replicas_run_on_both_nodes(cluster_url):
    nodes = replica_nodes()
    assert len(nodes) == 2
    assert set(nodes) == {node["NodeID"] for node in ray.nodes() if node["Alive"]}


def test_photos_get_the_in_process_answer_through_every_seed_route(cluster_url, shared_data, model):
    photos = sorted((shared_data / "images").glob("*.jpg"))[:PHOTOS]
    senders = [
        lambda data: {"data": data, "headers": {**AUTH, "Content-Type": "image/jpeg"}, "path": "/v1/nose"},
        lambda data: {"files": {"image": ("photo.jpg", data)}, "headers": AUTH, "path": "/image-bin"},
        lambda data: {
            "json": {"image": base64.b64encode(data).decode()},
            "headers": AUTH,
            "path": "/image-64",
        },
    ]
    for index, photo in enumerate(photos):
        data = photo.read_bytes()
        request = senders[index % len(senders)](data)
        response = requests.post(cluster_url + request.pop("path"), timeout=TIMEOUT, **request)
        assert response.status_code == 200, response.text
        expected = prediction_answer(predict_bytes(model, data))
        answer = without_per_request(response.json())
        assert answer.pop("model") == {"name": model.info.name, "version": model.info.version}
        assert answer == expected, photo.name


def hostile_requests(face_jpeg: bytes) -> list[tuple[str, str, dict, bytes]]:
    """(method, path, headers, body): the single-machine tests' bad inputs, plus keys and limits."""
    json_type = {**AUTH, "Content-Type": "application/json"}
    jpeg_type = {**AUTH, "Content-Type": "image/jpeg"}
    form = io.BytesIO()
    form.write(b'--b\r\nContent-Disposition: form-data; name="photo"; filename="f.jpg"\r\n\r\n')
    form.write(face_jpeg + b"\r\n--b--\r\n")
    return [
        ("POST", "/image-64", json_type, b"not json"),
        ("POST", "/image-64", json_type, b"[1, 2]"),
        ("POST", "/image-64", json_type, b"{}"),
        ("POST", "/image-64", json_type, b'{"image": "@@not base64@@"}'),
        ("POST", "/image-64", json_type, json.dumps({"image": base64.b64encode(b"text").decode()}).encode()),
        ("POST", "/image-64", json_type, b'{"image": ""}'),
        ("POST", "/image-bin", {**AUTH, "Content-Type": "multipart/form-data; boundary=b"}, form.getvalue()),
        ("POST", "/image-bin", jpeg_type, face_jpeg),
        ("POST", "/v1/nose", jpeg_type, face_jpeg[: len(face_jpeg) // 2]),
        ("POST", "/v1/nose", jpeg_type, b""),
        ("POST", "/v1/nose", {**AUTH, "Content-Type": "text/plain"}, face_jpeg),
        ("POST", "/v1/nose", jpeg_type, face_jpeg + bytes(SETTINGS.max_body_bytes)),
        ("POST", "/v1/nose", {"Content-Type": "image/jpeg"}, face_jpeg),
        ("POST", "/v1/nose", {"Authorization": "Bearer wrong", "Content-Type": "image/jpeg"}, face_jpeg),
        ("GET", "/metrics", {}, b""),
        ("GET", "/image-64", AUTH, b""),
        ("GET", "/nope", AUTH, b""),
        ("POST", "/v2/models/nosetrack-facemesh/infer", json_type, b'{"inputs": []}'),
        ("POST", "/v2/models/other/infer", json_type, b'{"inputs": []}'),
    ]


def test_bad_requests_get_the_one_machine_status_error_and_headers(cluster_url, one_machine, face_jpeg):
    for method, path, headers, body in hostile_requests(face_jpeg):
        expected = one_machine.open(path, method=method, headers=headers, data=body)
        response = requests.request(method, cluster_url + path, headers=headers, data=body, timeout=TIMEOUT)
        where = f"{method} {path} {headers.get('Content-Type')} ({len(body)} bytes)"
        assert response.status_code == expected.status_code, where
        assert 400 <= response.status_code < 500, where
        request_id = response.headers["X-Request-ID"]
        assert response.json() == with_request_id(expected.get_json(), request_id), where
        assert response.headers.get("WWW-Authenticate") == expected.headers.get("WWW-Authenticate"), where
        assert methods(response.headers) == methods(expected.headers), where


def methods(headers) -> set[str]:
    """The Allow header's methods (their order follows string hashing, so it differs between processes)."""
    return set(filter(None, headers.get("Allow", "").split(", ")))


def with_request_id(answer: dict, request_id: str) -> dict:
    """`answer` as the request `request_id` gets it (/v2's errors are a bare message, without an id)."""
    if isinstance(answer["error"], dict):
        return {"error": {**answer["error"], "request_id": request_id}}
    return answer


def test_health_version_metrics_and_v2_answer_as_on_one_machine(cluster_url, one_machine, face_jpeg):
    for path in ("/healthz", "/readyz", "/version", "/v2", "/v2/models/nosetrack-facemesh"):
        response = requests.get(cluster_url + path, headers=AUTH, timeout=TIMEOUT)
        assert response.status_code == 200, path
        assert response.json() == one_machine.get(path, headers=AUTH).get_json(), path
    metrics = requests.get(cluster_url + "/metrics", headers=AUTH, timeout=TIMEOUT)
    assert metrics.status_code == 200
    assert "nosetrack_requests_total" in metrics.text
    data = struct.pack("<I", len(face_jpeg)) + face_jpeg
    tensor = {
        "name": "IMAGE",
        "datatype": "BYTES",
        "shape": [1],
        "parameters": {"binary_data_size": len(data)},
    }
    header = json.dumps({"id": "r-1", "inputs": [tensor]}).encode()
    headers = {
        **AUTH,
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    answer = requests.post(
        cluster_url + "/v2/models/nosetrack-facemesh/infer",
        data=header + data,
        headers=headers,
        timeout=TIMEOUT,
    )
    expected = one_machine.post("/v2/models/nosetrack-facemesh/infer", data=header + data, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == expected.get_json()


def test_a_burst_beyond_the_replicas_gets_503_with_retry_after_not_a_queue(cluster_url, astronaut_bgr):
    import cv2

    big = encode(cv2.resize(astronaut_bgr, (1400, 1400)))
    clients = 16
    barrier = threading.Barrier(clients)
    answers: list[requests.Response] = []

    def post() -> None:
        barrier.wait(timeout=TIMEOUT)
        headers = {**AUTH, "Content-Type": "image/jpeg"}
        answers.append(requests.post(cluster_url + "/v1/nose", data=big, headers=headers, timeout=TIMEOUT))

    threads = [threading.Thread(target=post) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert len(answers) == clients
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) == {200, 503}, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "1"
            assert answer.json()["error"]["code"] == "overloaded"
        else:
            assert answer.json()["detected"] is True
