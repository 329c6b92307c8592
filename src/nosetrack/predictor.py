"""The one pipeline every path shares: checked image bytes (or pixels) to a `Prediction` in full-size pixels.

The server, /v2, the tracker, the CLI, `bench/` and the tests all run an image through here, so that a
reduced decode and its scaling back happen in one place. The model is given, not owned: the caller decides
which instance runs (a server leases one from its pool, a script keeps its own).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from .images import DEFAULT_MAX_IMAGE_PIXELS, CheckedImage, ReducedImage
from .models import Model, Prediction
from .tracking import TrackedFrame, Tracker

Result = TypeVar("Result", Prediction, TrackedFrame)


@dataclass(frozen=True)
class Predicted:
    """A prediction in the full image's pixels, the pixels the model saw, and where the time went."""

    prediction: Prediction
    image: ReducedImage
    decode_seconds: float
    model_seconds: float


def predict_checked(model: Model, checked: CheckedImage, decode_min_side: int = 0) -> Predicted:
    """Decode `checked` (a large JPEG at reduced size, see `CheckedImage.decode`) and run `model` on it."""
    return Predicted(*_decode_and_run(checked, decode_min_side, model.predict))


@dataclass(frozen=True)
class Tracked:
    """A tracked frame in the full image's pixels, the pixels the tracker saw, and where the time went."""

    frame: TrackedFrame
    image: ReducedImage
    decode_seconds: float
    model_seconds: float


def track_checked(
    tracker: Tracker, model: Model, checked: CheckedImage, timestamp: float, decode_min_side: int = 0
) -> Tracked:
    """Decode `checked` as `predict_checked` does and give it to the stream's `tracker`, on `model`."""
    return Tracked(
        *_decode_and_run(checked, decode_min_side, lambda pixels: tracker.update(model, pixels, timestamp))
    )


def _decode_and_run(
    checked: CheckedImage, decode_min_side: int, run: Callable[[np.ndarray], Result]
) -> tuple[Result, ReducedImage, float, float]:
    """`run` on the decoded pixels, its result in full-size pixels, the image, and the seconds each took."""
    started = time.perf_counter()
    image = checked.decode(decode_min_side)
    decoded = time.perf_counter()
    result = run(image.pixels)
    done = time.perf_counter()
    return (
        result.at_full_size(image.factor, image.width, image.height),
        image,
        decoded - started,
        done - decoded,
    )


def predict_pixels(model: Model, pixels: np.ndarray) -> Predicted:
    """Run `model` on pixels a client already decoded (BGR, as `cv2.imdecode` gives them)."""
    started = time.perf_counter()
    prediction = model.predict(pixels)
    height, width = pixels.shape[:2]
    return Predicted(prediction, ReducedImage(pixels, 1, width, height), 0.0, time.perf_counter() - started)


def predict_bytes(
    model: Model,
    data: bytes,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    decode_min_side: int = 0,
) -> Prediction:
    """The prediction for encoded bytes (JPEG, PNG, BMP, WebP, GIF) as the server makes it; `ImageError`
    when they cannot become an image."""
    return predict_checked(model, CheckedImage.check(data, max_pixels), decode_min_side).prediction
