"""The Open Inference Protocol v2 REST API (KServe, Triton) beside nosetrack's own, under /v2.

Errors under /v2 have the protocol's shape, {"error": "message"} (`errors.protocol_error`, which the app's
error handlers use for every path under /v2, unknown ones included), with the same 4xx statuses as the rest of
the server.
The answers come from protocol.py, shared with gRPC; tensors are read and written by tensors.py.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request

from ...pool import ModelPool
from ..auth import public
from ..errors import ApiError
from ..state import server_state
from . import protocol
from .tensors import encode_outputs, parse_infer_request

oip = Blueprint("oip", __name__, url_prefix="/v2")
HEADER_LENGTH = "Inference-Header-Content-Length"


def served_model(name: str, version: str | None = None) -> ModelPool:
    """The pool of the model called `name` (and `version`, if given); else 404."""
    return server_state(current_app).pool_for(name, version)


@oip.get("")
@public
def server_metadata() -> Response:
    return jsonify(protocol.server_metadata())


@oip.get("/health/live")
@public
def live() -> Response:
    return Response(status=200)


@oip.get("/health/ready")
@public
def ready() -> Response:
    """503 while the server loads and from SIGTERM on, as /readyz: load balancers take it as "send nothing
    new" (the protocol asks only for a status that is not 200)."""
    return Response(status=200 if server_state(current_app).is_ready else 503)


@oip.get("/models/<name>/ready")
@oip.get("/models/<name>/versions/<version>/ready")
@public
def model_ready(name: str, version: str | None = None) -> Response:
    served_model(name, version)
    return Response(status=200 if server_state(current_app).ready else 400)


@oip.get("/models/<name>")
@oip.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    return jsonify(protocol.model_metadata(served_model(name, version).info))


@oip.get("/models/<name>/config")
@oip.get("/models/<name>/versions/<version>/config")
def model_config(name: str, version: str | None = None) -> Response:
    return jsonify(protocol.model_config(served_model(name, version).info))


@oip.get("/models/stats")
@oip.get("/models/<name>/stats")
@oip.get("/models/<name>/versions/<version>/stats")
def model_statistics(name: str | None = None, version: str | None = None) -> Response:
    return jsonify(protocol.model_statistics(server_state(current_app), name, version))


@oip.post("/repository/index")
def repository_index() -> Response:
    """Triton's client posts {"ready": true} to list only ready models, or no body at all."""
    options = request.get_json(silent=True) if request.content_length else None
    ready_only = isinstance(options, dict) and options.get("ready") is True
    return jsonify(protocol.repository_index(server_state(current_app), ready_only))


@oip.post("/models/<name>/infer")
@oip.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response:
    state = server_state(current_app)
    pool = served_model(name, version)
    if request.content_encoding:
        raise ApiError(415, "unsupported_encoding", "Send the body uncompressed (no Content-Encoding).")
    body = request.get_data(cache=False)
    asked = parse_infer_request(body, request.headers.get(HEADER_LENGTH), state.settings.max_image_pixels)
    predictions = protocol.predict_images(state, pool, asked.images, request.url_rule.rule)
    outputs, binary = encode_outputs(predictions, asked.outputs)
    answer: dict = {"model_name": pool.info.name, "model_version": pool.info.version}
    if asked.id is not None:
        answer["id"] = asked.id
    answer["outputs"] = outputs
    if not binary:
        return jsonify(answer)
    header = json.dumps(answer).encode()
    response = Response(header + binary, mimetype="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(header))
    return response
