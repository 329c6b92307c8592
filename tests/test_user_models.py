"""Users' own models (tests/fixtures/models, made by make_models.py): fed and read exactly as declared."""

import base64
import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import encode, make_test_app

from nosetrack.answer import prediction_answer
from nosetrack.cli import main
from nosetrack.launcher import free_port
from nosetrack.models import ModelSpecError, load_model
from nosetrack.pool import ModelPool

MODELS = Path(__file__).parent / "fixtures" / "models"
SEED_PB = MODELS / "nose_tracker_seed.pb"


@pytest.fixture(scope="module")
def wide_face(astronaut_bgr):
    """Not square, so stretching and letterboxing differ."""
    return np.ascontiguousarray(astronaut_bgr[100:400])


def seed_forward(image: np.ndarray) -> np.ndarray:
    """The seed notebook's own code, line for line."""
    model = cv2.dnn.readNetFromTensorflow(str(SEED_PB))
    batch = cv2.resize(image, (112, 112))
    batch = batch / 255
    batch = batch[np.newaxis]
    batch = np.transpose(batch, [0, 3, 1, 2])
    model.setInput(batch.astype(np.float32))
    return model.forward()[0]


def test_bare_pb_gets_the_seeds_preprocessing(wide_face):
    prediction = load_model(str(SEED_PB)).predict(wide_face)
    x, y = seed_forward(wide_face)
    answer = prediction_answer(prediction)
    assert answer["x"] == pytest.approx(x, abs=1e-5)
    assert answer["y"] == pytest.approx(y, abs=1e-5)


def test_seed_routes_serve_the_seeds_model(wide_face):
    jpeg = encode(wide_face)
    x, y = seed_forward(cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1))
    client = make_test_app(ModelPool(lambda: load_model(str(SEED_PB)), 2)).test_client()
    as_base64 = client.post("/image-64", json={"image": base64.b64encode(jpeg).decode()}).get_json()
    as_form = client.post("/image-bin", data={"image": (io.BytesIO(jpeg), "f.jpg")}).get_json()
    for answer in (as_base64, as_form):
        assert answer["x"] == pytest.approx(x, abs=1e-5)
        assert answer["y"] == pytest.approx(y, abs=1e-5)
        assert answer["model"]["name"] == "nose_tracker_seed"
    version = client.get("/version").get_json()["model"]
    assert version["engine"] == "opencv"
    assert version["input"]["width"] == 112


