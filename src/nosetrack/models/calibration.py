"""A user's nose point: where their annotators put the nose tip, read off FaceMesh's landmarks (or, for the
dlib68 model, off dlib's 68 points the same way, with its point 30 as the tip).

Datasets differ in where they put the nose tip. A calibration moves FaceMesh's own tip (landmark 4) to the
user's point with a small map, in the face's own frame: origin at the mesh's tip, x along the line from the
image-left eye to the image-right eye, y down the face, one unit per inter-ocular distance of the mesh. There

    nose = offset + sum over i of weight_i * (landmark_i - tip)

a fixed shift that turns and scales with the face, plus a pull toward midline landmarks just below and above
the tip, which follows the head's pose (the point slides along the nose as the head nods or turns). All zero
is FaceMesh's own tip. `nosetrack calibrate` fits it (`fit_calibration`) and writes it as a small TOML file;
`load_model(..., calibration=path)` applies it inside `predict`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .face_mesh_reading import MeshReading

# Below the tip (landmark 1) and above it, on the ridge (landmark 5): both on the midline, so both keep their
# meaning in the mirrored crop's mesh and are averaged over the two opinions.
DEFAULT_LANDMARKS = (1, 5)
MESH_LANDMARKS = 468
# The landmark sets a calibration can be fitted on: how many points, and the default pull landmarks. dlib68's
# 68 points (models/dlib68.py) have their tip at 30; 33 lies below it (under the nostrils), 29 above it.
POINT_SETS: dict[str, tuple[int, tuple[int, ...]]] = {
    "facemesh": (MESH_LANDMARKS, DEFAULT_LANDMARKS),
    "dlib68": (68, (33, 29)),
}
DEFAULT_STRENGTH = 0.001


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message says what to fix."""


def face_frame(reading: MeshReading) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, rotation, unit): the mesh's tip, the 2x2 rotation from face to image axes, and the mesh's
    inter-ocular distance in pixels."""
    left, right = reading.eye_centres()
    along = right - left
    unit = float(np.hypot(*along))
    cos, sin = along / unit
    return reading.midline(reading.nose_index), np.array([[cos, -sin], [sin, cos]]), unit


def landmark_offsets(reading: MeshReading, landmarks: tuple[int, ...]) -> np.ndarray:
    """Each landmark's offset from the tip in the face frame (k x 2): what the weights multiply."""
    origin, rotation, unit = face_frame(reading)
    return (reading.midline(list(landmarks)) - origin) @ rotation / unit


def in_face_frame(reading: MeshReading, point: np.ndarray) -> np.ndarray:
    """An image point (x, y) relative to the mesh's tip, in the face frame."""
    origin, rotation, unit = face_frame(reading)
    return (np.asarray(point, dtype=float) - origin) @ rotation / unit


