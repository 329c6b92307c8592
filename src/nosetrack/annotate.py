"""Pictures of a prediction: every face's box and nose drawn on the image."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

BOX_COLOUR = (80, 200, 80)
NOSE_COLOUR = (40, 40, 230)


def draw_prediction(image: np.ndarray, answer: dict[str, Any], thickness: int | None = None) -> np.ndarray:
    """A copy of `image` with the faces of a prediction's JSON drawn: green boxes, red noses.

    `thickness` is the boxes' line width in pixels (noses are three times it); by default it grows with the
    image, so the drawing stays visible on a large photo.
    """
    canvas = image.copy()
    thickness = thickness or max(1, round(max(image.shape[:2]) / 400))
    for face in answer.get("faces", []):
        box = face.get("box")
        if box:
            top_left = (round(box["x"]), round(box["y"]))
            bottom_right = (round(box["x"] + box["width"]), round(box["y"] + box["height"]))
            cv2.rectangle(canvas, top_left, bottom_right, BOX_COLOUR, thickness, cv2.LINE_AA)
        nose = face["nose"]
        cv2.circle(canvas, (round(nose["x"]), round(nose["y"])), 3 * thickness, NOSE_COLOUR, -1, cv2.LINE_AA)
    return canvas
