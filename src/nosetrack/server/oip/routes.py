"""The Open Inference Protocol v2 REST API (KServe, Triton) beside nosetrack's own, under /v2.

Errors here have the protocol's shape, {"error": "message"}, with the same 4xx statuses as the rest of the
server. Tensors are read and written by tensors.py.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request

from ... import __version__
from ..auth import public
from ..errors import ApiError, protocol_error, register_error_handlers
from ..inference import predict_decoded, predict_encoded
from ..state import ServerState, server_state
from .tensors import INPUT_NAME, MAX_BATCH, OUTPUTS, encode_outputs, parse_infer_request

oip = Blueprint("oip", __name__, url_prefix="/v2")
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "nosetrack"


register_error_handlers(oip, protocol_error)


def served_model(name: str, version: str | None = None) -> ServerState:
    """The server's state when `name` (and `version`, if given) is the model it serves; else 404."""
    state = server_state(current_app)
    info = state.pool.info
    if name != info.name:
        raise ApiError(404, "unknown_model", f"Unknown model {name!r}; this server serves {info.name!r}.")
    if version is not None and version != info.version:
        raise ApiError(
            404, "unknown_model", f"Model {name!r} has no version {version!r}; it has {info.version!r}."
        )
    return state


@oip.get("")
@public
def server_metadata() -> Response:
    return jsonify({"name": PLATFORM, "version": __version__, "extensions": ["binary_tensor_data"]})


@oip.get("/health/live")
@public
def live() -> Response:
    return Response(status=200)


@oip.get("/health/ready")
@public
def ready() -> Response:
    """503 while the server stops, as /readyz: load balancers take it as "send nothing new" (the protocol
    asks only for a status that is not 200)."""
    return Response(status=200 if server_state(current_app).ready_for(request.environ) else 503)


@oip.get("/models/<name>/ready")
@oip.get("/models/<name>/versions/<version>/ready")
@public
def model_ready(name: str, version: str | None = None) -> Response:
    return Response(status=200 if served_model(name, version).ready else 400)


@oip.get("/models/<name>")
@oip.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    info = served_model(name, version).pool.info
    return jsonify(
        {
            "name": info.name,
            "versions": [info.version],
            "platform": PLATFORM,
            "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": name, "datatype": datatype, "shape": [-1, *tail]}
                for name, (datatype, _, tail) in OUTPUTS.items()
            ],
            "parameters": {
                "max_batch_size": MAX_BATCH,
                "input_forms": "IMAGE is BYTES [N] (encoded JPEG/PNG/BMP; base64 strings in JSON) or "
                "UINT8 [N, H, W, 3] (RGB, or BGR with the input parameter color_order)",
            },
        }
    )


@oip.post("/models/<name>/infer")
@oip.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response:
    state = served_model(name, version)
    if request.content_encoding:
        raise ApiError(415, "unsupported_encoding", "Send the body uncompressed (no Content-Encoding).")
    body = request.get_data(cache=False)
    asked = parse_infer_request(body, request.headers.get(HEADER_LENGTH), state.settings.max_image_pixels)
    predictions = []
    for image in asked.images:
        if isinstance(image, bytes):
            predicted = predict_encoded(state, image)
        else:
            predicted = predict_decoded(state, image)
        predictions.append(predicted.prediction)
        if state.recent.enabled:
            details = {"route": request.url_rule.rule, "faces": len(predicted.prediction.faces)}
            state.recent.add(predicted.image.pixels, predicted.prediction, details)
    outputs, binary = encode_outputs(predictions, asked.outputs)
    answer: dict = {"model_name": state.pool.info.name, "model_version": state.pool.info.version}
    if asked.id is not None:
        answer["id"] = asked.id
    answer["outputs"] = outputs
    if not binary:
        return jsonify(answer)
    header = json.dumps(answer).encode()
    response = Response(header + binary, mimetype="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(header))
    return response
