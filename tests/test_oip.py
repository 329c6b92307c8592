"""The Open Inference Protocol v2 under /v2: the official tritonclient gets the nose, in JSON and binary."""

from __future__ import annotations

import base64
import json
import struct
import threading

import cv2
import numpy as np
import pytest
import tritonclient.http as triton
from conftest import LiveServer, make_test_app
from tritonclient.utils import InferenceServerException

from nosetrack.config import Settings
from nosetrack.models import load_model
from nosetrack.models.nose_tracker import weights_source
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app

MODEL = "nosetrack-facemesh"


@pytest.fixture(scope="module")
def expected_nose(model, astronaut_bgr):
    face = model.predict(astronaut_bgr).faces[0]
    height, width = astronaut_bgr.shape[:2]
    return np.array([face.nose_x / width, face.nose_y / height], dtype=np.float32)


@pytest.fixture(scope="module")
def triton_client(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("oip"), "--workers", "1", "--threads", "2")
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield client
    client.close()
    server.stop()


def test_tritonclient_sees_a_live_ready_server_and_model(triton_client):
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert not triton_client.is_model_ready("no-such-model")
    assert "binary_tensor_data" in triton_client.get_server_metadata()["extensions"]
    metadata = triton_client.get_model_metadata(MODEL)
    assert metadata["inputs"][0]["name"] == "IMAGE"
    assert {output["name"] for output in metadata["outputs"]} == {"NOSE", "DETECTED", "SCORES", "BOXES"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_gets_the_nose_from_encoded_bytes(triton_client, face_jpeg, expected_nose, binary):
    image = triton.InferInput("IMAGE", [1], "BYTES")
    element = face_jpeg if binary else base64.b64encode(face_jpeg)
    image.set_data_from_numpy(np.array([element], dtype=np.object_), binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("NOSE", "DETECTED")]
    result = triton_client.infer(MODEL, [image], outputs=outputs, request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    assert result.as_numpy("DETECTED").tolist() == [True]
    np.testing.assert_allclose(result.as_numpy("NOSE"), [expected_nose], atol=0.02)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_gets_the_nose_from_rgb_pixels(triton_client, astronaut_bgr, expected_nose, binary):
    rgb = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGB)[np.newaxis]
    image = triton.InferInput("IMAGE", list(rgb.shape), "UINT8")
    image.set_data_from_numpy(rgb, binary_data=binary)
    result = triton_client.infer(MODEL, [image], model_version=weights_source())  # all outputs, binary
    np.testing.assert_allclose(result.as_numpy("NOSE"), [expected_nose], atol=0.02)
    assert result.as_numpy("BOXES").shape == (1, 4)
    assert 0 < result.as_numpy("SCORES")[0] <= 1


def test_tritonclient_gets_a_batch_with_a_face_and_none(
    triton_client, face_jpeg, no_face_jpeg, expected_nose
):
    image = triton.InferInput("IMAGE", [2], "BYTES")
    image.set_data_from_numpy(np.array([face_jpeg, no_face_jpeg], dtype=np.object_))
    result = triton_client.infer(MODEL, [image])
    assert result.as_numpy("DETECTED").tolist() == [True, False]
    np.testing.assert_allclose(result.as_numpy("NOSE")[0], expected_nose, atol=0.02)
    assert result.as_numpy("NOSE")[1].tolist() == [-1, -1]


def test_tritonclient_sees_a_clear_error_for_a_non_image(triton_client):
    image = triton.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="not a JPEG, PNG, BMP, WebP or GIF"):
        triton_client.infer(MODEL, [image])


def test_tritonclient_reads_the_configuration_statistics_and_repository_index(triton_client, face_jpeg):
    config = triton_client.get_model_config(MODEL)
    assert (config["name"], config["max_batch_size"]) == (MODEL, 16)
    assert config["input"] == [{"name": "IMAGE", "data_type": "TYPE_STRING", "dims": [1]}]

    def count() -> int:
        return triton_client.get_inference_statistics(MODEL)["model_stats"][0]["inference_count"]

    before = count()
    image = triton.InferInput("IMAGE", [2], "BYTES")
    image.set_data_from_numpy(np.array([face_jpeg, face_jpeg], dtype=np.object_))
    triton_client.infer(MODEL, [image])
    assert count() == before + 2
    assert [model["name"] for model in triton_client.get_inference_statistics()["model_stats"]] == [MODEL]
    index = triton_client.get_model_repository_index()
    assert index == [{"name": MODEL, "version": weights_source(), "state": "READY"}]


