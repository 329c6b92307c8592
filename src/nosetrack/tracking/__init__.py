"""Video: follow faces from frame to frame with stable ids and a smoothed nose (no HTTP here)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..models import Model, load_model
from .options import TrackerOptions
from .tracker import TrackedFace, TrackedFrame, Tracker


def track(
    frames: Iterable[np.ndarray | tuple[np.ndarray, float]] | Any,
    model: Model | None = None,
    options: TrackerOptions | None = None,
    fps: float = 30.0,
) -> Iterator[TrackedFrame]:
    """Track the faces of a sequence of BGR frames, in process.

    `frames` is an OpenCV `cv2.VideoCapture` (a file's frames carry its own timestamps, a camera's the
    clock's), or an iterable of frames or (frame, timestamp in seconds) pairs; bare frames are taken `fps`
    apart. The model is the built-in default unless given (a user's model is tracked by running it on every
    frame).
    """
    import cv2

    if isinstance(frames, cv2.VideoCapture):
        from ..video import capture_frames

        frames = capture_frames(frames)
    model = model or load_model()
    tracker = Tracker(options)
    for number, item in enumerate(frames):
        frame, timestamp = item if isinstance(item, tuple) else (item, number / fps)
        yield tracker.update(model, frame, timestamp)


__all__ = ["TrackedFace", "TrackedFrame", "Tracker", "TrackerOptions", "track"]
