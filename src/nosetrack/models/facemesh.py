"""FaceMesh, MediaPipe's face landmark network: 468 points on an upright face crop."""

from __future__ import annotations

import cv2
import numpy as np

from ..engines import Engine
from .geometry import RotatedCrop

CROP_SIZE = 192
# Landmark 4 sits on the tip of the nose where annotators put it; landmark 1 sits lower, under the tip.
NOSE_TIP = 4
# Outer eye corners, on the image's left and right of an upright face.
IMAGE_LEFT_EYE_CORNER = 33
IMAGE_RIGHT_EYE_CORNER = 263


class FaceMesh:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def landmarks(self, image: np.ndarray, crop: RotatedCrop) -> tuple[np.ndarray, float]:
        """The 468 landmarks (x, y) in image pixels, and the network's confidence that a face is there."""
        patch = crop.cut(image, CROP_SIZE)
        tensor = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32)
        tensor *= 1.0 / 255.0
        mesh, face_logit = self._engine.run(tensor[np.newaxis])
        points = mesh.reshape(-1, 3)[:, :2]
        score = float(1.0 / (1.0 + np.exp(-np.clip(face_logit.item(), -100.0, 100.0))))
        return crop.to_image(points, CROP_SIZE), score
