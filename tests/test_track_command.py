"""`nosetrack track` on a short video the test makes: one row per face per frame, and the drawn video."""

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nosetrack.cli import main
from nosetrack.client import Client, timed_frames

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


@pytest.fixture(scope="module")
def video_with_a_gap(tmp_path_factory, astronaut_bgr):
    """9 frames: a face for 3, none for 3, the face again for 3."""
    path = tmp_path_factory.mktemp("gap") / "gap.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for number in range(9):
        frame = np.full((480, 640, 3), 110, np.uint8)
        if not 3 <= number < 6:
            frame[0:480, 64:576] = astronaut_bgr[:480]
        writer.write(frame)
    writer.release()
    return path


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_frame_without_a_face_gets_an_empty_row_of_its_own(video_with_a_gap, tmp_path, suffix):
    output = tmp_path / f"noses.{suffix}"
    assert main(["track", str(video_with_a_gap), "-o", str(output)]) == 0
    if suffix == "csv":
        rows = list(csv.DictReader(output.open()))
        empty = [row for row in rows if row["id"] == ""]
    else:
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        empty = [row for row in rows if "id" not in row]
    assert [int(row["frame"]) for row in rows] == list(range(9))
    assert [int(row["frame"]) for row in empty] == [3, 4, 5]
    assert all(float(row["timestamp"]) == pytest.approx(int(row["frame"]) / 30, abs=1e-3) for row in empty)


@pytest.mark.parametrize(("suffix", "codec"), [("mp4", "h264"), ("webm", "vp9")])
def test_the_annotated_video_is_one_browsers_play(video, tmp_path, suffix, codec, capsys):
    av = pytest.importorskip("av")
    drawn = tmp_path / f"drawn.{suffix}"
    assert main(["track", str(video), "-o", str(tmp_path / "noses.csv"), "--annotate", str(drawn)]) == 0
    with av.open(str(drawn)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec
        frames = list(container.decode(stream))
    assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (640, 480)
    assert "browsers" not in capsys.readouterr().err


def test_without_pyav_the_annotated_video_says_browsers_will_not_play_it(
    video, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(__import__("sys").modules, "av", None)  # import av fails
    drawn = tmp_path / "drawn.mp4"
    assert main(["track", str(video), "-o", str(tmp_path / "noses.csv"), "--annotate", str(drawn)]) == 0
    assert int(cv2.VideoCapture(str(drawn)).get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    error = capsys.readouterr().err
    assert "browsers do not play" in error and "pip install av" in error and ".webm" in error


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_track_shows_a_progress_bar_on_a_terminal(video, tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["track", str(video), "-o", str(tmp_path / "noses.csv")]) == 0
    shown = terminal.getvalue()
    assert f"{FRAMES}/{FRAMES}" in shown and "frame/s" in shown


def test_client_track_takes_each_frames_time_from_the_video(video, live_server):
    answers = list(Client(live_server.url).track(cv2.VideoCapture(str(video))))
    assert [answer["frame"] for answer in answers] == list(range(FRAMES))
    assert [answer["timestamp"] for answer in answers] == pytest.approx(np.arange(FRAMES) / 30, abs=1e-3)
    assert {face["id"] for answer in answers for face in answer["faces"]} == {1}
    assert answers[-1]["faces"][0]["age"] == pytest.approx((FRAMES - 1) / 30, abs=1e-3)


def test_bare_frames_are_stamped_with_the_clients_clock():
    stamped = list(timed_frames(iter([b"one", b"two"])))
    assert [frame for frame, _ in stamped] == [b"one", b"two"]
    assert stamped[0][1] == 0.0 and stamped[1][1] >= 0.0
    assert list(timed_frames([(b"one", 5.0)])) == [(b"one", 5.0)]


def test_async_client_tracks_like_the_client(video, live_server):
    pytest.importorskip("httpx")
    from nosetrack import AsyncClient

    async def tracked() -> list[dict]:
        async with AsyncClient(live_server.url) as client:
            return [
                answer async for answer in client.track(cv2.VideoCapture(str(video)), options={"beta": 8})
            ]

    answers = asyncio.run(tracked())
    expected = list(Client(live_server.url).track(cv2.VideoCapture(str(video)), options={"beta": 8}))
    assert [answer["frame"] for answer in answers] == list(range(FRAMES))
    assert [a["timestamp"] for a in answers] == [b["timestamp"] for b in expected]
    assert [[f["id"] for f in a["faces"]] for a in answers] == [
        [f["id"] for f in b["faces"]] for b in expected
    ]
    assert [a["x"] for a in answers] == pytest.approx([b["x"] for b in expected], abs=1e-6)


def test_in_process_tracking_takes_a_video_capture_with_the_files_timestamps(video, model):
    import nosetrack

    frames = list(nosetrack.track(cv2.VideoCapture(str(video)), model))
    assert [frame.timestamp for frame in frames] == pytest.approx(np.arange(FRAMES) / 30, abs=1e-3)
    assert {face.id for frame in frames for face in frame.faces} == {1}