# The protocol in detail, against the in-process app.


def infer(client, document: dict, binary: bytes = b"", path: str = f"/v2/models/{MODEL}/infer"):
    header = json.dumps(document).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))} if binary else {}
    return client.post(path, data=header + binary, headers=headers, content_type="application/octet-stream")


def bytes_input(*images: bytes) -> tuple[dict, bytes]:
    data = b"".join(struct.pack("<I", len(image)) + image for image in images)
    tensor = {"name": "IMAGE", "datatype": "BYTES", "shape": [len(images)]}
    return {**tensor, "parameters": {"binary_data_size": len(data)}}, data


def test_binary_output_follows_the_json_header(client, face_jpeg, expected_nose):
    tensor, data = bytes_input(face_jpeg)
    response = infer(
        client, {"inputs": [tensor], "outputs": [{"name": "NOSE", "parameters": {"binary_data": True}}]}, data
    )
    assert response.status_code == 200
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.data[:length])
    assert header["outputs"] == [
        {"name": "NOSE", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}
    ]
    np.testing.assert_allclose(np.frombuffer(response.data[length:], "<f4"), expected_nose, atol=0.02)


def test_oip_predictions_reach_the_recent_frames(pool, face_jpeg, no_face_jpeg):
    client = make_test_app(pool, show_recent=4).test_client()
    tensor, data = bytes_input(face_jpeg, no_face_jpeg)
    assert infer(client, {"inputs": [tensor]}, data).status_code == 200
    frames = client.get("/api/recent").get_json()["frames"]
    assert [(frame["route"], frame["faces"]) for frame in frames] == [
        ("/v2/models/<name>/infer", 0),
        ("/v2/models/<name>/infer", 1),
    ]


def test_bgr_pixels_give_the_same_nose_as_rgb(client, astronaut_bgr, expected_nose):
    small = cv2.resize(astronaut_bgr, (128, 128))
    answers = []
    for order, pixels in (("BGR", small), ("RGB", cv2.cvtColor(small, cv2.COLOR_BGR2RGB))):
        tensor = {
            "name": "IMAGE",
            "datatype": "UINT8",
            "shape": list(pixels.shape),
            "data": pixels.ravel().tolist(),
        }
        tensor["parameters"] = {"color_order": order}
        response = infer(client, {"inputs": [tensor]})
        assert response.status_code == 200, response.get_json()
        answers.append(response.get_json()["outputs"][0]["data"])
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    ("document", "status", "fragment"),
    [
        ({}, 400, "inputs"),
        (
            {"inputs": [{"name": "PIXELS", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
            400,
            "Unknown input",
        ),
        ({"inputs": [{"name": "IMAGE", "datatype": "FP32", "shape": [1], "data": [1.0]}]}, 400, "BYTES"),
        ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["***"]}]}, 400, "base64"),
        (
            {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [2], "data": ["AAAA"]}]},
            400,
            "2 images",
        ),
        ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]}]}, 415, "JPEG"),
        (
            {"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [300] * 12}]},
            400,
            "0 to 255",
        ),
        (
            {"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [2, 2, 3], "data": [1] * 5}]},
            400,
            "12 values",
        ),
        (
            {"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 2, 2, 4], "data": [1] * 16}]},
            400,
            "shape",
        ),
        ({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [9000, 9000, 3]}]}, 400, "neither"),
        (
            {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]}], "id": 5},
            400,
            "id",
        ),
        (
            {
                "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]}],
                "outputs": [{"name": "EARS"}],
            },
            400,
            "EARS",
        ),
    ],
)
def test_bad_infer_requests_get_a_protocol_error(client, document, status, fragment):
    response = infer(client, document)
    assert response.status_code == status
    assert fragment in response.get_json()["error"]


