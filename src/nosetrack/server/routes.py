"""nosetrack's own routes: the seed's two, the /v1 API, health, version and metrics."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, g, jsonify, request

from .. import __version__
from ..answer import prediction_answer
from .auth import public
from .inference import predict_encoded
from .payloads import image_from_any, image_from_form, image_from_json
from .state import server_state

bp = Blueprint("nosetrack", __name__)


def predict_response(data: bytes, model: str | None = None) -> Response:
    """Decode, run the model called `model` (the first model when None) on a leased instance, and answer
    with the prediction's JSON."""
    state = server_state(current_app)
    pool = state.pool_for(model)
    predicted = predict_encoded(state, pool, data)
    prediction = predicted.prediction
    latency_ms = (time.perf_counter() - g.started) * 1000.0
    if state.recent.enabled:
        state.recent.add(
            predicted.image.pixels,
            prediction,
            {
                "route": request.url_rule.rule,
                "model": pool.info.name,
                "faces": len(prediction.faces),
                "latency_ms": latency_ms,
            },
        )
    return jsonify(
        {
            **prediction_answer(prediction),
            "model": {"name": pool.info.name, "version": pool.info.version},
            "latency_ms": latency_ms,
            "request_id": g.request_id,
        }
    )


@bp.post("/image-64")
def image_base64() -> Response:
    return predict_response(image_from_json(request))


@bp.post("/image-bin")
def image_binary() -> Response:
    return predict_response(image_from_form(request))


@bp.post("/v1/nose")
def nose() -> Response:
    """`?model=NAME` picks one of the server's models; the first answers without it."""
    return predict_response(image_from_any(request), request.args.get("model") or None)


@bp.get("/healthz")
@public
def healthz() -> Response:
    return jsonify({"status": "alive"})


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    state = server_state(current_app)
    if state.is_ready:
        return jsonify({"status": "ready"}), 200
    return jsonify({"status": "stopping" if state.ready else "loading"}), 503


@bp.get("/version")
@public
def version() -> Response:
    state = server_state(current_app)
    return jsonify(
        {
            "version": __version__,
            "model": state.default_pool.info.as_dict(),
            "models": [pool.info.as_dict() for pool in state.pools],
        }
    )


@bp.get("/metrics")
def metrics() -> Response:
    return Response(server_state(current_app).metrics.exposition(), mimetype="text/plain; version=0.0.4")
