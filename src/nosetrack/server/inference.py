"""One prediction as the server runs it: checked at once, admitted, leased a model, then predicted and
measured. The pipeline itself is `nosetrack.predictor`'s; this module adds only what a shared worker needs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

import numpy as np

from ..images import CheckedImage
from ..models import Model
from ..predictor import Predicted, Tracked, predict_checked, predict_pixels, track_checked
from ..tracking import Tracker
from .state import ServerState


class _Measured(Protocol):
    model_seconds: float


Result = TypeVar("Result", bound=_Measured)


def predict_encoded(state: ServerState, data: bytes) -> Predicted:
    """The prediction for an encoded image (JPEG, PNG, BMP); `Overloaded` when the worker is full or no model
    comes free."""
    decode_min_side = state.settings.decode_min_side
    return _run_encoded(state, data, lambda model, checked: predict_checked(model, checked, decode_min_side))


def track_encoded(state: ServerState, tracker: Tracker, data: bytes, timestamp: float) -> Tracked:
    """A stream's next frame through its `tracker`, on a model leased like a request's (so streams and
    requests share the worker's models first come, first served); `Overloaded` as for a request."""
    decode_min_side = state.settings.decode_min_side
    return _run_encoded(
        state,
        data,
        lambda model, checked: track_checked(tracker, model, checked, timestamp, decode_min_side),
    )


def _run_encoded(state: ServerState, data: bytes, run: Callable[[Model, CheckedImage], Result]) -> Result:
    """Check, admit, lease, run. The bytes are checked at once, so a bad upload is refused without waiting;
    they are decoded only once a model is free, so what waits holds encoded bytes, not pixels ten times
    their size."""
    checked = CheckedImage.check(data, state.settings.max_image_pixels)
    with _leased_model(state) as model:
        result = run(model, checked)
    state.metrics.images_decoded.inc()
    state.metrics.inference.observe(result.model_seconds)
    return result


def predict_decoded(state: ServerState, pixels: np.ndarray) -> Predicted:
    """The prediction for pixels the client sent decoded (/v2's UINT8 tensors)."""
    with _leased_model(state) as model:
        predicted = predict_pixels(model, pixels)
    state.metrics.inference.observe(predicted.model_seconds)
    return predicted


@contextmanager
def _leased_model(state: ServerState) -> Iterator[Model]:
    """Admission, then a model from the pool; `Overloaded` when either is refused."""
    with state.admission.admit(), state.metrics.in_flight.track_inprogress():
        waiting = time.perf_counter()
        with state.pool.lease(state.settings.queue_timeout) as model:
            state.metrics.queue_wait.observe(time.perf_counter() - waiting)
            yield model
