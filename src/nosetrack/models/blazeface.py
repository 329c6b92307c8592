"""BlazeFace, MediaPipe's face detector: boxes and six keypoints (eyes, nose, mouth, ears) per face."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..engines import Engine
from .activations import sigmoid
from .geometry import square_view


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


@dataclass(frozen=True)
class DetectorViews:
    """Which square views of an image the detector looks at; candidates from all are merged.

    Always the whole image, letterboxed. `tile_above`: images whose long side exceeds this many pixels are
    also seen as four overlapping tiles of `tile_fraction` of the long side, so that small faces in large
    group photos get enough of the detector's pixels. None: no tiles.
    """

    tile_above: int | None = None
    tile_fraction: float = 0.6

    def squares(self, width: int, height: int) -> list[tuple[float, float, float]]:
        """(left, top, side) of each view, in image pixels."""
        long_side = max(width, height)
        views = [((width - long_side) / 2.0, (height - long_side) / 2.0, float(long_side))]
        if self.tile_above is not None and long_side > self.tile_above:
            tile = long_side * self.tile_fraction
            lefts = (0.0, width - tile) if width > tile else ((width - tile) / 2.0,)
            tops = (0.0, height - tile) if height > tile else ((height - tile) / 2.0,)
            views += [(left, top, tile) for top in tops for left in lefts]
        return views


class BlazeFaceDetector:
    """Shows the image to the network as square views and decodes its anchors into faces."""

    def __init__(
        self,
        engine: Engine,
        variant: BlazeFaceVariant,
        views: DetectorViews = DetectorViews(),
        min_score: float = 0.5,
        iou_threshold: float = 0.3,
    ) -> None:
        self._engine = engine
        self.variant = variant
        self.views = views
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self._anchors = make_anchors(variant)

    def _input_tensor(self, square: np.ndarray) -> np.ndarray:
        tensor = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32)
        tensor *= 2.0 / 255.0
        tensor -= 1.0
        return tensor[np.newaxis]

    def _candidates(self, image: np.ndarray, left: float, top: float, side: float):
        """Boxes (x0, y0, x1, y1), keypoints and scores above `min_score` in one view, in image pixels."""
        square, frame = square_view(image, left, top, side, self.variant.input_size)
        regressors, logits = self._engine.run(self._input_tensor(square))
        logits = np.clip(logits[0, :, 0], -100.0, 100.0)
        chosen = np.flatnonzero(logits > np.log(self.min_score / (1.0 - self.min_score)))
        raw = regressors[0, chosen] / self.variant.input_size
        anchors = self._anchors[chosen]
        centres = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2.0
        corners = np.concatenate([centres - half, centres + half], axis=1).reshape(-1, 2, 2)
        boxes = frame.to_image(corners).reshape(-1, 4)
        points = frame.to_image(raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :])
        return boxes, points, sigmoid(logits[chosen])

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        found = [self._candidates(image, *view) for view in self.views.squares(width, height)]
        boxes, points, scores = (np.concatenate(parts) for parts in zip(*found, strict=True))
        if scores.size == 0:
            return []
        return [
            Detection(box, keypoints, score)
            for box, keypoints, score in weighted_nms(boxes, points, scores, self.iou_threshold)
        ]
