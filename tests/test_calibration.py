"""A user's nose point: the map fitted, written, read back and applied wherever the model predicts."""

import json
import struct

import cv2
import numpy as np
import pytest
from conftest import make_test_app

from nosetrack.calibrate import CrossValidation, Sample, cross_validate
from nosetrack.cli import main
from nosetrack.config import Settings
from nosetrack.evaluation import LabelledFace
from nosetrack.launcher import free_port
from nosetrack.models import load_model
from nosetrack.models.calibration import CalibrationError, NoseCalibration, fit_calibration
from nosetrack.models.face_mesh_reading import MESH_NOSE_TIP, MeshReading
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app
from nosetrack.testsets import write_jpeg, write_labels

TRUTH = NoseCalibration(offset=(0.03, 0.07), landmarks=(1, 5), weights=(0.4, -0.2))


def made_up_reading(rng: np.random.Generator, angle: float = 0.0, scale: float = 60.0) -> MeshReading:
    """468 random points in face units (eyes one unit apart, the tip between and below them), turned and
    scaled into an image."""
    points = rng.normal(0.0, 0.5, (468, 2))
    points[[33, 133]] = [[-0.5, 0.0], [-0.5, 0.0]]
    points[[263, 362]] = [[0.5, 0.0], [0.5, 0.0]]
    points[4] = [0.0, 0.6]
    points[[1, 5]] = points[4] + rng.normal(0.0, 0.08, (2, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    image_points = points @ np.array([[cos, sin], [-sin, cos]]) * scale + [300.0, 200.0]
    return MeshReading(image_points)


def test_no_calibration_is_the_mesh_tip():
    reading = made_up_reading(np.random.default_rng(0))
    assert NoseCalibration()(reading) == pytest.approx(MESH_NOSE_TIP(reading))


def test_the_offset_turns_and_scales_with_the_face():
    rng = np.random.default_rng(1)
    shift_down = NoseCalibration(offset=(0.0, 0.1), weights=(0.0, 0.0))
    upright, on_its_side = made_up_reading(rng, 0.0, 60.0), made_up_reading(rng, np.pi / 2, 120.0)
    assert shift_down(upright) - MESH_NOSE_TIP(upright) == pytest.approx([0.0, 6.0])
    assert shift_down(on_its_side) - MESH_NOSE_TIP(on_its_side) == pytest.approx([-12.0, 0.0])


def test_a_fit_recovers_the_map_that_made_the_labels():
    rng = np.random.default_rng(2)
    readings = [made_up_reading(rng, rng.uniform(-1, 1), rng.uniform(30, 200)) for _ in range(30)]
    noses = np.array([TRUTH(reading) for reading in readings])
    fitted = fit_calibration(readings, noses, strength=1e-9)
    assert fitted.numbers == pytest.approx(TRUTH.numbers, abs=1e-4)


def test_strength_holds_the_weights_near_the_mesh_tip():
    rng = np.random.default_rng(3)
    readings = [made_up_reading(rng) for _ in range(30)]
    fitted = fit_calibration(readings, np.array([TRUTH(r) for r in readings]), strength=1e3)
    assert np.abs(fitted.weights).max() < 0.01
    assert fitted.offset == pytest.approx(TRUTH.offset, abs=0.02)


def test_a_calibration_survives_its_file(tmp_path):
    path = tmp_path / "nose.toml"
    TRUTH.save(path)
    assert NoseCalibration.load(path) == TRUTH
    assert "# nosetrack nose calibration" in path.read_text()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("offset = [1, 2", "not valid TOML"),
        ("[other]\noffset = [0, 0]", "lacks 'calibration'"),
        ("[calibration]\nlandmarks = [1]\nweights = [0.1]", "lacks 'offset'"),
        ("[calibration]\noffset = [0, 0]\nlandmarks = [1, 5]\nweights = [0.1]", "2 landmarks but 1 weights"),
        ("[calibration]\noffset = [0, 0]\nlandmarks = [999]\nweights = [0.1]", "not FaceMesh's"),
        ("[calibration]\noffset = ['a', 0]", "lists of numbers"),
    ],
)
def test_a_broken_calibration_file_is_named_with_what_to_fix(tmp_path, text, fragment):
    path = tmp_path / "nose.toml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=fragment):
        NoseCalibration.load(path)


