"""The Open Inference Protocol over gRPC (--grpc-port): the official tritonclient gets the same noses as
/v1/nose, the same limits, keys and metrics hold, and every failure has the right gRPC status code."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from conftest import LiveServer, encode, make_test_app
from tritonclient.grpc import model_config_pb2, service_pb2
from tritonclient.utils import InferenceServerException

from nosetrack.launcher import free_port
from nosetrack.logs import LOGGER_NAME
from nosetrack.models.nose_tracker import weights_source
from nosetrack.server.oip import inference_pb2 as pb
from nosetrack.server.oip.grpc_service import RPCS, SERVICE, start_grpc_server
from nosetrack.server.state import server_state

MODEL = "nosetrack-facemesh"
KEY = "grpc-test-key"


class GrpcServer:
    """An app's state served over gRPC in this process, with tritonclient and a raw channel to it."""

    def __init__(self, app) -> None:
        self.app = app
        self.state = server_state(app)
        self.port = free_port()
        self.server = start_grpc_server(self.state, "127.0.0.1", self.port, threads=4)
        self.client = triton.InferenceServerClient(f"127.0.0.1:{self.port}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def call(self, method: str, request, metadata=()):
        """One RPC with nosetrack's own messages: the answer and the call (for its trailing metadata)."""
        rpc = self.channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=RPCS[method].response.FromString,
        )
        return rpc.with_call(request, metadata=metadata, timeout=30)

    def close(self) -> None:
        self.client.close()
        self.channel.close()
        self.server.stop(grace=None)


@pytest.fixture(scope="module")
def served(pool):
    server = GrpcServer(make_test_app(pool))
    yield server
    server.close()


@pytest.fixture(scope="module")
def guarded(pool):
    server = GrpcServer(make_test_app(pool, api_keys=(KEY,)))
    yield server
    server.close()


def bytes_input(*images: bytes) -> triton.InferInput:
    tensor = triton.InferInput("IMAGE", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    return tensor


def rgb_input(image_bgr: np.ndarray) -> triton.InferInput:
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)[np.newaxis]
    tensor = triton.InferInput("IMAGE", list(rgb.shape), "UINT8")
    tensor.set_data_from_numpy(rgb)
    return tensor


def status_of(call, *args, **kwargs) -> str:
    with pytest.raises(InferenceServerException) as raised:
        call(*args, **kwargs)
    return raised.value.status()


@pytest.fixture(scope="module")
def http_answer(served, face_jpeg):
    """What /v1/nose answers for the face, from the same app."""
    return served.app.test_client().post("/v1/nose", data=face_jpeg, content_type="image/jpeg").get_json()


def test_health_and_readiness(served):
    assert served.client.is_server_live()
    assert served.client.is_server_ready()
    assert served.client.is_model_ready(MODEL)
    assert served.client.is_model_ready(MODEL, weights_source())
    assert not served.client.is_model_ready("no-such-model")


def test_server_and_model_metadata(served):
    server = served.client.get_server_metadata(as_json=True)
    assert server["name"] == "nosetrack"
    assert {"binary_tensor_data", "model_configuration", "statistics"} <= set(server["extensions"])
    model = served.client.get_model_metadata(MODEL, as_json=True)
    assert model["versions"] == [weights_source()]
    assert [tensor["name"] for tensor in model["inputs"]] == ["IMAGE"]
    assert {tensor["name"] for tensor in model["outputs"]} == {"NOSE", "DETECTED", "SCORES", "BOXES"}


def test_model_configuration_matches_http(served):
    config = served.client.get_model_config(MODEL, as_json=True)["config"]
    over_http = served.app.test_client().get(f"/v2/models/{MODEL}/config").get_json()
    assert config["name"] == over_http["name"] == MODEL
    assert config["max_batch_size"] == over_http["max_batch_size"] == 16
    assert config["input"][0]["data_type"] == "TYPE_STRING"
    nose = next(output for output in config["output"] if output["name"] == "NOSE")
    assert nose["data_type"] == "TYPE_FP32" and nose["dims"] == ["2"]  # int64 arrive as strings in JSON


def test_repository_index_lists_the_model(served):
    index = served.client.get_model_repository_index(as_json=True)["models"]
    assert [(model["name"], model["state"]) for model in index] == [(MODEL, "READY")]


