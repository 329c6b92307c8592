"""Video in and tracks out, for `nosetrack track`: frames with timestamps from a file or a camera, and the
answers written as one row per face per frame (CSV or JSON Lines) and, optionally, as an annotated video.

Everything here works on the wire answers (`answer.tracked_answer`), so the same writer serves frames tracked
in process and frames tracked by a server (`tracked_by_server`, over WS /v1/track).
"""

from __future__ import annotations

import csv
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import cv2
import numpy as np

from .annotate import draw_tracked
from .annotated_video import AnnotatedVideo

if TYPE_CHECKING:
    from .client import Client

TRACK_COLUMNS = (
    "frame",
    "timestamp",
    "id",
    "tracked",
    "age",
    "x",
    "y",
    "nose_x",
    "nose_y",
    "nose_raw_x",
    "nose_raw_y",
    "score",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
)


@dataclass
class VideoSource:
    """An opened video file or camera: its frames per second and frame count when it knows them."""

    capture: cv2.VideoCapture
    is_camera: bool
    fps: float
    frame_count: int | None

    @classmethod
    def open(cls, source: str) -> VideoSource:
        """A video file, or a camera by its index ("0"); `ValueError` when it cannot be opened."""
        is_camera = source.isdigit()
        # OpenCV logs each backend it tries and fails (WARN and ERROR blocks); our sentence below says it.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            capture = cv2.VideoCapture(int(source) if is_camera else source)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not capture.isOpened():
            raise ValueError(f"Cannot open {'camera' if is_camera else 'video'} {source}.")
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return cls(capture, is_camera, fps, count if count > 0 and not is_camera else None)

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """BGR frames with their timestamps in seconds: the file's own, or the clock's for a camera."""
        return capture_frames(self.capture, self.is_camera)


def is_live(capture: cv2.VideoCapture) -> bool:
    """Whether a capture is a camera (or another live source): it knows no frame count."""
    return capture.get(cv2.CAP_PROP_FRAME_COUNT) <= 0


def capture_frames(
    capture: cv2.VideoCapture, is_camera: bool | None = None
) -> Iterator[tuple[np.ndarray, float]]:
    """An OpenCV capture's BGR frames with their timestamps in seconds, until it ends (then released).

    A file's timestamps are its own (`CAP_PROP_POS_MSEC`: the same clip gets the same times wherever it is
    tracked); a camera's come from the clock when each frame is read. A file whose container gives no
    position falls back on its frame rate.
    """
    is_camera = is_live(capture) if is_camera is None else is_camera
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    started = time.monotonic()
    number = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            if is_camera:
                timestamp = time.monotonic() - started
            else:
                timestamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 or number / fps
            yield image, timestamp
            number += 1
    finally:
        capture.release()


def tracked_by_server(
    frames: Iterable[tuple[np.ndarray, float]], client: Client, options: dict[str, Any] | None = None
) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """Each frame with the answer a server gave it (`client.track`, over WS /v1/track).

    The client sends two frames ahead of their answers, so the frames not yet answered are kept here until
    their answer comes; a frame the server skipped for a newer one is let go. `ServerError` for a frame the
    server could not use (OpenCV's own frames, sent as JPEG, never are).
    """
    from .client import ServerError

    kept: deque[np.ndarray] = deque()

    def remembered() -> Iterator[tuple[np.ndarray, float]]:
        for image, timestamp in frames:
            kept.append(image)
            yield image, timestamp

    first = 0
    for answer in client.track(remembered(), options=options):
        if "error" in answer:
            error = answer["error"]
            raise ServerError(error["status"], error["code"], f"frame {error['frame']}: {error['message']}")
        while first < answer["frame"]:
            kept.popleft()
            first += 1
        first += 1
        yield kept.popleft(), answer


def face_rows(number: int, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per face of a tracked answer: smoothed nose (normalized and pixels), raw nose, box, the id's
    age. A frame without a face gets one row of its own, with its number and timestamp and nothing else."""
    if not answer["faces"]:
        return [{"frame": number, "timestamp": answer.get("timestamp")}]
    rows = []
    for face in answer["faces"]:
        box = face.get("box") or {}
        raw = face.get("nose_raw") or {}
        rows.append(
            {
                "frame": number,
                "timestamp": answer.get("timestamp"),
                "id": face.get("id"),
                "tracked": face.get("tracked"),
                "age": face.get("age"),
                "x": face["x"],
                "y": face["y"],
                "nose_x": face["nose"]["x"],
                "nose_y": face["nose"]["y"],
                "nose_raw_x": raw.get("x"),
                "nose_raw_y": raw.get("y"),
                "score": face.get("score"),
                "box_x": box.get("x"),
                "box_y": box.get("y"),
                "box_width": box.get("width"),
                "box_height": box.get("height"),
            }
        )
    return rows


def write_tracks(
    frames: Iterable[tuple[np.ndarray, dict[str, Any]]],
    output: TextIO,
    format: str = "csv",
    annotate_path: str | None = None,
    fps: float = 30.0,
    note: Callable[[str], None] | None = None,
) -> int:
    """Write each (frame, tracked answer) pair as rows (a frame without a face as an empty row), and drawn
    into `annotate_path` (.mp4: H.264, .webm: VP9; `annotated_video`) when given. `note` hears, once, when
    that video will not play in a browser. Returns the number of frames written."""
    writer = csv.DictWriter(output, TRACK_COLUMNS) if format == "csv" else None
    if writer:
        writer.writeheader()
    video = AnnotatedVideo(annotate_path, fps) if annotate_path else None
    count = 0
    try:
        for number, (image, answer) in enumerate(frames):
            for row in face_rows(answer.get("frame", number), answer):  # a server numbers its frames
                if writer:
                    writer.writerow(row)
                else:
                    output.write(json.dumps(row) + "\n")
            if video is not None:
                video.write(draw_tracked(image, answer))
                if count == 0 and video.note and note:
                    note(video.note)
            count += 1
    finally:
        if video is not None:
            video.close()
    return count