def test_a_missing_calibration_file_stops_the_server_with_one_sentence(tmp_path, capsys):
    assert (
        main(
            [
                "serve",
                "--port",
                str(free_port()),
                "--calibration",
                str(tmp_path / "absent.toml"),
                "--log-file",
                "",
            ]
        )
        == 2
    )
    assert "Cannot read the calibration" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shift_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibration") / "down.toml"
    NoseCalibration(offset=(0.0, 0.2), weights=(0.0, 0.0)).save(path)
    return path


def test_load_model_applies_the_calibration_inside_predict(model, astronaut_bgr, shift_file):
    (item,) = model.read_faces(astronaut_bgr)
    interocular = np.hypot(*np.subtract(*item.reading.eye_centres()))
    calibrated = load_model(calibration=shift_file).predict(astronaut_bgr).faces[0]
    moved = np.array([calibrated.nose_x - item.face.nose_x, calibrated.nose_y - item.face.nose_y])
    assert moved == pytest.approx([0.0, 0.2 * interocular], abs=0.02 * interocular)


def test_the_server_and_v2_apply_the_calibration(face_jpeg, astronaut_bgr, shift_file):
    calibrated = load_model(calibration=shift_file).predict(astronaut_bgr).faces[0]
    client = make_test_app(ModelPool(lambda: load_model(calibration=shift_file), 1)).test_client()
    answer = client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg").get_json()
    assert answer["nose"] == pytest.approx({"x": calibrated.nose_x, "y": calibrated.nose_y}, abs=1)
    assert client.get("/version").get_json()["model"]["nose"]["file"] == str(shift_file)
    tensor = {"name": "IMAGE", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 0}}
    tensor["parameters"]["binary_data_size"] = len(face_jpeg) + 4
    header = json.dumps({"inputs": [tensor]}).encode()
    response = client.post(
        "/v2/models/nosetrack-facemesh/infer",
        data=header + struct.pack("<I", len(face_jpeg)) + face_jpeg,
        headers={"Inference-Header-Content-Length": str(len(header))},
        content_type="application/octet-stream",
    )
    nose = next(o for o in response.get_json()["outputs"] if o["name"] == "NOSE")["data"]
    height, width = astronaut_bgr.shape[:2]
    assert nose == pytest.approx([calibrated.nose_x / width, calibrated.nose_y / height], abs=0.003)


def test_the_app_factory_loads_its_models_with_the_calibration(face_jpeg, astronaut_bgr, shift_file):
    calibrated = load_model(calibration=shift_file).predict(astronaut_bgr).faces[0]
    app = create_app(Settings(log_file="", model_instances=1, calibration=str(shift_file), min_face=60.0))
    answer = app.test_client().post("/v1/nose", data=face_jpeg, content_type="image/jpeg").get_json()
    assert answer["nose"] == pytest.approx({"x": calibrated.nose_x, "y": calibrated.nose_y}, abs=1)
    assert app.test_client().get("/version").get_json()["model"]["min_face"] == 60.0


def test_serve_reads_the_calibration_and_min_face_from_the_environment(shift_file):
    environment = {"NOSETRACK_CALIBRATION": str(shift_file), "NOSETRACK_MIN_FACE": "25"}
    settings = Settings.from_environment(environment)
    assert (settings.calibration, settings.min_face) == (str(shift_file), 25.0)


