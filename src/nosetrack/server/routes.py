"""Every route: the seed's two, the /v1 API, health, version, stats and the dashboard."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request

from .. import __version__
from ..answer import prediction_answer
from .auth import public
from .inference import predict_encoded
from .payloads import image_from_any, image_from_form, image_from_json
from .state import server_state

bp = Blueprint("nosetrack", __name__)


def predict_response(data: bytes) -> Response:
    """Decode, run the model on a leased instance, and answer with the prediction's JSON."""
    state = server_state(current_app)
    predicted = predict_encoded(state, data)
    prediction = predicted.prediction
    latency_ms = (time.perf_counter() - g.started) * 1000.0
    if state.recent.enabled:
        state.recent.add(
            predicted.image.pixels,
            prediction,
            {"route": request.url_rule.rule, "faces": len(prediction.faces), "latency_ms": latency_ms},
        )
    return jsonify(
        {
            **prediction_answer(prediction),
            "model": {"name": state.pool.info.name, "version": state.pool.info.version},
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
    return predict_response(image_from_any(request))


@bp.get("/healthz")
@public
def healthz() -> Response:
    return jsonify({"status": "alive"})


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    ready = server_state(current_app).ready
    return jsonify({"status": "ready" if ready else "loading"}), 200 if ready else 503


@bp.get("/version")
@public
def version() -> Response:
    return jsonify({"version": __version__, "model": server_state(current_app).pool.info.as_dict()})


@bp.get("/api/stats")
def stats() -> Response:
    return jsonify(server_state(current_app).stats())


@bp.get("/api/recent")
def recent() -> Response:
    """The newest predictions as thumbnails (when --show-recent is on); `?after=N` sends only newer ones."""
    after = request.args.get("after", default=0, type=int)
    return jsonify(server_state(current_app).recent.as_dict(after))


@bp.get("/metrics")
def metrics() -> Response:
    return Response(server_state(current_app).metrics.exposition(), mimetype="text/plain; version=0.0.4")


@bp.get("/")
@public
def dashboard() -> str:
    """The page is open to a browser, which sends no key with it; with API keys, its numbers come only
    through /api/stats, which asks for one."""
    state = server_state(current_app)
    needs_key = bool(state.settings.api_keys)
    stats = state.summary() if needs_key else state.stats()
    return render_template("dashboard.html", stats=stats, needs_key=needs_key)
