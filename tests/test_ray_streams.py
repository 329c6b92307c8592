"""WS /v1/track through Ray Serve's proxy: a local Ray cluster on 127.0.0.1 (one node, 2 CPUs), the
application `serve run nosetrack.cluster.deployment:build_app` builds, and real WebSocket clients.

A stream gets the answers one machine gives, is refused past a replica's `--max-streams`, without its key
or from a foreign page as on one machine, and closes with 1001 when Ray stops its replica (the app is
deleted, or its deployment scaled down). Slow (a minute or two: the cluster, replicas loading models);
skipped without the `ray` extra.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
from conftest import encode

pytest.importorskip("ray.serve")

import ray
from ray import serve
from ray.serve._private.common import DeploymentID
from ray.serve.context import _get_global_client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from nosetrack.cluster.deployment import NosetrackReplica, build_app, deployment_options
from nosetrack.config import Settings
from nosetrack.launcher import free_port
from nosetrack.server.app import create_front_door

pytestmark = pytest.mark.slow

KEY = "stream-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_STREAMS = 2
ARGS = {"model_instances": "1", "max_streams": str(MAX_STREAMS), "api_keys": KEY, "log_file": ""}
FRAMES = 8
TIMEOUT = 60
# Seconds within which Ray's stop of a replica must reach its streams as a 1001 close.
CLOSE_SECONDS = 5
PER_ANSWER = ("latency_ms",)
# Tries to start the local cluster.
STARTS = 3


class LocalCluster:
    """A Ray cluster of its own (never one already running here), on 127.0.0.1, Serve's proxy on a free port,
    one application at a time."""

    def __init__(self) -> None:
        for attempt in range(STARTS):
            try:
                ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
                break
            except Exception:  # Ray's fixed 30 s for a raylet to register: a loaded machine can miss it
                ray.shutdown()
                if attempt == STARTS - 1:
                    raise
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        self.url = f"ws://127.0.0.1:{port}/v1/track"
        self.deployed: str | None = None

    def deploy(self, replicas: int) -> str:
        """The app of ARGS with `replicas` replicas (what `serve run ... key=value` builds)."""
        name = f"{replicas} replicas"
        if self.deployed != name:
            args = {**ARGS, "min_replicas": str(replicas), "max_replicas": str(replicas)}
            serve.run(build_app(args), name="nosetrack", route_prefix="/")
            self.deployed = name
        return self.url

    def deploy_scalable(self, replicas: int) -> str:
        """The app of ARGS with `replicas` replicas, whose count Ray's external scaling API may change."""
        count = str(replicas)
        bound = build_app({**ARGS, "min_replicas": count, "max_replicas": count})._bound_deployment
        settings = bound.init_args[0]
        deployment = serve.deployment(NosetrackReplica, name="nosetrack", **deployment_options(settings))
        serve.run(deployment.bind(settings), name="nosetrack", route_prefix="/", external_scaler_enabled=True)
        self.deployed = "scalable"
        return self.url

    def scale(self, replicas: int) -> None:
        """Only the replica count changes (as an autoscaler's decision does): Serve stops the extra ones."""
        controller = _get_global_client()._controller
        deployment = DeploymentID(name="nosetrack", app_name="nosetrack")
        ray.get(controller.update_deployment_replicas.remote(deployment, replicas))

    def delete(self) -> None:
        serve.delete("nosetrack", _blocking=False)
        self.deployed = None

    def shutdown(self) -> None:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def cluster():
    started = LocalCluster()
    try:
        yield started
    finally:
        started.shutdown()


@pytest.fixture
def url(cluster):
    return cluster.deploy(replicas=1)


@pytest.fixture(scope="module")
def moving_frames(astronaut_bgr) -> list[bytes]:
    """A face drifting right, 3 pixels a frame."""
    return [encode(np.roll(astronaut_bgr, 3 * number, axis=1)) for number in range(FRAMES)]


def open_stream(url: str, **options):
    return connect(url, compression=None, max_size=None, open_timeout=TIMEOUT, **options)


def lockstep_over_ray(url: str, frames: list[bytes]) -> list[dict]:
    """Each frame after its timestamp, the next only once its answer came (so none is dropped)."""
    answers = []
    with open_stream(url, additional_headers=AUTH) as websocket:
        for number, frame in enumerate(frames):
            websocket.send(json.dumps({"timestamp": number / 30}))
            websocket.send(frame)
            answers.append(json.loads(websocket.recv(timeout=TIMEOUT)))
    return answers


def lockstep_on_one_machine(pool, frames: list[bytes]) -> list[dict]:
    """The same, through the single-machine front door's ASGI interface, in process."""
    settings = Settings(log_file="", model_instances=pool.size, api_keys=(KEY,))
    door = create_front_door(settings, pools=[pool])
    scope = {
        "type": "websocket",
        "path": "/v1/track",
        "query_string": b"",
        "headers": [(b"host", b"h"), (b"authorization", f"Bearer {KEY}".encode())],
        "extensions": {"websocket.http.response": {}},
    }
    messages = [{"type": "websocket.connect"}]
    for number, frame in enumerate(frames):
        messages += [{"type": "websocket.receive", "text": json.dumps({"timestamp": number / 30})}]
        messages += [{"type": "websocket.receive", "bytes": frame}]
    answers: list[dict] = []

    async def run() -> None:
        answered = asyncio.Event()
        answered.set()

        async def receive() -> dict:
            if not messages:
                await answered.wait()
                return {"type": "websocket.disconnect", "code": 1000}
            if "bytes" in messages[0]:  # a frame goes once the one before it was answered
                await answered.wait()
                answered.clear()
            return messages.pop(0)

        async def send(message: dict) -> None:
            if message["type"] == "websocket.send":
                answers.append(json.loads(message["text"]))
                answered.set()

        await door(scope, receive, send)

    asyncio.run(run())
    return answers


