"""BlazeFace, MediaPipe's face detector: boxes and six keypoints (eyes, nose, mouth, ears) per face."""

from __future__ import annotations

from dataclasses import dataclass, replace

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


def tile_starts(length: float, tile: float, overlap: float) -> list[float]:
    """Where tiles of side `tile` start along a side of `length`: evenly spread, overlapping by at least
    `overlap` of a tile, the first at 0 and the last at the far edge; one centred tile when it covers all."""
    if tile >= length:
        return [(length - tile) / 2.0]
    count = int(np.ceil((length - tile) / (tile * (1.0 - overlap)))) + 1
    return [float(start) for start in np.linspace(0.0, length - tile, count)]


@dataclass(frozen=True)
class DetectorViews:
    """Which square views of an image the detector looks at; candidates from all are merged.

    Always the whole image, letterboxed: it finds the faces that are large in the picture. With `min_face`
    (an inter-ocular distance in image pixels), also a pyramid of tiled levels, so that the smallest face
    wanted comes out at `face_pixels` between the eyes in the detector's input, where BlazeFace still finds
    it. The finest level's tiles are `min_face * input_size / face_pixels` pixels wide; each coarser level's
    are `level_step` times wider, up to the whole image. A level's faces are at most `level_step` times its
    smallest, and tiles overlap by `overlap` of their side, so that every such face lies whole in some tile.
    The number of views grows with the image's area over `min_face` squared: a webcam frame gets one, a
    12-megapixel photo about sixty at the default 40 px.
    """

    min_face: float | None = None
    face_pixels: float = 10.0
    level_step: float = 2.0
    overlap: float = 0.3

    def coarser(self, factor: float) -> DetectorViews:
        """The same views for faces `factor` times larger: fewer tiles."""
        return replace(self, min_face=self.min_face * factor) if self.min_face else self

    def squares(self, width: int, height: int, input_size: int) -> list[tuple[float, float, float]]:
        """(left, top, side) of each view, in image pixels: the whole image first, then the finest tiles."""
        long_side = max(width, height)
        views = [((width - long_side) / 2.0, (height - long_side) / 2.0, float(long_side))]
        if not self.min_face:
            return views
        tile = self.min_face * input_size / self.face_pixels
        # A level less than sqrt(level_step) finer than the whole image would see its faces barely larger.
        while tile * np.sqrt(self.level_step) <= long_side:
            views += [
                (left, top, tile)
                for top in tile_starts(height, tile, self.overlap)
                for left in tile_starts(width, tile, self.overlap)
            ]
            tile *= self.level_step
        return views


def turn_back(points: np.ndarray, quarter_turns: int) -> np.ndarray:
    """Points (x, y) in 0..1 of a square shown `quarter_turns` times turned by `np.rot90`, in the square's
    own units: each of np.rot90's turns takes (x, y) to (y, 1 - x)."""
    x, y = points[..., 0], points[..., 1]
    for _ in range(quarter_turns % 4):
        x, y = 1.0 - y, x
    return np.stack([x, y], axis=-1)


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

    def _candidates(self, image: np.ndarray, left: float, top: float, side: float, quarter_turns: int):
        """Boxes (x0, y0, x1, y1), keypoints and scores above `min_score` in one view, in image pixels.

        `quarter_turns` shows the network the view turned by that many quarters (`np.rot90`): a face lying
        on its side or upside down is upright in one of them.
        """
        square, frame = square_view(image, left, top, side, self.variant.input_size)
        if quarter_turns % 4:
            square = np.ascontiguousarray(np.rot90(square, quarter_turns))
        regressors, logits = self._engine.run(self._input_tensor(square))
        logits = np.clip(logits[0, :, 0], -100.0, 100.0)
        chosen = np.flatnonzero(logits > np.log(self.min_score / (1.0 - self.min_score)))
        raw = regressors[0, chosen] / self.variant.input_size
        anchors = self._anchors[chosen]
        centres = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2.0
        corners = turn_back(np.stack([centres - half, centres + half], axis=1), quarter_turns)
        corners = frame.to_image(corners)
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        keypoints = turn_back(raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :], quarter_turns)
        return boxes, frame.to_image(keypoints), sigmoid(logits[chosen])

    def detect(
        self, image: np.ndarray, quarter_turns: int = 0, views: DetectorViews | None = None
    ) -> list[Detection]:
        """The faces in every view (its own, or `views`), merged; with `quarter_turns`, in views turned that
        many quarters."""
        height, width = image.shape[:2]
        squares = (views or self.views).squares(width, height, self.variant.input_size)
        found = [self._candidates(image, *square, quarter_turns) for square in squares]
        boxes, points, scores = (np.concatenate(parts) for parts in zip(*found, strict=True))
        if scores.size == 0:
            return []
        return [
            Detection(box, keypoints, score)
            for box, keypoints, score in weighted_nms(boxes, points, scores, self.iou_threshold)
        ]
