"""One JSON error shape for every failure: {"error": {"code", "message", "request_id"}}.

The Open Inference Protocol's routes answer the same failures with the same statuses, in that protocol's
shape ({"error": "message"}): one builder, `error_response`, with the body shape as its one difference.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Blueprint, Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from ..images import ImageError, ImageTooLarge, UnsupportedImageType
from ..logs import LOGGER_NAME
from ..pool import Overloaded

logger = logging.getLogger(LOGGER_NAME)


class ApiError(Exception):
    """A client's mistake, raised anywhere in a request and answered with `status`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# An error's JSON body from its code, message and request id.
ErrorBody = Callable[[str, str, "str | None"], dict]


def nosetrack_error(code: str, message: str, request_id: str | None) -> dict:
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def protocol_error(code: str, message: str, request_id: str | None) -> dict:
    """The Open Inference Protocol's shape: the message alone (the code still reaches the metrics)."""
    return {"error": message}


def error_json(code: str, message: str) -> bytes:
    """The error body for an answer that no request reached (the worker's own 408, 431, 503)."""
    return json.dumps(nosetrack_error(code, message, None)).encode()


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    body: ErrorBody = nosetrack_error,
) -> Response:
    """The answer to a failed request: `status`, `headers`, and `body`'s JSON; the code is noted for the
    request's metrics."""
    g.error_code = code
    response = jsonify(body(code, message, g.get("request_id")))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def image_status(error: ImageError) -> int:
    if isinstance(error, ImageTooLarge):
        return 413
    if isinstance(error, UnsupportedImageType):
        return 415
    return 422


def register_error_handlers(target: Flask | Blueprint, body: ErrorBody = nosetrack_error) -> None:
    """Answer every failure raised under `target` with the same status and code, in `body`'s shape:
    nosetrack's own for the app, the Open Inference Protocol's for its /v2 blueprint."""

    def respond(status: int, code: str, message: str, headers: dict[str, str] | None) -> Response:
        return error_response(status, code, message, headers, body)

    @target.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return respond(error.status, error.code, error.message, error.headers)

    @target.errorhandler(ImageError)
    def image_error(error: ImageError) -> Response:
        return respond(image_status(error), error.code, str(error), None)

    @target.errorhandler(Overloaded)
    def overloaded(error: Overloaded) -> Response:
        return respond(503, "overloaded", f"{error} Retry shortly.", {"Retry-After": "1"})

    @target.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else {}
        return respond(error.code or 500, code, error.description or str(error), headers)

    @target.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        logger.exception("Unhandled error (request_id=%s)", g.get("request_id"))
        return respond(500, "internal_error", "The server failed; the log holds the details.", None)
