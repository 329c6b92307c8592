"""`nosetrack track VIDEO`: a short video the test makes with OpenCV, tracked in process and on a server."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

from nosetrack.cli import main

FRAMES = 24
FPS = 24.0
SHIFT_PX = 60.0


@pytest.fixture(scope="module")
def video(tmp_path_factory, astronaut_bgr):
    """The photograph drifting right by up to SHIFT_PX and back, in a 640x480 MP4."""
    path = tmp_path_factory.mktemp("video") / "drift.mp4"
    face = cv2.resize(astronaut_bgr, (480, 480), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    for index in range(FRAMES):
        shift = np.float32([[1, 0, 40 + SHIFT_PX * math.sin(math.pi * index / FRAMES)], [0, 1, 0]])
        writer.write(cv2.warpAffine(face, shift, (640, 480), borderValue=(40, 40, 40)))
    writer.release()
    return path


def read_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_tracked_every_frame(rows: list[dict]) -> None:
    assert [int(row["frame"]) for row in rows] == list(range(FRAMES))  # one face in every frame
    assert {row["id"] for row in rows} == {"1"}
    assert float(rows[1]["timestamp"]) == pytest.approx(1 / FPS)
    xs = [float(row["nose_x"]) for row in rows]
    assert max(xs) - xs[0] > 0.6 * SHIFT_PX, "the nose follows the drift"
    assert all(row["tracked"] == "True" for row in rows[1:6])  # FaceMesh on the last frame's crop


@pytest.mark.slow
def test_track_in_process_writes_a_row_per_face_and_frame_and_the_drawn_video(video, tmp_path):
    rows_path, drawn_path = tmp_path / "noses.csv", tmp_path / "drawn.mp4"
    assert main(["track", str(video), "-o", str(rows_path), "--annotate", str(drawn_path)]) == 0
    assert_tracked_every_frame(read_rows(rows_path))
    drawn = cv2.VideoCapture(str(drawn_path))
    assert int(drawn.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, first = drawn.read()
    original = cv2.VideoCapture(str(video)).read()[1]
    assert ok and np.abs(first.astype(int) - original).mean() > 0.1  # something is drawn on it


def test_track_through_a_server_gives_the_same_rows_as_in_process(video, tmp_path, live_server):
    served, local = tmp_path / "served.jsonl", tmp_path / "local.csv"
    assert main(["track", str(video), "--url", live_server.url, "-o", str(served)]) == 0
    assert main(["track", str(video), "-o", str(local)]) == 0
    served_rows = [json.loads(line) for line in served.read_text().splitlines()]
    local_rows = read_rows(local)
    assert_tracked_every_frame([{key: str(value) for key, value in row.items()} for row in served_rows])
    # The server gets each frame as a JPEG, so its noses differ from in process by compression alone.
    gaps = [float(a["nose_x"]) - b["nose_x"] for a, b in zip(local_rows, served_rows, strict=True)]
    assert max(map(abs, gaps)) < 3.0


def test_track_refuses_bad_options_and_missing_videos(video, tmp_path, capsys):
    assert main(["track", str(tmp_path / "missing.mp4")]) == 2
    assert main(["track", str(video), "--options", '{"beta": -1}']) == 2
    assert "beta" in capsys.readouterr().err