def test_encoded_bytes_give_the_nose_v1_nose_gives(served, face_jpeg, http_answer):
    result = served.client.infer(MODEL, [bytes_input(face_jpeg)], request_id="grpc-1")
    assert result.get_response().id == "grpc-1"
    assert result.as_numpy("DETECTED").tolist() == [True]
    np.testing.assert_allclose(result.as_numpy("NOSE")[0], [http_answer["x"], http_answer["y"]], atol=1e-6)
    box = http_answer["box"]
    np.testing.assert_allclose(
        result.as_numpy("BOXES")[0], [box["x"], box["y"], box["width"], box["height"]], atol=1e-3
    )


def test_rgb_pixels_give_the_nose_v1_nose_gives(served, face_jpeg, http_answer):
    decoded = cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    requested = [triton.InferRequestedOutput("NOSE")]
    result = served.client.infer(MODEL, [rgb_input(decoded)], outputs=requested)
    assert [output.name for output in result.get_response().outputs] == ["NOSE"]
    np.testing.assert_allclose(result.as_numpy("NOSE")[0], [http_answer["x"], http_answer["y"]], atol=1e-6)


def test_a_batch_with_a_face_and_none(served, face_jpeg, no_face_jpeg):
    result = served.client.infer(MODEL, [bytes_input(face_jpeg, no_face_jpeg)])
    assert result.as_numpy("DETECTED").tolist() == [True, False]
    assert result.as_numpy("NOSE")[1].tolist() == [-1, -1]


def test_typed_contents_work_as_raw_bytes_do(served, face_jpeg, http_answer):
    """Clients that fill contents.bytes_contents or uint_contents instead of raw_input_contents."""
    encoded = pb.ModelInferRequest(model_name=MODEL)
    encoded.inputs.add(name="IMAGE", datatype="BYTES", shape=[1]).contents.bytes_contents.append(face_jpeg)
    pixels = np.zeros((2, 3, 3), np.uint8)
    decoded = pb.ModelInferRequest(model_name=MODEL)
    tensor = decoded.inputs.add(name="IMAGE", datatype="UINT8", shape=[1, 2, 3, 3])
    tensor.contents.uint_contents.extend(pixels.ravel().tolist())
    answers = [served.call("ModelInfer", request)[0] for request in (encoded, decoded)]
    noses = [np.frombuffer(answer.raw_output_contents[0], "<f4") for answer in answers]
    np.testing.assert_allclose(noses[0], [http_answer["x"], http_answer["y"]], atol=1e-6)
    assert noses[1].tolist() == [-1, -1]  # no face in six black pixels


def test_statistics_count_what_grpc_predicted(served, face_jpeg):
    def counts() -> tuple[int, int, int]:
        statistics = served.client.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
        inference = statistics["inference_stats"]
        return (
            int(statistics.get("inference_count", 0)),
            int(inference["compute_infer"].get("count", 0)),
            int(inference["fail"].get("count", 0)),
        )

    before = counts()
    served.client.infer(MODEL, [bytes_input(face_jpeg, face_jpeg)])
    with pytest.raises(InferenceServerException):
        served.client.infer(MODEL, [bytes_input(b"not an image")])
    after = counts()
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 2, 1]


@pytest.mark.parametrize(
    ("images", "status"),
    [
        ([b"not an image"], "StatusCode.INVALID_ARGUMENT"),
        ([b""], "StatusCode.INVALID_ARGUMENT"),
        ([b"x"] * 17, "StatusCode.INVALID_ARGUMENT"),
    ],
    ids=["not-an-image", "empty", "batch-over-16"],
)
def test_bad_images_are_invalid_arguments(served, images, status):
    assert status_of(served.client.infer, MODEL, [bytes_input(*images)]) == status


def test_a_wrong_input_name_is_an_invalid_argument(served, face_jpeg):
    tensor = triton.InferInput("PICTURE", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([face_jpeg], dtype=np.object_))
    assert status_of(served.client.infer, MODEL, [tensor]) == "StatusCode.INVALID_ARGUMENT"


def test_an_unknown_model_or_version_is_not_found(served, face_jpeg):
    assert status_of(served.client.infer, "nope", [bytes_input(face_jpeg)]) == "StatusCode.NOT_FOUND"
    assert status_of(served.client.get_model_metadata, MODEL, "9") == "StatusCode.NOT_FOUND"
    assert status_of(served.client.get_model_config, "nope") == "StatusCode.NOT_FOUND"


def test_too_many_pixels_are_refused_before_any_model_runs(pool, astronaut_bgr):
    server = GrpcServer(make_test_app(pool, max_image_pixels=100 * 100))
    try:
        status = status_of(server.client.infer, MODEL, [rgb_input(astronaut_bgr)])
        assert status == "StatusCode.INVALID_ARGUMENT"
    finally:
        server.close()


