"""What FaceMesh says about one face, and the point on it that the tracker reports as the nose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from .facemesh import NOSE_TIP

# Eye corners (outer, inner) on the image's left and right of an upright face. In the mirrored crop's mesh,
# each eye's landmarks land on the other eye.
IMAGE_LEFT_EYE = (33, 133)
IMAGE_RIGHT_EYE = (263, 362)


@dataclass(frozen=True)
class MeshReading:
    """FaceMesh's 468 landmarks (x, y) in image pixels on a face's final crop, and on the same crop mirrored.

    In `mirrored`, landmark i is the mirror image of landmark i: a point on the subject's other side, so only
    the midline landmarks (nose, lips, chin, forehead) keep their place; None when the tracker does not look
    at the mirrored crop.
    """

    points: np.ndarray
    mirrored: np.ndarray | None = None
    # Which landmarks these are, and which of them is the nose tip (a calibration's origin).
    point_set: ClassVar[str] = "facemesh"
    nose_index: ClassVar[int] = NOSE_TIP

    def midline(self, indices: int | list[int] | tuple[int, ...]) -> np.ndarray:
        """Midline landmarks, averaged over the two opinions when there are two."""
        if self.mirrored is None:
            return self.points[indices]
        return (self.points[indices] + self.mirrored[indices]) / 2.0

    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """The centres of the eyes on the image's left and right (each the middle of its two corners)."""
        left = self.points[list(IMAGE_LEFT_EYE)].mean(axis=0)
        right = self.points[list(IMAGE_RIGHT_EYE)].mean(axis=0)
        if self.mirrored is None:
            return left, right
        return (
            (left + self.mirrored[list(IMAGE_RIGHT_EYE)].mean(axis=0)) / 2.0,
            (right + self.mirrored[list(IMAGE_LEFT_EYE)].mean(axis=0)) / 2.0,
        )

    def roll(self) -> float:
        """How far the face is turned in the picture, in radians: 0 upright, +-pi upside down."""
        left, right = self.eye_centres()
        dx, dy = right - left
        return float(np.arctan2(dy, dx))


class NosePoint(Protocol):
    """Reads the nose from a face's mesh: FaceMesh's own tip, or a user's calibration."""

    def __call__(self, reading: MeshReading) -> np.ndarray:
        """The nose (x, y) in image pixels."""
        ...

    def describe(self) -> dict:
        """What it is, for /version and `nosetrack models`."""
        ...


class MeshNoseTip:
    """FaceMesh's landmark 4, on the tip where annotators put it: the default nose point."""

    def __call__(self, reading: MeshReading) -> np.ndarray:
        return reading.midline(NOSE_TIP)

    def describe(self) -> dict:
        return {"landmark": NOSE_TIP}


MESH_NOSE_TIP = MeshNoseTip()