@dataclass(frozen=True)
class NoseCalibration:
    """The fitted map (see the module's docstring); callable as a `NosePoint`."""

    offset: tuple[float, float] = (0.0, 0.0)
    landmarks: tuple[int, ...] = DEFAULT_LANDMARKS
    weights: tuple[float, ...] = (0.0, 0.0)
    # What it was fitted on, for the file, /version and `nosetrack models`.
    fitted_on: str = ""
    # Whose landmarks: FaceMesh's (the facemesh models) or dlib's 68 (the dlib68 model).
    points: str = "facemesh"
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if len(self.offset) != 2:
            raise CalibrationError(f"offset needs two numbers (x, y), not {len(self.offset)}.")
        if len(self.weights) != len(self.landmarks):
            raise CalibrationError(
                f"{len(self.landmarks)} landmarks but {len(self.weights)} weights: give one weight each."
            )
        if self.points not in POINT_SETS:
            raise CalibrationError(f"points must be one of {', '.join(POINT_SETS)}, not {self.points!r}.")
        count = POINT_SETS[self.points][0]
        wrong = [i for i in self.landmarks if not 0 <= i < count]
        if wrong:
            whose = {"facemesh": "FaceMesh's", "dlib68": "dlib68's"}[self.points]
            raise CalibrationError(f"landmarks {wrong} are not {whose} (0 to {count - 1}).")

    @property
    def numbers(self) -> np.ndarray:
        """The fitted numbers in one vector: offset x, offset y, then the weights."""
        return np.array([*self.offset, *self.weights])

    def __call__(self, reading: MeshReading) -> np.ndarray:
        origin, rotation, unit = face_frame(reading)
        shift = np.array(self.offset) + np.array(self.weights) @ landmark_offsets(reading, self.landmarks)
        return origin + unit * (rotation @ shift)

    def describe(self) -> dict:
        return {
            "file": self.source,
            "fitted_on": self.fitted_on,
            "points": self.points,
            "offset": list(self.offset),
            "landmarks": list(self.landmarks),
            "weights": list(self.weights),
        }

    def to_toml(self) -> str:
        numbers = ", ".join
        return (
            "# nosetrack nose calibration: written by `nosetrack calibrate`, used by `--calibration`.\n"
            "# In the face's frame (origin: the model's nose tip, FaceMesh's landmark 4 or dlib68's\n"
            "# point 30; x from the image-left eye toward the image-right eye; y down the face; unit: the\n"
            "# landmarks' inter-ocular distance) the nose is\n"
            "# offset + sum of weights[i] * (landmark[i] - tip).\n"
            "# All zero: the model's own tip.\n"
            "[calibration]\n"
            f"fitted_on = {_toml_string(self.fitted_on)}\n"
            f"points = {_toml_string(self.points)}\n"
            f"offset = [{numbers(f'{v:.6f}' for v in self.offset)}]\n"
            f"landmarks = [{numbers(str(i) for i in self.landmarks)}]\n"
            f"weights = [{numbers(f'{v:.6f}' for v in self.weights)}]\n"
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> NoseCalibration:
        """Read a calibration file; `CalibrationError` with one sentence when it cannot be used."""
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text())["calibration"]
            return cls(
                offset=tuple(float(v) for v in table["offset"]),
                landmarks=tuple(int(i) for i in table.get("landmarks", DEFAULT_LANDMARKS)),
                weights=tuple(float(v) for v in table.get("weights", ())),
                fitted_on=str(table.get("fitted_on", "")),
                points=str(table.get("points", "facemesh")),
                source=str(path),
            )
        except OSError as error:
            raise CalibrationError(f"Cannot read the calibration {path}: {error.strerror}.") from None
        except tomllib.TOMLDecodeError as error:
            raise CalibrationError(f"{path} is not valid TOML: {error}.") from None
        except KeyError as error:
            raise CalibrationError(
                f"{path} lacks {error.args[0]!r}: a calibration has a [calibration] table with offset, "
                "landmarks and weights (as `nosetrack calibrate` writes it)."
            ) from None
        except CalibrationError as error:
            raise CalibrationError(f"{path}: {error}") from None
        except (TypeError, ValueError):
            message = f"{path}: offset, landmarks and weights must be lists of numbers."
            raise CalibrationError(message) from None


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fit_calibration(
    readings: list[MeshReading],
    noses: np.ndarray,
    landmarks: tuple[int, ...] = DEFAULT_LANDMARKS,
    strength: float = DEFAULT_STRENGTH,
    fitted_on: str = "",
    points: str = "facemesh",
) -> NoseCalibration:
    """The least-squares map from `readings` to the labelled `noses` (n x 2, image pixels), in face units.

    Ridge-regularized: `strength` times the number of faces pulls the weights toward 0 (FaceMesh's tip), so
    that a few faces or a noisy set cannot make the point wander; the offset is left almost free.
    """
    rows, targets = [], []
    for reading, nose in zip(readings, noses, strict=True):
        offsets = landmark_offsets(reading, landmarks)  # k x 2
        # x row: offset x + sum w_i * dx_i;  y row: offset y + sum w_i * dy_i
        rows += [[1.0, 0.0, *offsets[:, 0]], [0.0, 1.0, *offsets[:, 1]]]
        targets += list(in_face_frame(reading, nose))
    design, target = np.array(rows), np.array(targets)
    penalty = np.diag([1e-6, 1e-6, *([1.0] * len(landmarks))]) * strength * len(readings)
    numbers = np.linalg.solve(design.T @ design + penalty, design.T @ target)
    return NoseCalibration(
        offset=(float(numbers[0]), float(numbers[1])),
        landmarks=tuple(landmarks),
        weights=tuple(float(v) for v in numbers[2:]),
        fitted_on=fitted_on,
        points=points,
    )
