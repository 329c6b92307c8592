"""One prediction, the way every route runs it: admitted, leased a model, decoded, and measured."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ..images import CheckedImage
from ..models import Model, Prediction
from .state import ServerState


def predict_image(state: ServerState, image: np.ndarray) -> Prediction:
    """Run the model on a decoded BGR image; `Overloaded` when the worker is full or no model comes free."""
    with _leased_model(state) as model:
        return _timed_predict(state, model, image)


def predict_encoded(state: ServerState, data: bytes) -> tuple[np.ndarray, Prediction]:
    """Decode an encoded image (JPEG, PNG, BMP) and run the model on it; the decoded image comes back too
    (the dashboard shows recent ones). A large JPEG is decoded at reduced size (`decode_min_side`); the
    prediction is in its full-size pixels.

    The bytes are checked at once, so a bad upload is refused without waiting; they are decoded only once a
    model is free, so the requests that wait hold their encoded bytes, not pixels ten times their size.
    """
    checked = CheckedImage.check(data, state.settings.max_image_pixels)
    with _leased_model(state) as model:
        image = checked.decode(state.settings.decode_min_side)
        state.metrics.images_decoded.inc()
        prediction = _timed_predict(state, model, image.pixels)
    return image.pixels, prediction.at_full_size(image.factor, image.width, image.height)


@contextmanager
def _leased_model(state: ServerState) -> Iterator[Model]:
    """Admission, then a model from the pool; `Overloaded` when either is refused."""
    with state.admission.admit(), state.metrics.in_flight.track_inprogress():
        waiting = time.perf_counter()
        with state.pool.lease(state.settings.queue_timeout) as model:
            state.metrics.queue_wait.observe(time.perf_counter() - waiting)
            yield model


def _timed_predict(state: ServerState, model: Model, image: np.ndarray) -> Prediction:
    started = time.perf_counter()
    prediction = model.predict(image)
    state.metrics.inference.observe(time.perf_counter() - started)
    return prediction
