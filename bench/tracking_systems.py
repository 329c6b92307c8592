"""The systems bench/tracking.py compares, each run over a decoded sequence with the same clock.

- MediaPipe's own FaceMesh solution in tracking mode (imported here only: nosetrack never imports mediapipe);
- nosetrack's stateless default, `load_model().predict` on every frame;
- nosetrack's tracker (`nosetrack.tracking.Tracker`) on the default model, and a variant whose every mesh pass
  also looks at the mirrored crop (to show what that second pass costs and buys).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from nosetrack.models.geometry import RotatedCrop
from nosetrack.models.nose_tracker import MeshedFace, NoseTracker
from nosetrack.tracking import Tracker, TrackerOptions

MEDIAPIPE_NOSE_TIP = 4  # the same landmark nosetrack reads


@dataclass(frozen=True)
class FaceOut:
    """One reported face: its id (None for stateless systems), this frame's nose and the smoothed one."""

    id: int | None
    raw: np.ndarray
    smoothed: np.ndarray


@dataclass
class Run:
    """A system's answers on a sequence and what they cost (decode excluded)."""

    frames: list[list[FaceOut]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time per frame
    cpu_seconds: float = 0.0  # the process's CPU time, every thread (MediaPipe runs a graph of its own)
    detector_ran: list[bool] = field(default_factory=list)


FrameStep = Callable[[np.ndarray, float], tuple[list[FaceOut], bool]]


def timed_run(step: FrameStep, images: list[np.ndarray], timestamps: np.ndarray) -> Run:
    run = Run()
    cpu_started = time.process_time()
    for image, timestamp in zip(images, timestamps, strict=True):
        started = time.perf_counter()
        faces, detector_ran = step(image, float(timestamp))
        run.seconds.append(time.perf_counter() - started)
        run.frames.append(faces)
        run.detector_ran.append(detector_ran)
    run.cpu_seconds = time.process_time() - cpu_started
    return run


def stateless_step(model) -> FrameStep:
    def step(image: np.ndarray, _: float) -> tuple[list[FaceOut], bool]:
        faces = model.predict(image).faces
        return [
            FaceOut(None, np.array([f.nose_x, f.nose_y]), np.array([f.nose_x, f.nose_y])) for f in faces
        ], True

    return step


def tracker_step(model, options: TrackerOptions | None = None) -> FrameStep:
    tracker = Tracker(options)

    def step(image: np.ndarray, timestamp: float) -> tuple[list[FaceOut], bool]:
        frame = tracker.update(model, image, timestamp)
        return [
            FaceOut(t.id, np.array([t.raw.nose_x, t.raw.nose_y]), np.array([t.face.nose_x, t.face.nose_y]))
            for t in frame.faces
        ], frame.detector_ran

    return step


class MirroredSteps:
    """The default model whose tracking mesh pass also runs on the mirrored crop (two passes per face)."""

    def __init__(self, model: NoseTracker) -> None:
        self._model = model
        self.info = model.info

    def predict(self, image: np.ndarray):
        return self._model.predict(image)

    def detect_crops(self, image: np.ndarray, quarter_turns: int = 0) -> list[RotatedCrop]:
        return self._model.detect_crops(image, quarter_turns)

    def mesh_on_crop(self, image: np.ndarray, crop: RotatedCrop, mirror: bool = False) -> MeshedFace:
        return self._model.mesh_on_crop(image, crop, mirror=True)


def mediapipe_step(max_faces: int) -> tuple[FrameStep, Callable[[], None]]:
    """MediaPipe's FaceMesh solution in tracking mode, and a function that closes it."""
    import mediapipe as mp

    solution = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=max_faces)

    def step(image: np.ndarray, _: float) -> tuple[list[FaceOut], bool]:
        height, width = image.shape[:2]
        found = solution.process(image).multi_face_landmarks or []
        faces = []
        for landmarks in found:
            nose = landmarks.landmark[MEDIAPIPE_NOSE_TIP]
            point = np.array([nose.x * width, nose.y * height])
            faces.append(FaceOut(None, point, point))
        return faces, False

    return step, solution.close


def rgb(images: list[np.ndarray]) -> list[np.ndarray]:
    """MediaPipe takes RGB; the conversion is made before its clock starts (in its favour)."""
    return [cv2.cvtColor(image, cv2.COLOR_BGR2RGB) for image in images]
