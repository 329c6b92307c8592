"""The one pipeline every path shares: checked image bytes (or pixels) to a `Prediction` in full-size pixels.

The server, /v2, the tracker, the CLI, `bench/` and the tests all run an image through here, so that a
reduced decode and its scaling back happen in one place. The model is given, not owned: the caller decides
which instance runs (a server leases one from its pool, a script keeps its own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .images import DEFAULT_MAX_IMAGE_PIXELS, CheckedImage, ReducedImage
from .models import Model, Prediction


@dataclass(frozen=True)
class Predicted:
    """A prediction in the full image's pixels, the pixels the model saw, and where the time went."""

    prediction: Prediction
    image: ReducedImage
    decode_seconds: float
    model_seconds: float


def predict_checked(model: Model, checked: CheckedImage, decode_min_side: int = 0) -> Predicted:
    """Decode `checked` (a large JPEG at reduced size, see `CheckedImage.decode`) and run `model` on it."""
    started = time.perf_counter()
    image = checked.decode(decode_min_side)
    decoded = time.perf_counter()
    prediction = model.predict(image.pixels)
    done = time.perf_counter()
    return Predicted(
        prediction.at_full_size(image.factor, image.width, image.height),
        image,
        decode_seconds=decoded - started,
        model_seconds=done - decoded,
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
