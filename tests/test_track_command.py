"""`nosetrack track` on a short video the test makes: one row per face per frame, and the drawn video."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nosetrack.cli import main

FRAMES = 12


@pytest.fixture(scope="module")
def video(tmp_path_factory, astronaut_bgr):
    """12 frames at 30 fps of a face sliding right by 4 pixels a frame, written by OpenCV."""
    path = tmp_path_factory.mktemp("video") / "face.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for number in range(FRAMES):
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[0:480, 40 + 4 * number : 40 + 4 * number + 512] = astronaut_bgr[:480]
        writer.write(frame)
    writer.release()
    return path


def test_track_writes_one_row_per_face_per_frame_with_a_stable_id(video, tmp_path):
    output = tmp_path / "noses.csv"
    assert main(["track", str(video), "-o", str(output)]) == 0
    rows = list(csv.DictReader(output.open()))
    assert [int(row["frame"]) for row in rows] == list(range(FRAMES))
    assert {row["id"] for row in rows} == {"1"}
    assert float(rows[1]["timestamp"]) == pytest.approx(1 / 30, abs=1e-3)
    raw_x = [float(row["nose_raw_x"]) for row in rows]
    assert raw_x[-1] - raw_x[0] == pytest.approx(4 * (FRAMES - 1), abs=6)
    assert all(row["tracked"] == "True" for row in rows[1:])


def test_track_writes_json_lines_and_the_annotated_video(video, tmp_path):
    output, drawn = tmp_path / "noses.jsonl", tmp_path / "drawn.mp4"
    assert main(["track", str(video), "-o", str(output), "--annotate", str(drawn), "--beta", "2"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == FRAMES and rows[0]["nose_raw_x"] == pytest.approx(rows[0]["nose_x"])
    capture = cv2.VideoCapture(str(drawn))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, first = capture.read()
    assert ok and first.shape == (480, 640, 3)


def test_track_refuses_a_video_it_cannot_open_and_a_bad_option_in_one_sentence(tmp_path, video, capsys):
    assert main(["track", str(tmp_path / "missing.mp4")]) == 2
    assert "Cannot open video" in capsys.readouterr().err
    assert main(["track", str(video), "--min-cutoff", "0"]) == 2
    assert "'min_cutoff' must be a number of Hz above 0" in capsys.readouterr().err


def test_track_through_a_server_writes_what_in_process_tracking_writes(video, tmp_path, live_server):
    served, local = tmp_path / "served.csv", tmp_path / "local.csv"
    assert main(["track", str(video), "--url", live_server.url, "-o", str(served)]) == 0
    assert main(["track", str(video), "-o", str(local)]) == 0
    served_rows, local_rows = list(csv.DictReader(served.open())), list(csv.DictReader(local.open()))
    assert [(row["frame"], row["id"]) for row in served_rows] == [
        (row["frame"], row["id"]) for row in local_rows
    ]
    assert [row["timestamp"] for row in served_rows] == [row["timestamp"] for row in local_rows]
    # The server gets each frame as a JPEG, so its noses differ from in process by compression alone.
    gaps = [float(a["nose_x"]) - float(b["nose_x"]) for a, b in zip(served_rows, local_rows, strict=True)]
    assert max(map(abs, gaps)) < 3.0


def test_track_through_a_server_that_is_not_there_fails_in_one_sentence(video, capsys):
    from nosetrack.launcher import free_port

    assert main(["track", str(video), "--url", f"http://127.0.0.1:{free_port()}"]) == 1
    assert capsys.readouterr().err.startswith("nosetrack: ")


@pytest.mark.skipif(Path("/dev/video0").exists(), reason="this machine has a camera")
def test_track_without_a_camera_says_one_sentence_and_no_opencv_log(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nosetrack.cli", "track", "0"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == "nosetrack: Cannot open camera 0.\n"