def test_too_many_pixels_is_413(client):
    tensor = {"name": "IMAGE", "datatype": "UINT8", "shape": [9000, 9000, 3], "data": []}
    assert infer(client, {"inputs": [tensor]}).status_code == 413


def test_binary_sizes_must_add_up(client, face_jpeg):
    tensor, data = bytes_input(face_jpeg)
    assert "follow" in infer(client, {"inputs": [tensor]}, data + b"extra").get_json()["error"]
    response = client.post(
        f"/v2/models/{MODEL}/infer", data=b"{}", headers={"Inference-Header-Content-Length": "99"}
    )
    assert response.status_code == 400


def test_unknown_model_or_version_is_404(client, face_jpeg):
    tensor, data = bytes_input(face_jpeg)
    assert infer(client, {"inputs": [tensor]}, data, "/v2/models/other/infer").status_code == 404
    response = infer(client, {"inputs": [tensor]}, data, f"/v2/models/{MODEL}/versions/9/infer")
    assert response.status_code == 404 and "version" in response.get_json()["error"]
    assert client.get("/v2/models/other").get_json() == {
        "error": "Unknown model 'other'; this server serves 'nosetrack-facemesh'."
    }


def test_health_stays_open_and_inference_needs_the_key(pool, face_jpeg):
    from conftest import make_test_app

    client = make_test_app(pool, api_keys=("k",)).test_client()
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 200
    tensor, data = bytes_input(face_jpeg)
    response = infer(client, {"inputs": [tensor]}, data)
    assert response.status_code == 401 and "Bearer" in response.get_json()["error"]


def test_compressed_bodies_are_refused_with_415(client):
    response = client.post(
        f"/v2/models/{MODEL}/infer", data=b"\x1f\x8b", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 415 and "Content-Encoding" in response.get_json()["error"]


class MeetingModel:
    """The real model, but once `meeting` holds a barrier, each prediction waits at it for the others."""

    def __init__(self, model, meeting: list[threading.Barrier]) -> None:
        self._model = model
        self._meeting = meeting
        self.info = model.info

    def predict(self, image):
        for barrier in self._meeting:
            barrier.wait(timeout=10)  # BrokenBarrierError when the batch runs one image at a time
        return self._model.predict(image)


def test_a_batch_runs_on_every_instance_of_the_model_at_once(face_jpeg, no_face_jpeg):
    meeting: list[threading.Barrier] = []
    pool = ModelPool(lambda: MeetingModel(load_model(), meeting), size=2)
    client = create_app(Settings(log_file="", model_instances=2), pools=[pool]).test_client()
    meeting.append(threading.Barrier(2))  # after the warm-up, which runs each instance alone
    tensor, data = bytes_input(face_jpeg, no_face_jpeg, face_jpeg, no_face_jpeg)
    answer = infer(client, {"inputs": [tensor], "outputs": [{"name": "DETECTED"}]}, data)
    assert answer.status_code == 200
    assert answer.get_json()["outputs"][0]["data"] == [True, False, True, False]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/no/such/route", 404),
        ("GET", f"/v2/models/{MODEL}/no-such-extension", 404),
        ("POST", "/v2/health/live", 405),
        ("DELETE", f"/v2/models/{MODEL}/infer", 405),
    ],
)
def test_every_answer_under_v2_has_the_protocols_error_shape(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert isinstance(response.get_json()["error"], str)


def test_tritonclient_gets_a_clean_error_for_a_route_the_server_lacks(triton_client):
    # tritonclient concatenated nosetrack's error object to a string and died with a TypeError.
    with pytest.raises(InferenceServerException, match=r"not found|Unknown model"):
        triton_client.get_model_config("no-such-model")


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"inputs": ' * 50_000, b'{"inputs": [\xff]}', '{"inputs": []}'.encode("utf-16")[:-1]],
)
def test_hostile_json_to_infer_is_400(client, body):
    response = client.post(f"/v2/models/{MODEL}/infer", data=body)
    assert response.status_code == 400 and isinstance(response.get_json()["error"], str)
