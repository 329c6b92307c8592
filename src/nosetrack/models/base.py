"""What every model gives: faces with a nose, in the pixels of the image it was given."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import cv2
import numpy as np

from ..images import UNLIMITED_PIXELS, decode_image, read_image

# What `Model.predict` takes: BGR pixels (as cv2.imread gives them), an image file's bytes, or its path.
ImageInput = np.ndarray | bytes | str | os.PathLike
_TO_BGR = {1: cv2.COLOR_GRAY2BGR, 4: cv2.COLOR_BGRA2BGR}


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box in pixels."""

    x: float
    y: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return self.width * self.height

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x <= self.x + self.width and self.y <= y <= self.y + self.height

    def as_dict(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Face:
    """One face: its nose tip in pixels, and its box and score when the model knows them."""

    nose_x: float
    nose_y: float
    score: float | None = None
    box: Box | None = None
    # Which point the nose is, when a model says (dlib68: "dlib68", or "facemesh" where it fell back).
    nose_source: str | None = None


@dataclass(frozen=True)
class Prediction:
    """Every face found in one image, the most prominent (largest) first."""

    width: int
    height: int
    faces: list[Face] = field(default_factory=list)

    @property
    def detected(self) -> bool:
        return bool(self.faces)

    def at_full_size(self, factor: int, width: int, height: int) -> Prediction:
        """This prediction, made on an image decoded at 1/`factor` size, in the full image's pixels."""
        if factor == 1:
            return self

        def full(value: float) -> float:  # pixel centres: decoded pixel i covers full pixels factor*i ..
            return (value + 0.5) * factor - 0.5

        faces = [
            replace(
                face,
                nose_x=full(face.nose_x),
                nose_y=full(face.nose_y),
                box=face.box
                and Box(
                    full(face.box.x), full(face.box.y), face.box.width * factor, face.box.height * factor
                ),
            )
            for face in self.faces
        ]
        return Prediction(width, height, faces)


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, for /version, the dashboard and `nosetrack models`."""

    name: str
    version: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "description": self.description, **self.details}


class Model(Protocol):
    """A nose model. An instance holds engines, so it serves one thread at a time (see `ModelPool`)."""

    info: ModelInfo

    def predict(self, image: ImageInput) -> Prediction:
        """Find the faces in one image: BGR pixels as `cv2.imdecode` returns them, encoded bytes or a path."""
        ...


def bgr_pixels(image: ImageInput) -> np.ndarray:
    """`image` as the BGR uint8 pixels models work on: a path read and decoded, bytes decoded (JPEG, PNG,
    BMP, WebP, GIF), grey or BGRA pixels made BGR; TypeError or ValueError says what is expected instead."""
    if isinstance(image, str | os.PathLike):
        return read_image(image)
    if isinstance(image, bytes | bytearray | memoryview):
        return decode_image(bytes(image), UNLIMITED_PIXELS)  # in process: the caller's own image
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"predict takes BGR pixels (a numpy array, as cv2.imread gives), an image file's bytes or its "
            f"path, not {type(image).__name__}."
        )
    if image.dtype != np.uint8:
        raise ValueError(f"predict takes 8-bit pixels (uint8), not {image.dtype}.")
    channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else 0
    if channels == 3:
        return image
    if channels not in _TO_BGR:
        raise ValueError(f"predict takes an image of shape (height, width, 3), not {image.shape}.")
    return cv2.cvtColor(image, _TO_BGR[channels])


def prominence(face: Face) -> float:
    """How much a face stands out: its box's area. The largest is the one a user before a camera means."""
    return face.box.area if face.box else 0.0
