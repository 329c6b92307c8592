"""nosetrack on a real two-node Ray cluster on this machine: a head and a second node, each `ray start
--block` with one CPU in a process session of its own (so losing a node is killing its whole session, as a
machine dies), 2 replicas of 1 CPU.

Slow (a few minutes: the cluster, two replicas loading their models, Serve's own autoscaling delays); skipped
without the `ray` extra. Every wait is for a state, bounded generously for a loaded 2-core machine.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import encode

from nosetrack.launcher import free_port

pytest.importorskip("ray.serve")
pytest.importorskip("a2wsgi")

import ray
from ray import serve
from ray.serve.context import _get_global_client

from nosetrack.answer import prediction_answer
from nosetrack.cluster.deployment import application
from nosetrack.config import Settings
from nosetrack.models import load_model
from nosetrack.pool import ModelPool
from nosetrack.predictor import predict_bytes
from nosetrack.server.app import create_app
from nosetrack.server.capacity import capacity

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
# Per request: a replica on a loaded machine can take seconds to answer the first ones.
TIMEOUT = 120


# Bounds on waiting for a state on a loaded 2-core machine, never speeds.
START_SECONDS = 300
SCALE_SECONDS = 180


class RayNode:
    """One node, `ray start --block` with 1 CPU, in a session of its own; its output in `log`. The address
    127.0.0.1:port is the head's; Ray resolves it to the machine's address, where the nodes listen.
    Ray gives a starting raylet 30 s to register (hard-coded); on a loaded machine that can fail, so a node
    that fails so is started again, until START_SECONDS."""

    def __init__(self, folder: Path, ray_tmpdir: str, head_address: str | None = None) -> None:
        self.log = folder / f"ray-{'worker' if head_address else 'head'}-{time.monotonic_ns()}.out"
        self.address = head_address or f"127.0.0.1:{free_port()}"
        role = ["--address", head_address] if head_address else ["--head", f"--port={self.address[10:]}"]
        self.command = [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", *role]
        self.command += ["--block", "--num-cpus=1", "--disable-usage-stats"]
        # Ports Ray would fix (52365 for each node's agent, 10001 for the head's Ray client) are free ones,
        # so that the two nodes, and other Ray clusters on this machine, do not collide.
        self.command += [f"--dashboard-agent-listen-port={free_port()}"]
        self.command += (
            [] if head_address else ["--include-dashboard=false", f"--ray-client-server-port={free_port()}"]
        )
        self.environment = {**os.environ, "RAY_TMPDIR": ray_tmpdir}
        self.environment["RAY_AUTH_MODE"] = "disabled"  # the driver here joins by address, so without it
        deadline = time.monotonic() + START_SECONDS
        while not self._start(deadline):
            assert time.monotonic() < deadline, f"no Ray node within {START_SECONDS} s: {self.log}"

    def _start(self, deadline: float) -> bool:
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                self.command,
                env=self.environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while b"Ray runtime started" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                return False
            time.sleep(0.2)
        return True

    def kill(self) -> None:
        """Every process of the node at once, as when its machine dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class TwoNodeCluster:
    """A head and a second node, each with 1 CPU, Serve's proxy on the head, and one application at a time."""

    def __init__(self) -> None:
        self.ray_tmpdir = tempfile.mkdtemp(prefix="nt-", dir="/tmp")  # short: Ray's socket paths
        self.folder = Path(self.ray_tmpdir)
        self.head = RayNode(self.folder, self.ray_tmpdir)
        self.second_node = None
        try:
            ray.init(address=self.head.address, log_to_driver=False)
            self.add_second_node()
            port = free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
        except BaseException:
            self.shutdown()
            raise
        self.url = f"http://127.0.0.1:{port}"
        self.deployed: str | None = None

    def add_second_node(self) -> None:
        self.second_node = RayNode(self.folder, self.ray_tmpdir, self.head.address)
        wait_until(lambda: alive_nodes() == 2, START_SECONDS, "two alive nodes")

    def lose_second_node(self) -> None:
        self.second_node.kill()

    def deploy(self, name: str, app) -> str:
        """Run `app` unless it (by `name`) is what runs already; the URL it answers on. The application
        before it is deleted first: a rolling update would need CPUs for both while the cluster has 2."""
        if self.deployed != name:
            if self.deployed is not None:
                serve.delete("nosetrack")
                self.deployed = None
            serve.run(app, name="nosetrack", route_prefix="/")
            self.deployed = name
        return self.url

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        for node in (self.second_node, self.head):
            if node is not None:
                node.kill()
        shutil.rmtree(self.ray_tmpdir, ignore_errors=True)


def alive_nodes() -> int:
    return sum(1 for node in ray.nodes() if node["Alive"])


