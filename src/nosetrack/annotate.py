"""Pictures of a prediction: every face's box and nose on the image (for video, also its id and raw nose)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .answer import prediction_from_answer
from .models.base import Prediction

BOX_COLOUR = (80, 200, 80)
NOSE_COLOUR = (40, 40, 230)
RAW_NOSE_COLOUR = (40, 220, 240)


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
    """A copy of a video frame with its tracked answer drawn: `draw_prediction`'s boxes and smoothed noses,
    each face's id above its box, and this frame's raw nose as a yellow ring around the smoothed one."""
    canvas = draw_prediction(image, prediction_from_answer(answer))
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in answer["faces"]:
        raw = (round(face["nose_raw"]["x"]), round(face["nose_raw"]["y"]))
        cv2.circle(canvas, raw, 5 * thickness, RAW_NOSE_COLOUR, thickness, cv2.LINE_AA)
        box = face.get("box")
        corner = (round(box["x"]), round(box["y"]) - 4 * thickness) if box else raw
        label = f"id {face['id']}"
        cv2.putText(canvas, label, corner, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness, BOX_COLOUR, thickness)
    return canvas