def test_onnx_keypoints_letterboxed_rgb_normalized(wide_face):
    height, width = wide_face.shape[:2]
    factor = 64 / width
    inner_h = round(height * factor)
    top = (64 - inner_h) // 2
    resized = cv2.resize(wide_face, (64, inner_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((64, 64, 3), np.uint8)
    canvas[top : top + inner_h] = resized
    rgb = canvas[:, :, ::-1].astype(np.float32) / 255
    tensor = ((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[np.newaxis]
    session = onnxruntime.InferenceSession(str(MODELS / "keypoints.onnx"))
    keypoints, logit = session.run(None, {"image": tensor.astype(np.float32)})
    nose_x, nose_y = keypoints.reshape(5, 2)[2]

    face = load_model(str(MODELS / "keypoints.toml")).predict(wide_face).faces[0]
    assert face.nose_x == pytest.approx(nose_x / factor, abs=1e-3)
    assert face.nose_y == pytest.approx((nose_y - top) / factor, abs=1e-3)
    assert face.score == pytest.approx(1 / (1 + np.exp(-logit.item())), abs=1e-6)


def test_spec_beside_the_model_file_is_found(wide_face):
    by_spec = load_model(str(MODELS / "keypoints.toml")).predict(wide_face)
    by_file = load_model(str(MODELS / "keypoints.onnx")).predict(wide_face)
    assert by_spec == by_file


def test_tflite_nhwc_rgb_in_minus_one_to_one(wide_face):
    rgb = cv2.resize(wide_face, (96, 96))[:, :, ::-1].astype(np.float32)
    tensor = (rgb * (2 / 255) - 1)[np.newaxis]
    interpreter = Interpreter(model_path=str(MODELS / "nose_nhwc.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    x, y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    answer = prediction_answer(load_model(str(MODELS / "nose_nhwc.toml")).predict(wide_face))
    assert answer["x"] == pytest.approx(x, abs=1e-5)
    assert answer["y"] == pytest.approx(y, abs=1e-5)


def write_spec(tmp_path: Path, text: str, name: str = "spec.toml") -> str:
    path = tmp_path / name
    path.write_text(text.replace("MODELS", str(MODELS)))
    return str(path)


KEYPOINTS_SPEC = """
[model]
file = "MODELS/keypoints.onnx"
[input]
size = [64, 64]
color = "RGB"
[output]
kind = "keypoints"
units = "pixels"
nose = 2
score_tensor = 1
score_activation = "sigmoid"
"""


def test_score_under_the_minimum_means_no_face(tmp_path, wide_face):
    spec = write_spec(tmp_path, KEYPOINTS_SPEC + "min_score = 1.0\n")
    prediction = load_model(spec).predict(wide_face)
    assert prediction.detected is False
    assert prediction_answer(prediction)["x"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = [64, 64]\nsizee = 3\n",
            "unknown key 'sizee' in [input]",
        ),
        (
            "[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = [64, 64]\nlayout = 'CHW'\n",
            "layout = 'CHW'; use one of NCHW, NHWC",
        ),
        ("[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = 64\n", "size must be a list of 2 numbers"),
        ("[model]\nfile = 'MODELS/keypoints.onnx'\n", "[input] needs size = [width, height]"),
        ("[input]\nsize = [64, 64]\n", "[model] needs file ="),
        ("[model]\nfile = 'MODELS/missing.onnx'\n[input]\nsize = [64, 64]\n", "missing.onnx does not exist"),
        (
            "[model]\nfile = 'MODELS/keypoints.onnx'\nengine = 'tensorrt'\n[input]\nsize = [64, 64]\n",
            "use one of litert, onnxruntime, opencv",
        ),
        (
            "[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = [112, 112]\n",
            "takes input of shape (1, 3, 64, 64), but its spec gives (1, 3, 112, 112)",
        ),
        (
            "[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = [64, 64]\n",
            'holds 10 values; kind = "xy" needs exactly 2',
        ),
        (
            "[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = [64, 64]\n"
            "[output]\nkind = 'keypoints'\nnose = 5\n",
            "not enough for keypoint 5",
        ),
        (
            "[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = [64, 64]\n[output]\ntensor = 4\n",
            "has 2 outputs; its spec reads output 4",
        ),
        (
            "[model]\nfile = 'MODELS/nose_tracker_seed.pb'\n[input]\nsize = [100, 100]\n",
            "fails on an input of shape (1, 3, 100, 100)",
        ),
        ("[model\nfile = 1", "is not valid TOML"),
        ("[model]\nfile = 'MODELS/keypoints.onnx'\n[inputs]\n", "unknown section [inputs]"),
    ],
)
def test_bad_specs_fail_at_load_with_one_clear_sentence(tmp_path, text, message):
    with pytest.raises(ModelSpecError) as caught:
        load_model(write_spec(tmp_path, text))
    assert message in str(caught.value)


def test_broken_model_file_fails_at_load(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a network")
    spec = write_spec(tmp_path, "[model]\nfile = 'broken.onnx'\n[input]\nsize = [8, 8]\n", "broken.toml")
    with pytest.raises(ModelSpecError, match=r"onnxruntime cannot load broken\.onnx"):
        load_model(spec)


def test_model_file_without_a_spec_shows_an_example(tmp_path):
    lone = tmp_path / "lone.tflite"
    lone.write_bytes((MODELS / "nose_nhwc.tflite").read_bytes())
    with pytest.raises(ModelSpecError, match=r"write lone.toml beside it(.|\n)*\[input\]"):
        load_model(str(lone))


@pytest.mark.parametrize("name", ["missing.onnx", "missing.tflite", "missing.pb"])
def test_missing_model_file_is_said_not_to_exist(tmp_path, name):
    with pytest.raises(ModelSpecError, match=rf"{name} does not exist"):
        load_model(str(tmp_path / name))


def test_unknown_model_name_lists_the_built_in_ones():
    with pytest.raises(ModelSpecError, match="facemesh"):
        load_model("no-such-model")


def test_models_command_shows_a_user_models_spec(capsys):
    assert main(["models", "--model", str(MODELS / "keypoints.toml")]) == 0
    output = capsys.readouterr().out
    assert "facemesh (default)" in output
    assert "keypoints-fixture" in output and '"nose": 2' in output


def test_serve_refuses_a_bad_spec_before_starting(tmp_path):
    spec = write_spec(tmp_path, "[model]\nfile = 'MODELS/keypoints.onnx'\n[input]\nsize = [112, 112]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nosetrack.cli",
            "serve",
            "--port",
            str(free_port()),
            "--model",
            spec,
            "--log-file",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "takes input of shape (1, 3, 64, 64)" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_runs_the_seeds_pb_from_the_command_line(tmp_path, face_jpeg):
    import requests
    from conftest import LiveServer

    server = LiveServer(tmp_path, "--model", str(SEED_PB), "--workers", "1", "--threads", "2")
    try:
        answer = requests.post(server.url + "/image-bin", files={"image": face_jpeg}).json()
        x, y = seed_forward(cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), 1))
        assert answer["x"] == pytest.approx(x, abs=1e-5) and answer["y"] == pytest.approx(y, abs=1e-5)
        assert requests.get(server.url + "/version").json()["model"]["name"] == "nose_tracker_seed"
    finally:
        server.stop()