def test_cross_validation_shows_what_a_calibration_gains_where_annotators_differ():
    rng = np.random.default_rng(4)
    samples = []
    for index in range(40):
        reading = made_up_reading(rng, rng.uniform(-0.5, 0.5), rng.uniform(40, 120))
        nose = TRUTH(reading) + rng.normal(0.0, 1.0, 2)
        left, right = reading.eye_centres()
        label = LabelledFace(f"{index}.jpg", tuple(nose), (tuple(left), tuple(right)))
        samples.append(Sample(label, reading))
    result = cross_validate(samples, folds=5, strength=1e-4)
    assert result.before["median_error"] > 0.06 and result.after["median_error"] < 0.03
    assert result.variation < 0.1
    assert "variation between folds" in result.as_text(5)


@pytest.fixture(scope="module")
def annotators_who_mark_lower(tmp_path_factory, model, astronaut_bgr):
    """Turned and scaled copies of the astronaut, labelled 12% of the eye distance under FaceMesh's tip."""
    folder = tmp_path_factory.mktemp("lower")
    (folder / "images").mkdir()
    faces = []
    turns_and_sizes = [(angle, scale) for angle in (-20, -10, 0, 10, 20) for scale in (0.8, 1.0)]
    for index, (angle, scale) in enumerate(turns_and_sizes):
        matrix = cv2.getRotationMatrix2D((256.0, 256.0), angle, scale)
        image = cv2.warpAffine(astronaut_bgr, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
        name = f"astronaut_{index}.jpg"
        write_jpeg(folder / "images" / name, image)
        (item,) = model.read_faces(cv2.imread(str(folder / "images" / name)))
        left, right = item.reading.eye_centres()
        down_the_face = np.array([left[1] - right[1], right[0] - left[0]])  # the eye line turned a quarter
        nose = np.array([item.face.nose_x, item.face.nose_y]) + 0.12 * down_the_face
        faces.append(LabelledFace(name, tuple(nose), (tuple(left), tuple(right))))
    write_labels(folder / "labels.csv", faces)
    return folder


def test_calibrate_then_eval_with_the_calibration(annotators_who_mark_lower, tmp_path, capsys):
    fitted = tmp_path / "nose.toml"
    assert main(["calibrate", str(annotators_who_mark_lower), "-o", str(fitted)]) == 0
    printed = capsys.readouterr().out
    assert "5-fold cross-validation" in printed and "variation between folds" in printed
    figures = {}
    for name, extra in (("mesh", []), ("calibrated", ["--calibration", str(fitted)])):
        path = tmp_path / f"{name}.json"
        assert main(["eval", str(annotators_who_mark_lower), "--json", str(path), *extra]) == 0
        figures[name] = json.loads(path.read_text())
    assert figures["mesh"]["median_error"] > 0.1 and figures["calibrated"]["median_error"] < 0.02


def test_calibrate_says_when_there_are_too_few_faces(annotators_who_mark_lower, tmp_path, capsys):
    assert (
        main(["calibrate", str(annotators_who_mark_lower), "-o", str(tmp_path / "x.toml"), "--folds", "6"])
        == 1
    )
    assert "too few" in capsys.readouterr().err
    assert not (tmp_path / "x.toml").exists()


def test_eval_against_a_server_leaves_the_calibration_to_the_server(
    annotators_who_mark_lower, shift_file, capsys
):
    arguments = ["eval", str(annotators_who_mark_lower), "--url", "http://127.0.0.1:9", "--calibration"]
    assert main([*arguments, str(shift_file)]) == 2
    assert "the server's own" in capsys.readouterr().err


def test_the_tracker_follows_the_calibrated_nose(model, astronaut_bgr, shift_file):
    from nosetrack.tracking import track

    (item,) = model.read_faces(astronaut_bgr)
    interocular = np.hypot(*np.subtract(*item.reading.eye_centres()))
    frames = list(track([astronaut_bgr] * 4, load_model(calibration=shift_file)))
    uncalibrated = list(track([astronaut_bgr] * 4, model))
    for calibrated, plain in zip(frames[1:], uncalibrated[1:], strict=True):
        assert calibrated.faces[0].tracked  # followed by the mesh, not detected again
        moved = np.subtract(
            (calibrated.faces[0].raw.nose_x, calibrated.faces[0].raw.nose_y),
            (plain.faces[0].raw.nose_x, plain.faces[0].raw.nose_y),
        )
        assert moved == pytest.approx([0.0, 0.2 * interocular], abs=0.03 * interocular)


@pytest.fixture(scope="module")
def annotators_who_mark_the_mesh_tip(tmp_path_factory, model, astronaut_bgr):
    """The astronaut turned, labelled at FaceMesh's own tip give or take a few pixels of an annotator's
    randomness: a calibration can only fit that randomness, and measures worse on faces it did not see."""
    folder = tmp_path_factory.mktemp("tip")
    (folder / "images").mkdir()
    faces = []
    rng = np.random.default_rng(1)
    for index, angle in enumerate((-20, -15, -10, -5, 0, 5, 10, 15, 20, 25)):
        matrix = cv2.getRotationMatrix2D((256.0, 256.0), angle, 1.0)
        image = cv2.warpAffine(astronaut_bgr, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
        name = f"astronaut_{index}.jpg"
        write_jpeg(folder / "images" / name, image)
        (item,) = model.read_faces(cv2.imread(str(folder / "images" / name)))
        left, right = item.reading.eye_centres()
        nose = MESH_NOSE_TIP(item.reading) + rng.normal(0.0, 3.0, 2)
        faces.append(LabelledFace(name, tuple(nose), (tuple(left), tuple(right))))
    write_labels(folder / "labels.csv", faces)
    return folder


def test_calibrate_says_when_it_measured_worse_and_then_writes_nothing(
    annotators_who_mark_the_mesh_tip, tmp_path, capsys
):
    fitted = tmp_path / "nose.toml"
    assert main(["calibrate", str(annotators_who_mark_the_mesh_tip), "-o", str(fitted), "--folds", "2"]) == 1
    printed = capsys.readouterr().out
    assert "The calibration measured WORSE than FaceMesh's own tip on faces it did not see: " in printed
    assert f"Nothing written to {fitted}: add --even-if-worse" in printed
    assert not fitted.exists()
    arguments = ["calibrate", str(annotators_who_mark_the_mesh_tip), "-o", str(fitted), "--folds", "2"]
    assert main([*arguments, "--even-if-worse"]) == 0
    assert fitted.exists()


def test_calibrate_without_an_output_writes_nothing(annotators_who_mark_lower, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", str(annotators_who_mark_lower)]) == 0
    assert "Nothing written: give --output FILE" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_worse_figures_name_each_figure_that_got_worse():
    result = cross_validate_stub(
        before={
            "median_error": 0.04,
            "p90_error": 0.0799,
            "share_under_5_percent": 0.6,
            "median_pixel_error": 2.0,
        },
        after={
            "median_error": 0.03,
            "p90_error": 0.0825,
            "share_under_5_percent": 0.5,
            "median_pixel_error": 2.0,
        },
    )
    assert result.worse_figures() == ["p90 7.99% -> 8.25%", "under 5% 60.0% -> 50.0%"]


def cross_validate_stub(before: dict, after: dict) -> CrossValidation:
    return CrossValidation(before, after, np.zeros((2, 2)), NoseCalibration())


def test_eval_and_calibrate_report_progress_image_by_image(annotators_who_mark_lower, model):
    from nosetrack.calibrate import collect_samples
    from nosetrack.evaluation import evaluate, model_predictor

    seen: list[str] = []

    def progress(names):
        for name in names:
            seen.append(name)
            yield name

    report = evaluate(annotators_who_mark_lower, model_predictor(model), progress=progress)
    assert len(seen) == len(report.outcomes) == 10
    seen.clear()
    samples, _ = collect_samples(annotators_who_mark_lower, model, progress=progress)
    assert len(seen) == len(samples) == 10