@pytest.fixture(scope="module")
def cluster():
    started = TwoNodeCluster()
    try:
        yield started
    finally:
        started.shutdown()


@pytest.fixture
def cluster_url(cluster):
    """The application of SETTINGS: 2 replicas of 1 CPU, so one on each node."""
    return cluster.deploy("two replicas", application(SETTINGS))


@pytest.fixture(scope="module")
def one_machine():
    """The single-machine app with the same settings, in process: what every answer must equal."""
    return create_app(SETTINGS, pools=[ModelPool(load_model, 1)]).test_client()


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


def replica_count() -> int:
    return len(replica_nodes())


def wait_until(condition, seconds: float, what: str) -> None:
    """Poll `condition` until it holds; `seconds` bounds a loaded 2-core machine's wait, it is no target."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.5)


class BoundedLoad:
    """`clients` threads that post `body` until stopped (each request with its own deadline), keeping every
    answer as (status, headers, JSON or text), and every exception a thread met as `failures`: a request
    that fails in a thread reaches the test, never silently ends the thread."""

    def __init__(self, url: str, body: bytes, clients: int) -> None:
        self.answers: list[tuple[int, dict, object]] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._request = {"data": body, "headers": {**AUTH, "Content-Type": "image/jpeg"}, "timeout": TIMEOUT}
        self._threads = [
            threading.Thread(target=self._post_until_stopped, args=(url,)) for _ in range(clients)
        ]
        for thread in self._threads:
            thread.start()

    def _post_until_stopped(self, url: str) -> None:
        try:
            while not self._stop.is_set():
                response = requests.post(url + "/v1/nose", **self._request)
                try:
                    content = response.json()
                except ValueError:
                    content = response.text
                self.answers.append((response.status_code, dict(response.headers), content))
        except BaseException as failure:
            self.failures.append(failure)

    def stop(self) -> list[tuple[int, dict, object]]:
        """Every answer; fails the test if a request hung past its deadline or failed in its thread."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a request hung past its deadline"
        assert self.failures == [], f"requests failed in their threads: {self.failures}"
        return self.answers


def test_bounded_load_reports_a_request_that_failed_in_its_thread():
    load = BoundedLoad(f"http://127.0.0.1:{free_port()}", b"", clients=1)  # nothing listens there
    wait_until(lambda: load.failures, 10, "the refused connection recorded")
    with pytest.raises(AssertionError, match="failed in their threads"):
        load.stop()


def test_replicas_scale_from_one_to_two_under_load_with_the_config_serve_ray_deploys(cluster, face_jpeg):
    """The application `nosetrack serve --ray --min-replicas 1 --max-replicas 2` deploys, unchanged: Serve's
    own delays (30 s of load to scale up; 10 minutes of quiet to scale down, longer than a test waits)."""
    settings = dataclasses.replace(SETTINGS, min_replicas=1, max_replicas=2)
    url = cluster.deploy("autoscaled", application(settings))
    assert replica_count() == 1
    # Twice the ongoing requests at which Serve's autoscaling calls a replica busy (models and streams).
    load = BoundedLoad(url, face_jpeg, clients=2 * math.ceil(capacity(settings).busy))
    try:
        wait_until(lambda: replica_count() == 2, SCALE_SECONDS, "a second replica under load")
    finally:
        answers = load.stop()
    assert {status for status, _, _ in answers} <= {200, 503}


def test_losing_a_node_under_load_costs_no_hang_and_no_wrong_answer_and_it_rejoins(cluster, face_jpeg, model):
    url = cluster.deploy("two replicas", application(SETTINGS))
    wait_until(lambda: replica_count() == 2, SCALE_SECONDS, "two replicas")
    expected = prediction_answer(predict_bytes(model, face_jpeg))
    load = BoundedLoad(url, face_jpeg, clients=3)
    try:
        time.sleep(1.0)
        cluster.lose_second_node()
        wait_until(lambda: replica_count() == 1, SCALE_SECONDS, "the lost node's replica gone")
        served_before = len(load.answers)
        resumed = lambda: any(s == 200 for s, _, _ in load.answers[served_before:])  # noqa: E731
        wait_until(resumed, SCALE_SECONDS, "service resumed")
    finally:
        answers = load.stop()
    for status, _headers, content in answers:
        if status == 200:
            assert without_per_request(content) | {"model": None} == expected | {"model": None}
        else:
            assert status in (503, 504) and isinstance(content, dict) and content["error"]["code"], content
    cluster.add_second_node()
    wait_until(lambda: len(set(replica_nodes())) == 2, SCALE_SECONDS, "a replica on the rejoined node")
    headers = {**AUTH, "Content-Type": "image/jpeg"}
    response = requests.post(url + "/v1/nose", data=face_jpeg, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200
