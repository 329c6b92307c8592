"""`dlib68`: the nose where 300-W's annotators put it, from dlib's 68-point shape predictor. Opt-in.

nosetrack's own detector finds the faces (BlazeFace views, turned views, tiles) and one FaceMesh pass checks
and levels each, exactly as the default model does, so dlib68 finds the faces the default finds. dlib's
predictor was trained to start from the box of dlib's HOG face detector; rather than run HOG (hundreds of
milliseconds on a photo, and blind to turned and small faces), the box HOG would give is predicted from the
mesh (`BoxMap`, fitted by `bench/fit_dlib68_box.py` on ../shared/data, and checked there by cross-validation).
The predictor runs in that box, on the face levelled by its eye line, and its point 30, the nose tip of
300-W's convention, is the face's nose. Where its 68 points disagree with the mesh (the predictor could not
place that face), the face keeps the default model's nose and says so (`nose_source` "facemesh").

The weights are `shape_predictor_68_face_landmarks.dat` inside the PyPI package `face-recognition-models`,
and dlib comes from the `dlib-bin` wheels: both only with `pip install 'nosetrack[dlib]'`. Nothing is
downloaded at run time.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from .base import Face, ImageInput, ModelInfo, Prediction, bgr_pixels, prominence
from .calibration import NoseCalibration
from .face_mesh_reading import MeshReading
from .facemesh import NOSE_TIP
from .geometry import RotatedCrop
from .nose_tracker import MIN_MESH_SCORE, FaceReading, MeshedFace, NoseTracker, NoseTrackerOptions
from .spec import ModelSpecError

logger = logging.getLogger("nosetrack")

WEIGHTS_PACKAGE = "face_recognition_models"
WEIGHTS_DISTRIBUTION = "face-recognition-models"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "The dlib68 model needs the dlib extra: pip install 'nosetrack[dlib]'."
LICENCE = (
    "dlib68 uses dlib's shape_predictor_68_face_landmarks.dat, trained on the iBUG 300-W dataset, whose "
    "licence excludes commercial use: use it for research and evaluation, never in a commercial product."
)
BOX_MAP_FILE = Path(__file__).with_name("dlib68_box.toml")
# Point 30 of the 68 (0-based) is the nose tip in 300-W's convention; 36-41 and 42-47 are the eyes.
NOSE_POINT = 30
IMAGE_LEFT_EYE_POINTS = slice(36, 42)
IMAGE_RIGHT_EYE_POINTS = slice(42, 48)
# Faces turned by less than this from level run on the image as it is; others on a crop levelled on the eyes.
LEVEL_ENOUGH = float(np.radians(10.0))
# A levelled crop is this many predicted boxes on a side, and at most this many pixels (the box then at most
# 128, within the sizes of HOG's training boxes; a larger crop costs a warp of more pixels, not accuracy).
CROP_BOXES = 2.0
MAX_CROP_PIXELS = 256
# The predictor could not place a face when its nose or eyes lie further than this (in the mesh's
# inter-ocular distances) from the mesh's: the face then keeps the default model's nose.
MAX_DISAGREEMENT = 0.35

_licence_printed = False


def predictor_path() -> Path:
    """The .dat file inside the face-recognition-models package, found without importing it (its
    __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(INSTALL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise ModelSpecError(f"{path} is missing: reinstall the extra, pip install 'nosetrack[dlib]'.")
    return path


def import_dlib():
    try:
        import dlib
    except ImportError:
        raise ModelSpecError(INSTALL_HINT) from None
    return dlib


def mesh_frame(points: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The mesh seen upright (turned back by `roll`): the rotation from image to upright axes (as row
    vectors, `points @ rotation`), the centre of the mesh's upright extent, its size (the geometric mean of
    width and height) and the features the box map reads (see `BoxMap`)."""
    cos, sin = np.cos(roll), np.sin(roll)
    rotation = np.array([[cos, -sin], [sin, cos]])
    upright = points @ rotation
    low, high = upright.min(axis=0), upright.max(axis=0)
    centre = (low + high) / 2.0
    width, height = high - low
    size = float(np.sqrt(width * height))
    nose = (upright[NOSE_TIP] - centre) / size
    return rotation, centre, size, np.array([1.0, nose[0], nose[1], np.log(width / height)])


@dataclass(frozen=True)
class BoxMap:
    """From a face's FaceMesh landmarks to the square box dlib's HOG detector would put around it.

    In the mesh's upright frame, with the centre and size of the landmarks' extent as origin and unit, the
    box's centre (x, y) and the log of its side are linear in four features: 1, the nose tip's offset from
    the centre (x: the head's turn, y: its nod), and the log of the extent's aspect ratio.
    """

    weights: np.ndarray  # 4 features x (centre x, centre y, log side)
    fitted_on: str = ""

    @classmethod
    def load(cls, path: Path = BOX_MAP_FILE) -> BoxMap:
        table = tomllib.loads(path.read_text())["box_map"]
        return cls(np.array(table["weights"], dtype=float), str(table.get("fitted_on", "")))

    def box(self, points: np.ndarray, roll: float) -> RotatedCrop:
        """The box, as a square turned by `roll` (its side is the box's side)."""
        rotation, centre, size, features = mesh_frame(points, roll)
        shift_x, shift_y, log_side = features @ self.weights
        middle = (centre + size * np.array([shift_x, shift_y])) @ rotation.T
        return RotatedCrop(float(middle[0]), float(middle[1]), float(size * np.exp(log_side)), roll)


class ShapePredictor:
    """dlib's 68-point predictor in a box: on the image itself when the box is nearly level, else on a crop
    levelled on the box."""

    def __init__(self) -> None:
        self._dlib = import_dlib()
        self._predict = self._dlib.shape_predictor(str(predictor_path()))

    def points(self, image: np.ndarray, box: RotatedCrop) -> np.ndarray:
        """The 68 points (x, y) in image pixels. `image` is BGR: dlib reads a pixel's intensity as the mean of
        its three channels (as it did in training), so the channels' order does not matter."""
        half = box.size / 2.0
        if abs(box.angle) < LEVEL_ENOUGH:
            rect = self._rectangle(box.centre_x - half, box.centre_y - half, box.size)
            return self._shape(image, rect)
        crop = RotatedCrop(box.centre_x, box.centre_y, box.size * CROP_BOXES, box.angle)
        pixels = int(min(MAX_CROP_PIXELS, max(64.0, np.ceil(crop.size))))
        patch = crop.cut(image, pixels)
        side = box.size * pixels / crop.size
        rect = self._rectangle((pixels - side) / 2.0, (pixels - side) / 2.0, side)
        return crop.to_image(self._shape(patch, rect), pixels)

    def _rectangle(self, left: float, top: float, side: float):
        # dlib's rectangles are inclusive: HOG's 80-pixel box runs from left to left + 79.
        left, top = round(left), round(top)
        return self._dlib.rectangle(left, top, left + round(side) - 1, top + round(side) - 1)

    def _shape(self, image: np.ndarray, rect) -> np.ndarray:
        shape = self._predict(np.ascontiguousarray(image), rect)
        return np.array([(part.x, part.y) for part in shape.parts()], dtype=float)


@dataclass(frozen=True)
class Dlib68Reading:
    """The predictor's 68 points (x, y) on one face, in image pixels: what a dlib68 calibration reads."""

    points: np.ndarray
    mirrored: None = None
    point_set: ClassVar[str] = "dlib68"
    nose_index: ClassVar[int] = NOSE_POINT

    def midline(self, indices: int | list[int] | tuple[int, ...]) -> np.ndarray:
        return self.points[indices]

    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        left, right = self.points[IMAGE_LEFT_EYE_POINTS], self.points[IMAGE_RIGHT_EYE_POINTS]
        return left.mean(axis=0), right.mean(axis=0)

    def roll(self) -> float:
        left, right = self.eye_centres()
        return float(np.arctan2(*(right - left)[::-1]))


def agrees(points: np.ndarray, reading: MeshReading) -> bool:
    """Whether the predictor's nose and eyes lie where the mesh's are, within `MAX_DISAGREEMENT`."""
    left, right = reading.eye_centres()
    unit = float(np.hypot(*(right - left)))
    ours = (
        points[NOSE_POINT],
        points[IMAGE_LEFT_EYE_POINTS].mean(axis=0),
        points[IMAGE_RIGHT_EYE_POINTS].mean(axis=0),
    )
    theirs = (reading.points[NOSE_TIP], left, right)
    return all(np.hypot(*(a - b)) <= MAX_DISAGREEMENT * unit for a, b in zip(ours, theirs, strict=True))


def weights_version() -> str:
    try:
        return f"face-recognition-models-{importlib.metadata.version(WEIGHTS_DISTRIBUTION)}"
    except importlib.metadata.PackageNotFoundError:
        return "face-recognition-models"


class Dlib68Model:
    """nosetrack's faces, dlib's nose; one thread at a time (see the module's docstring)."""

    points = "dlib68"  # the landmarks a calibration of this model reads

    def __init__(
        self,
        options: NoseTrackerOptions,
        engine_threads: int = 1,
        name: str = "dlib68",
        calibration: NoseCalibration | None = None,
    ) -> None:
        if calibration is not None and calibration.points != self.points:
            raise ModelSpecError(
                f"{calibration.source or 'This calibration'} was fitted on FaceMesh's landmarks, for the "
                "facemesh models: fit one for dlib68 with nosetrack calibrate DATA_DIR --model dlib68."
            )
        self.calibration = calibration
        self.shape_predictor = ShapePredictor()
        # The default's detector and one FaceMesh pass per face; the mirrored pass only for a fallback.
        self.faces = NoseTracker(replace(options, mirror=False), engine_threads, name)
        self.box_map = BoxMap.load()
        dlib_version = getattr(self.shape_predictor._dlib, "__version__", "?")
        self.info = ModelInfo(
            name=f"nosetrack-{name}",
            version=f"dlib-{dlib_version}+{weights_version()}",
            description=(
                "nosetrack's BlazeFace detector and a FaceMesh pass find each face; dlib's 68-point shape "
                "predictor places the nose (point 30, 300-W's nose tip) in the box HOG would give"
            ),
            details={
                "engine": "litert+dlib",
                "detector": options.detector.file_name,
                "min_face": options.views.min_face,
                "quarter_turns": options.quarter_turns,
                "nose": {"dlib68_point": NOSE_POINT, "fallback": "facemesh landmark 4"}
                | ({"calibration": calibration.describe()} if calibration else {}),
                "box_map": self.box_map.fitted_on,
                "licence": LICENCE,
            },
        )
        print_licence_once()

    def _reading(self, image: np.ndarray, mesh: MeshReading) -> Dlib68Reading | None:
        """The predictor's points on the face this mesh reads, or None where it cannot place them."""
        points = self.shape_predictor.points(image, self.box_map.box(mesh.points, mesh.roll()))
        return Dlib68Reading(points) if agrees(points, mesh) else None

    def _nose(self, reading: Dlib68Reading) -> np.ndarray:
        return self.calibration(reading) if self.calibration else reading.points[NOSE_POINT]

    def _placed(self, face: Face, reading: Dlib68Reading) -> Face:
        nose = self._nose(reading)
        return replace(face, nose_x=float(nose[0]), nose_y=float(nose[1]), nose_source="dlib68")

    def read_faces(self, image: np.ndarray) -> list[FaceReading]:
        """Every face, the most prominent first: the predictor's reading, or where it could not place the
        face, the default model's (its mesh, with the mirrored crop's opinion)."""
        read = []
        for item in self.faces.read_faces(image):
            reading = self._reading(image, item.reading)
            if reading is None:
                fallback = self.faces.second_opinion(image, item)
                read.append(replace(fallback, face=replace(fallback.face, nose_source="facemesh")))
            else:
                read.append(replace(item, reading=reading, face=self._placed(item.face, reading)))
        return sorted(read, key=lambda item: prominence(item.face), reverse=True)

    def predict(self, image: ImageInput) -> Prediction:
        image = bgr_pixels(image)
        height, width = image.shape[:2]
        return Prediction(width, height, [item.face for item in self.read_faces(image)])

    # The video tracker's steps (nosetrack.tracking): the default's crops and one FaceMesh pass per face,
    # then the predictor's nose on it.

    def detect_crops(self, image: np.ndarray, quarter_turns: int = 0) -> list[RotatedCrop]:
        return self.faces.detect_crops(image, quarter_turns)

    def mesh_on_crop(self, image: np.ndarray, crop: RotatedCrop, mirror: bool = False) -> MeshedFace:
        reading, presence = self.faces.read_on_crop(image, crop, mirror)
        meshed = self.faces.meshed_face(reading, presence, crop)
        if presence < MIN_MESH_SCORE:
            return meshed  # no face there: the tracker drops it, no need to place a nose
        placed = self._reading(image, reading)
        if placed is None:
            return replace(meshed, face=replace(meshed.face, nose_source="facemesh"))
        return replace(meshed, face=self._placed(meshed.face, placed))


def print_licence_once() -> None:
    """The licence note, once per process, whenever the model loads (a server's log, a command's stderr)."""
    global _licence_printed
    if not _licence_printed:
        _licence_printed = True
        logger.warning(LICENCE)
