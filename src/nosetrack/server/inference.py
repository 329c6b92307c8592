"""One prediction as the server runs it: checked at once, admitted, leased a model from the pool the request
chose, then predicted and measured. The pipeline itself is `nosetrack.predictor`'s; this module adds only what
a shared worker needs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np

from ..images import CheckedImage
from ..models import Model
from ..pool import ModelPool
from ..predictor import Predicted, Tracked, predict_checked, predict_pixels, track_checked
from ..tracking import Tracker
from .state import ServerState

Result = TypeVar("Result", Predicted, Tracked)


def predict_encoded(state: ServerState, pool: ModelPool, data: bytes) -> Predicted:
    """The prediction of `pool`'s model for an encoded image (JPEG, PNG, BMP); `Overloaded` when the worker
    is full or no model comes free.

    The bytes are checked at once, so a bad upload is refused without waiting; they are decoded only once a
    model is free, so the requests that wait hold their encoded bytes, not pixels ten times their size.
    """
    decode_min_side = state.settings.decode_min_side
    return _run_encoded(
        state, pool, data, lambda model, checked: predict_checked(model, checked, decode_min_side)
    )


def track_image(
    state: ServerState, pool: ModelPool, tracker: Tracker, checked: CheckedImage, timestamp: float
) -> Tracked:
    """A stream's next frame, checked already (a stream refuses a bad message without a thread), through its
    `tracker`, on one of `pool`'s models leased like a request's (so streams and requests share the worker's
    models first come, first served); `Overloaded` as for a request."""
    decode_min_side = state.settings.decode_min_side
    with _measured(state, pool):
        return _run_checked(
            state,
            pool,
            checked,
            lambda model, image: track_checked(tracker, model, image, timestamp, decode_min_side),
        )


def _run_encoded(
    state: ServerState, pool: ModelPool, data: bytes, run: Callable[[Model, CheckedImage], Result]
) -> Result:
    """Check, then run measured."""
    with _measured(state, pool):
        return _run_checked(state, pool, CheckedImage.check(data, state.settings.max_image_pixels), run)


def _run_checked(
    state: ServerState, pool: ModelPool, checked: CheckedImage, run: Callable[[Model, CheckedImage], Result]
) -> Result:
    """Admit, lease, run, count."""
    with _leased_model(state, pool) as model:
        started = time.thread_time()
        result = run(model, checked)
        state.metrics.pipeline_cpu.inc(time.thread_time() - started)
    state.metrics.images_decoded.inc()
    state.metrics.decode.labels(model=pool.info.name).observe(result.decode_seconds)
    state.metrics.inference.labels(model=pool.info.name).observe(result.model_seconds)
    return result


def predict_decoded(state: ServerState, pool: ModelPool, pixels: np.ndarray) -> Predicted:
    """The prediction of `pool`'s model for pixels the client sent decoded (/v2's UINT8 tensors)."""
    with _measured(state, pool), _leased_model(state, pool) as model:
        started = time.thread_time()
        predicted = predict_pixels(model, pixels)
        state.metrics.pipeline_cpu.inc(time.thread_time() - started)
        state.metrics.inference.labels(model=pool.info.name).observe(predicted.model_seconds)
    return predicted


@contextmanager
def _measured(state: ServerState, pool: ModelPool) -> Iterator[None]:
    """Time one image's way through the model, as a success or a failure (Triton's statistics)."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        state.metrics.predictions.labels(model=pool.info.name, outcome="fail").observe(
            time.perf_counter() - started
        )
        raise
    state.metrics.predictions.labels(model=pool.info.name, outcome="success").observe(
        time.perf_counter() - started
    )
    state.metrics.last_prediction.labels(model=pool.info.name).set(time.time())


@contextmanager
def _leased_model(state: ServerState, pool: ModelPool) -> Iterator[Model]:
    """Admission, then a model from `pool`; `Overloaded` when either is refused."""
    with state.admission.admit(), state.metrics.in_flight.track_inprogress():
        waiting = time.perf_counter()
        with pool.lease(state.settings.queue_timeout) as model:
            state.metrics.queue_wait.labels(model=pool.info.name).observe(time.perf_counter() - waiting)
            yield model
