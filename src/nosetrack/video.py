"""`nosetrack track`'s engine: a video file or camera, frame by frame through the tracker (in process or on a
server), out as one row per face per frame and, when asked, as a video with the faces drawn."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .answer import tracked_answer
from .tracking import TrackerOptions, track

# A frame and its capture time in seconds.
TimedFrame = tuple[np.ndarray, float]
TRACK_COLUMNS = (
    *("frame", "timestamp", "id", "x", "y", "nose_x", "nose_y", "nose_raw_x", "nose_raw_y", "tracked"),
    *("score", "box_x", "box_y", "box_width", "box_height", "error"),
)


@dataclass
class VideoSource:
    """Frames with their timestamps, from a file (its own clock) or a camera (the wall clock)."""

    capture: cv2.VideoCapture
    camera: bool
    fps: float
    frame_count: int | None

    @classmethod
    def open(cls, source: str) -> VideoSource:
        """`source` is a video file, or a camera's index ("0")."""
        camera = source.isdigit()
        capture = cv2.VideoCapture(int(source) if camera else source)
        if not capture.isOpened():
            raise ValueError(f"OpenCV cannot open {'camera' if camera else 'video'} {source}.")
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return cls(capture, camera, fps, count if count > 0 and not camera else None)

    def frames(self) -> Iterator[TimedFrame]:
        started, number = time.monotonic(), 0
        try:
            while True:
                ok, frame = self.capture.read()
                if not ok:
                    return
                # A file's frames are timed by their place in it, so a slow server does not change them.
                yield frame, (time.monotonic() - started) if self.camera else number / self.fps
                number += 1
        finally:
            self.capture.release()


def track_in_process(
    frames: Iterable[TimedFrame], model: Any, options: dict[str, Any] | None
) -> Iterator[dict[str, Any]]:
    """The answers the server would give, computed here (`nosetrack.track` on `model`)."""
    tracker_options = TrackerOptions().with_changes(options or {})
    for number, frame in enumerate(track(frames, model, tracker_options)):
        yield {**tracked_answer(frame), "frame": number}


def with_frames(
    frames: Iterable[TimedFrame], answers_for: Callable[[Iterable[TimedFrame]], Iterator[dict[str, Any]]]
) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """Each answer with the frame it is about: `answers_for` may run ahead of its answers (a server keeps two
    frames in flight), so the frames not yet answered are kept, and a frame skipped unanswered is let go."""
    kept: deque[np.ndarray] = deque()

    def remembered() -> Iterator[TimedFrame]:
        for frame, timestamp in frames:
            kept.append(frame)
            yield frame, timestamp

    first = 0
    for answer in answers_for(remembered()):
        while first < answer["frame"]:
            kept.popleft()
            first += 1
        first += 1
        yield kept.popleft(), answer


def answer_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per face of a frame's answer (one row with only the frame's fields when it has none)."""
    frame = {"frame": answer["frame"], "timestamp": answer.get("timestamp")}
    if "error" in answer:
        return [{**frame, "error": f"{answer['error']['code']}: {answer['error']['message']}"}]
    rows = []
    for face in answer["faces"]:
        box = face.get("box") or {}
        rows.append(
            {
                **frame,
                **{"id": face["id"], "x": face["x"], "y": face["y"]},
                **{"nose_x": face["nose"]["x"], "nose_y": face["nose"]["y"]},
                **{"nose_raw_x": face["nose_raw"]["x"], "nose_raw_y": face["nose_raw"]["y"]},
                **{"tracked": face["tracked"], "score": face["score"]},
                **{f"box_{key}": value for key, value in box.items()},
            }
        )
    return rows or [frame]


class AnnotatedVideo:
    """An MP4 of the frames with their faces drawn, opened at the first frame (when its size is known)."""

    def __init__(self, path: str, fps: float) -> None:
        self._path = path
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, drawn: np.ndarray) -> None:
        if self._writer is None:
            size = (drawn.shape[1], drawn.shape[0])
            self._writer = cv2.VideoWriter(self._path, cv2.VideoWriter_fourcc(*"mp4v"), self._fps, size)
            if not self._writer.isOpened():
                raise ValueError(f"OpenCV cannot write the video {self._path}.")
        self._writer.write(drawn)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
