"""Pictures of a prediction: every face's box and nose drawn on the image."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .answer import prediction_from_answer
from .models.base import Prediction

BOX_COLOUR = (80, 200, 80)
NOSE_COLOUR = (40, 40, 230)
RAW_NOSE_COLOUR = (230, 200, 40)


def draw_prediction(
    image: np.ndarray, prediction: Prediction, thickness: int | None = None, scale: float = 1.0
) -> np.ndarray:
    """A copy of `image` with the prediction's faces drawn: green boxes, red noses.

    `scale` maps the prediction's pixels to `image`'s (a thumbnail is drawn on with `scale` < 1).
    `thickness` is the boxes' line width in pixels (noses are three times it); by default it grows with the
    image, so the drawing stays visible on a large photo.
    """
    canvas = image.copy()
    thickness = thickness or max(1, round(max(image.shape[:2]) / 400))
    for face in prediction.faces:
        if face.box:
            box = face.box
            top_left = (round(box.x * scale), round(box.y * scale))
            bottom_right = (round((box.x + box.width) * scale), round((box.y + box.height) * scale))
            cv2.rectangle(canvas, top_left, bottom_right, BOX_COLOUR, thickness, cv2.LINE_AA)
        nose = (round(face.nose_x * scale), round(face.nose_y * scale))
        cv2.circle(canvas, nose, 3 * thickness, NOSE_COLOUR, -1, cv2.LINE_AA)
    return canvas


def draw_tracked(image: np.ndarray, answer: dict[str, Any]) -> np.ndarray:
    """A copy of `image` with a tracked answer drawn: each face's box, its id, its raw nose (a ring) and its
    smoothed nose (a dot)."""
    canvas = draw_prediction(image, prediction_from_answer(answer))
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in answer["faces"]:
        raw = face.get("nose_raw")
        if raw:
            cv2.circle(canvas, (round(raw["x"]), round(raw["y"])), 6 * thickness, RAW_NOSE_COLOUR, thickness)
        box = face.get("box")
        if box and face.get("id") is not None:
            corner = (round(box["x"]), max(12, round(box["y"]) - 4))
            cv2.putText(
                canvas,
                f"#{face['id']}",
                corner,
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * thickness,
                BOX_COLOUR,
                thickness,
            )
    return canvas