def test_a_message_over_the_body_limit_is_resource_exhausted(pool, face_jpeg):
    server = GrpcServer(make_test_app(pool, max_body_bytes=len(face_jpeg) // 2))
    try:
        assert (
            status_of(server.client.infer, MODEL, [bytes_input(face_jpeg)]) == "StatusCode.RESOURCE_EXHAUSTED"
        )
    finally:
        server.close()


def test_a_full_worker_is_unavailable_at_once(served, face_jpeg):
    """The admission gate is the one HTTP uses: with every place taken, gRPC is refused too."""
    gate = served.state.admission
    held = [gate.admit() for _ in range(gate.limit)]
    for place in held:
        place.__enter__()
    try:
        assert status_of(served.client.infer, MODEL, [bytes_input(face_jpeg)]) == "StatusCode.UNAVAILABLE"
    finally:
        for place in held:
            place.__exit__(None, None, None)


def test_inference_needs_the_key_in_the_authorization_metadata(guarded, face_jpeg):
    client = guarded.client
    assert status_of(client.infer, MODEL, [bytes_input(face_jpeg)]) == "StatusCode.UNAUTHENTICATED"
    wrong = {"authorization": "Bearer wrong"}
    assert status_of(client.get_model_metadata, MODEL, headers=wrong) == "StatusCode.UNAUTHENTICATED"
    right = {"authorization": f"Bearer {KEY}"}
    assert client.infer(MODEL, [bytes_input(face_jpeg)], headers=right).as_numpy("DETECTED").tolist() == [
        True
    ]
    assert client.get_inference_statistics(MODEL, headers=right, as_json=True)["model_stats"]


def test_health_and_server_metadata_stay_open_with_keys(guarded):
    assert guarded.client.is_server_live() and guarded.client.is_server_ready()
    assert guarded.client.is_model_ready(MODEL)
    assert guarded.client.get_server_metadata(as_json=True)["name"] == "nosetrack"


def test_the_request_id_comes_back_in_the_trailing_metadata(served):
    _, call = served.call("ServerLive", pb.ServerLiveRequest(), metadata=(("x-request-id", "abc-123"),))
    assert ("x-request-id", "abc-123") in call.trailing_metadata()


def test_calls_are_counted_in_the_metrics_with_their_status(served, face_jpeg):
    served.client.infer(MODEL, [bytes_input(face_jpeg)])
    with pytest.raises(InferenceServerException):
        served.client.infer(MODEL, [bytes_input(b"not an image")])
    counts = served.state.metrics.request_counts()[f"/{SERVICE}/ModelInfer"]
    assert counts["200"] >= 1 and counts["415"] >= 1


@pytest.mark.parametrize("name", sorted(pb.DESCRIPTOR.message_types_by_name))
def test_every_message_matches_tritons_field_for_field(name):
    """Wire compatibility: our trimmed inference.proto against the one tritonclient ships."""
    theirs_file = (
        model_config_pb2 if name in model_config_pb2.DESCRIPTOR.message_types_by_name else service_pb2
    )
    ours, theirs = (
        pb.DESCRIPTOR.message_types_by_name[name],
        theirs_file.DESCRIPTOR.message_types_by_name[name],
    )

    def fields(descriptor):
        described = {}
        for field in descriptor.fields:
            kind = field.message_type or field.enum_type
            described[field.name] = (field.number, field.type, field.label, kind.name if kind else None)
        for nested in descriptor.nested_types:
            described.update({f"{nested.name}.{key}": value for key, value in fields(nested).items()})
        return described

    ours_fields, their_fields = fields(ours), fields(theirs)
    assert {key: their_fields.get(key) for key in ours_fields} == ours_fields


def test_data_types_have_tritons_numbers():
    ours = {value.name: value.number for value in pb.DataType.DESCRIPTOR.values}
    theirs = {value.name: value.number for value in model_config_pb2.DataType.DESCRIPTOR.values}
    assert ours == theirs


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "nosetrack.cli", "serve", "--log-file", "", *args]


def test_grpc_port_without_grpcio_names_the_extra(tmp_path):
    """grpcio made unimportable, as in an install without the extra."""
    script = (
        "import sys; sys.modules['grpc'] = None; from nosetrack.cli import main; "
        f"sys.exit(main(['serve', '--port', '{free_port()}', '--log-file', '', "
        f"'--grpc-port', '{free_port()}']))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "nosetrack: --grpc-port needs gRPC support, which is not installed: pip install '.[grpc]' in "
        "nosetrack's clone."
    )


def test_a_grpc_port_in_use_is_refused_in_one_sentence(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = serve_command("--port", str(free_port()), "--grpc-port", str(port))
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"nosetrack: 127.0.0.1:{port} is already in use (another server?): stop it, or pick another "
        "--grpc-port."
    )


def test_the_grpc_port_must_differ_from_the_http_port(tmp_path):
    port = str(free_port())
    result = subprocess.run(
        serve_command("--port", port, "--grpc-port", port),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "is the HTTP port too" in result.stderr


def listening_sockets(port: int) -> int:
    """Sockets listening on `port` (state 0A), whichever process holds them; gRPC listens on IPv6 sockets
    (IPv4-mapped) where it can."""
    lines = [
        line for table in ("tcp", "tcp6") for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    ]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    grpc_port = free_port()
    server = LiveServer(
        tmp_path_factory.mktemp("grpc"), "--workers", "2", "--threads", "1", "--grpc-port", str(grpc_port)
    )
    server.grpc_port = grpc_port
    yield server
    server.stop()


def test_every_worker_serves_grpc_on_the_one_port(live):
    deadline = time.monotonic() + 60  # /readyz answered from one worker; the other may still be loading
    while listening_sockets(live.grpc_port) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listening_sockets(live.grpc_port) == 2


def test_a_live_server_answers_grpc_and_http_alike(live, face_jpeg):
    over_http = requests.post(
        live.url + "/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30
    ).json()
    with triton.InferenceServerClient(f"127.0.0.1:{live.grpc_port}") as client:
        assert client.is_server_ready()
        nose = client.infer(MODEL, [bytes_input(face_jpeg)]).as_numpy("NOSE")[0]
    np.testing.assert_allclose(nose, [over_http["x"], over_http["y"]], atol=1e-6)


def test_grpc_calls_are_counted_in_the_live_metrics(live, face_jpeg):
    own_connection = [("grpc.use_local_subchannel_pool", 1)]  # else one process's channels share one
    for _ in range(4):  # a connection each, so the kernel may hand them to either worker
        with triton.InferenceServerClient(
            f"127.0.0.1:{live.grpc_port}", channel_args=own_connection
        ) as client:
            client.infer(MODEL, [bytes_input(face_jpeg)])
    metrics = requests.get(live.url + "/metrics", timeout=10).text
    line = f'nosetrack_requests_total{{route="/{SERVICE}/ModelInfer",status="200"}}'
    assert any(row.startswith(line) and float(row.split()[-1]) >= 4 for row in metrics.splitlines())


def images_predicted(url: str) -> float:
    metrics = requests.get(url + "/metrics", timeout=10).text
    prefix = f'nosetrack_prediction_seconds_count{{model="{MODEL}",outcome="success"}}'
    return sum(float(row.split()[-1]) for row in metrics.splitlines() if row.startswith(prefix))


def test_a_call_in_flight_at_sigterm_gets_its_answer(tmp_path, astronaut_bgr):
    grpc_port = free_port()
    server = LiveServer(tmp_path, "--workers", "1", "--threads", "1", "--grpc-port", str(grpc_port))
    photo = encode(cv2.resize(astronaut_bgr, (2048, 2048)))  # 8 of them keep one model busy a while
    try:
        with (
            ThreadPoolExecutor(1) as executor,
            triton.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client,
        ):
            call = executor.submit(client.infer, MODEL, [bytes_input(*[photo] * 8)])
            answered_at: list[float] = []
            call.add_done_callback(lambda _: answered_at.append(time.monotonic()))
            deadline = time.monotonic() + 120  # a bound for a loaded machine, not a measurement
            while images_predicted(server.url) < 1:  # the call is under way
                assert time.monotonic() < deadline, "the call never started"
                time.sleep(0.02)
            signalled_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert call.result(timeout=120).as_numpy("DETECTED").tolist() == [True] * 8
        # Ordered events, not durations: the answer came after SIGTERM, so the call was in flight at it.
        assert answered_at[0] > signalled_at, "the call ended before SIGTERM: the test proved nothing"
        assert server.process.wait(timeout=120) == 0
    finally:
        server.stop()


def test_the_grpc_server_logs_the_address_it_listens_at(served, caplog):
    port = free_port()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        server = start_grpc_server(served.state, "127.0.0.1", port, threads=1)
    server.stop(grace=None)
    assert f"gRPC listening at: 127.0.0.1:{port}" in caplog.text
