"""One prediction, the way every route runs it: admitted, decoded, on a leased model, and measured."""

from __future__ import annotations

import time

import numpy as np

from ..images import decode_image_reduced
from ..models import Prediction
from .state import ServerState


def predict_image(state: ServerState, image: np.ndarray) -> Prediction:
    """Run the model on a decoded BGR image; `Overloaded` when the worker is full or no model comes free."""
    with state.admission.admit(), state.metrics.in_flight.track_inprogress():
        return _predict_admitted(state, image)


def predict_encoded(state: ServerState, data: bytes) -> tuple[np.ndarray, Prediction]:
    """Decode an encoded image (JPEG, PNG, BMP) and run the model on it; the decoded image comes back too
    (the dashboard shows recent ones). Decoding happens after admission, so a refused request costs none.
    A large JPEG is decoded at reduced size (`decode_min_side`); the prediction is in its full-size pixels."""
    with state.admission.admit(), state.metrics.in_flight.track_inprogress():
        image = decode_image_reduced(data, state.settings.max_image_pixels, state.settings.decode_min_side)
        state.metrics.images_decoded.inc()
        prediction = _predict_admitted(state, image.pixels)
        return image.pixels, prediction.at_full_size(image.factor, image.width, image.height)


def _predict_admitted(state: ServerState, image: np.ndarray) -> Prediction:
    waiting = time.perf_counter()
    with state.pool.lease(state.settings.queue_timeout) as model:
        started = time.perf_counter()
        state.metrics.queue_wait.observe(started - waiting)
        prediction = model.predict(image)
        state.metrics.inference.observe(time.perf_counter() - started)
    return prediction
