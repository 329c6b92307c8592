"""BlazeFace, MediaPipe's face detector: boxes and six keypoints (eyes, nose, mouth, ears) per face."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..engines import Engine
from .geometry import Letterbox, letterbox


@dataclass(frozen=True)
class BlazeFaceVariant:
    """How one BlazeFace file lays out its anchors; see MediaPipe's face_detection_*.pbtxt."""

    file_name: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


SHORT_RANGE = BlazeFaceVariant("face_detection_short_range.tflite", 128, (8, 16), (2, 6))
FULL_RANGE = BlazeFaceVariant("face_detection_full_range_sparse.tflite", 192, (4,), (1,))


@dataclass(frozen=True)
class Detection:
    """A face in image pixels: corners of the box, six keypoints (x, y), and the score."""

    box: np.ndarray  # x0, y0, x1, y1
    keypoints: np.ndarray  # 6 x 2: right eye, left eye, nose tip, mouth, right ear, left ear
    score: float


def make_anchors(variant: BlazeFaceVariant) -> np.ndarray:
    """Anchor centres (x, y) in 0..1, in the order the network emits its predictions."""
    centres = []
    for stride, count in zip(variant.strides, variant.anchors_per_cell, strict=True):
        cells = variant.input_size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, count, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou_threshold: float):
    """MediaPipe's weighted non-maximum suppression: overlapping candidates are averaged by score."""
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = []
    while order.size:
        best = order[0]
        x0 = np.maximum(boxes[best, 0], boxes[order, 0])
        y0 = np.maximum(boxes[best, 1], boxes[order, 1])
        x1 = np.minimum(boxes[best, 2], boxes[order, 2])
        y1 = np.minimum(boxes[best, 3], boxes[order, 3])
        overlap = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = overlap / (areas[best] + areas[order] - overlap + 1e-9)
        cluster = order[iou > iou_threshold]
        weights = scores[cluster] / scores[cluster].sum()
        kept.append(
            (
                (boxes[cluster] * weights[:, None]).sum(axis=0),
                (points[cluster] * weights[:, None, None]).sum(axis=0),
                float(scores[best]),
            )
        )
        order = order[iou <= iou_threshold]
    return kept


class BlazeFaceDetector:
    """Letterboxes the image to the network's square input and decodes its anchors into faces."""

    def __init__(
        self,
        engine: Engine,
        variant: BlazeFaceVariant,
        min_score: float = 0.5,
        iou_threshold: float = 0.3,
    ) -> None:
        self._engine = engine
        self.variant = variant
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self._anchors = make_anchors(variant)

    def _input_tensor(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        square, frame = letterbox(image, self.variant.input_size, self.variant.input_size)
        tensor = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32)
        tensor *= 2.0 / 255.0
        tensor -= 1.0
        return tensor[np.newaxis], frame

    def detect(self, image: np.ndarray) -> list[Detection]:
        tensor, frame = self._input_tensor(image)
        regressors, logits = self._engine.run(tensor)
        logits = np.clip(logits[0, :, 0], -100.0, 100.0)
        candidates = np.flatnonzero(logits > np.log(self.min_score / (1.0 - self.min_score)))
        if candidates.size == 0:
            return []
        raw = regressors[0, candidates] / self.variant.input_size
        anchors = self._anchors[candidates]
        centres = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2.0
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        scores = 1.0 / (1.0 + np.exp(-logits[candidates]))
        return [
            Detection(frame.to_image(box.reshape(2, 2)).reshape(4), frame.to_image(keypoints), score)
            for box, keypoints, score in weighted_nms(boxes, points, scores, self.iou_threshold)
        ]
