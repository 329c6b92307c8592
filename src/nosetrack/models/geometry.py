"""Coordinate frames between an image and a network's input: letterboxing and rotated face crops."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ViewFrame:
    """Where an input sits on the image: input units (0..1) to image pixels, then the input's corner."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map (x, y) points in 0..1 of the input to image pixels."""
        scale = np.array([self.scale_x, self.scale_y], dtype=np.float32)
        return points * scale + np.array([self.offset_x, self.offset_y], dtype=np.float32)


def letterbox(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ViewFrame]:
    """The whole image resized keeping its aspect ratio, centred on a black `width` x `height` canvas."""
    image_height, image_width = image.shape[:2]
    factor = min(width / image_width, height / image_height)
    inner_w = min(width, max(1, round(image_width * factor)))
    inner_h = min(height, max(1, round(image_height * factor)))
    interpolation = cv2.INTER_AREA if factor < 0.5 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (inner_w, inner_h), interpolation=interpolation)
    left = (width - inner_w) // 2
    top = (height - inner_h) // 2
    canvas = cv2.copyMakeBorder(
        resized, top, height - inner_h - top, left, width - inner_w - left, cv2.BORDER_CONSTANT, value=0
    )
    return canvas, ViewFrame(width / factor, height / factor, -left / factor, -top / factor)


def square_view(
    image: np.ndarray, left: float, top: float, side: float, size: int
) -> tuple[np.ndarray, ViewFrame]:
    """The square region (`left`, `top`, `side` pixels) resized to `size`; black where it leaves the image.

    A view larger than the image letterboxes it (with a margin); a smaller one is a tile, seen in more detail.
    """
    height, width = image.shape[:2]
    pixels_per_input = side / size
    x0, y0 = max(0, round(left)), max(0, round(top))
    x1, y1 = min(width, round(left + side)), min(height, round(top + side))
    inner_w = min(size, max(1, round((x1 - x0) / pixels_per_input)))
    inner_h = min(size, max(1, round((y1 - y0) / pixels_per_input)))
    interpolation = cv2.INTER_AREA if pixels_per_input > 2 else cv2.INTER_LINEAR
    resized = cv2.resize(image[y0:y1, x0:x1], (inner_w, inner_h), interpolation=interpolation)
    pad_left = min(size - inner_w, max(0, round((x0 - left) / pixels_per_input)))
    pad_top = min(size - inner_h, max(0, round((y0 - top) / pixels_per_input)))
    square = cv2.copyMakeBorder(
        resized,
        pad_top,
        size - inner_h - pad_top,
        pad_left,
        size - inner_w - pad_left,
        cv2.BORDER_CONSTANT,
        value=0,
    )
    offset_x, offset_y = x0 - pad_left * pixels_per_input, y0 - pad_top * pixels_per_input
    return square, ViewFrame(side, side, offset_x, offset_y)


@dataclass(frozen=True)
class RotatedCrop:
    """A square region of the image, turned by `angle` radians, that a landmark network sees upright."""

    centre_x: float
    centre_y: float
    size: float
    angle: float

    def to_crop_matrix(self, crop_size: int) -> np.ndarray:
        """The 2x3 affine matrix from image pixels to crop pixels."""
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        scale = crop_size / self.size
        # Inverse rotation, scaled, about the crop's centre.
        rotation = scale * np.array([[cos, sin], [-sin, cos]])
        centre = np.array([self.centre_x, self.centre_y])
        shift = crop_size / 2.0 - rotation @ centre
        return np.hstack([rotation, shift[:, None]]).astype(np.float64)

    def to_image(self, points: np.ndarray, crop_size: int) -> np.ndarray:
        """Map (x, y) points in crop pixels back to image pixels."""
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        rotation = (self.size / crop_size) * np.array([[cos, -sin], [sin, cos]])
        return (points - crop_size / 2.0) @ rotation.T + np.array([self.centre_x, self.centre_y])

    def cut(self, image: np.ndarray, crop_size: int) -> np.ndarray:
        return cv2.warpAffine(
            image,
            self.to_crop_matrix(crop_size),
            (crop_size, crop_size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )


def crop_around(
    points: np.ndarray, image_left_eye: np.ndarray, image_right_eye: np.ndarray, margin: float
) -> RotatedCrop:
    """A square crop around `points`, levelled on the eye line, `margin` times the points' extent."""
    dx, dy = image_right_eye - image_left_eye
    angle = float(np.arctan2(dy, dx))
    cos, sin = np.cos(angle), np.sin(angle)
    upright = points @ np.array([[cos, -sin], [sin, cos]])
    low, high = upright.min(axis=0), upright.max(axis=0)
    centre_upright = (low + high) / 2.0
    centre = centre_upright @ np.array([[cos, sin], [-sin, cos]])
    return RotatedCrop(float(centre[0]), float(centre[1]), float((high - low).max() * margin), angle)