def without_per_answer(answer: dict) -> dict:
    return {key: value for key, value in answer.items() if key not in PER_ANSWER}


def test_a_stream_through_rays_proxy_gets_the_answers_one_machine_gives(url, pool, moving_frames):
    over_ray = lockstep_over_ray(url, moving_frames)
    assert [answer["frame"] for answer in over_ray] == list(range(FRAMES))
    assert all(answer["faces"] and answer["faces"][0]["tracked"] for answer in over_ray[1:])
    one_machine = lockstep_on_one_machine(pool, moving_frames)
    assert [without_per_answer(a) for a in over_ray] == [without_per_answer(a) for a in one_machine]


def refusal(url: str, **options) -> tuple[int, dict, dict]:
    with pytest.raises(InvalidStatus) as refused:
        open_stream(url, **options)
    response = refused.value.response
    return response.status_code, json.loads(response.body)["error"], response.headers


def test_a_stream_without_the_key_or_with_a_wrong_one_is_refused_as_on_one_machine(url):
    status, error, headers = refusal(url)
    assert (status, error["code"]) == (401, "unauthorized")
    assert headers["WWW-Authenticate"] == 'Bearer realm="nosetrack"'
    status, error, _ = refusal(url, additional_headers={"Authorization": "Bearer wrong"})
    assert (status, error["code"]) == (401, "unauthorized")


def test_a_page_of_another_origin_is_refused_as_on_one_machine(url):
    status, error, _ = refusal(url, additional_headers=AUTH, origin="https://elsewhere.example")
    assert (status, error["code"]) == (403, "forbidden_origin")
    assert "--cors-origin https://elsewhere.example" in error["message"]


def test_a_stream_past_the_replicas_max_streams_is_refused_and_the_open_ones_go_on(url, moving_frames):
    streams = [open_stream(url, additional_headers=AUTH) for _ in range(MAX_STREAMS)]
    try:
        status, error, headers = refusal(url, additional_headers=AUTH)
        assert (status, error["code"], headers["Retry-After"]) == (503, "too_many_streams", "1")
        for websocket in streams:
            websocket.send(moving_frames[0])
            assert json.loads(websocket.recv(timeout=TIMEOUT))["frame"] == 0
    finally:
        for websocket in streams:
            websocket.close()


class StreamingClient(threading.Thread):
    """Sends frames and reads answers until the server closes; records the close and when it came."""

    def __init__(self, url: str, frames: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.websocket = open_stream(url, additional_headers=AUTH)
        self.frames = frames
        self.answers = 0
        self.closed: tuple[int | None, str, float] | None = None
        self.failure: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            while True:
                self.websocket.send(self.frames[self.answers % len(self.frames)])
                self.websocket.recv(timeout=TIMEOUT)
                self.answers += 1
                time.sleep(0.03)
        except ConnectionClosed as closed:
            received = closed.rcvd
            self.closed = (received and received.code, received and received.reason, time.monotonic())
        except BaseException as failure:  # reaches the test's assertion
            self.failure = failure

    def wait_answered(self, count: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while self.answers < count and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.answers >= count, self.failure or self.closed


def test_deleting_the_app_closes_its_streams_with_1001_within_seconds(cluster, url, moving_frames):
    clients = [StreamingClient(url, moving_frames) for _ in range(MAX_STREAMS)]
    for client in clients:
        client.wait_answered(3)
    asked = time.monotonic()
    cluster.delete()
    for client in clients:
        client.join(CLOSE_SECONDS + 5)
        assert client.failure is None, client.failure
        assert client.closed is not None, "the stream was not closed"
        code, reason, at = client.closed
        assert (code, reason) == (1001, "The server is shutting down.")
        assert at - asked < CLOSE_SECONDS


def test_scaling_down_closes_the_streams_of_the_stopped_replica_with_1001_and_the_rest_go_on(
    cluster, moving_frames
):
    url = cluster.deploy_scalable(replicas=2)
    clients = [StreamingClient(url, moving_frames) for _ in range(4)]
    for client in clients:
        client.wait_answered(3)
    asked = time.monotonic()
    cluster.scale(replicas=1)
    deadline = time.monotonic() + TIMEOUT
    while not any(client.closed for client in clients) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # the stopped replica's other streams close within its poll
    stopped = [client for client in clients if client.closed is not None]
    going_on = [client for client in clients if client.closed is None]
    assert stopped and going_on, "Ray spread 4 streams over both replicas"
    for client in stopped:
        assert client.closed[:2] == (1001, "The server is shutting down.")
        print(f"closed {client.closed[2] - asked:.2f} s after the scale-down was asked")
    for client in going_on:
        client.wait_answered(client.answers + 3)
        client.websocket.close()
    for client in clients:
        client.join(TIMEOUT)
        assert client.failure is None, client.failure
